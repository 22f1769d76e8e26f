//! The server session: every connection's protocol state and the kernel,
//! with no IO. The driver (the daemon's epoll shell, or the simulator)
//! feeds it events and performs what it asks:
//!
//! - [`Server::handle_connect`] for a new connection (or a refusal to
//!   write once: [`goodbye_frame`]), [`Server::handle_input`] with the bytes
//!   and fds read, [`Server::handle_eof`] when the client shut its writing
//!   side, [`Server::handle_disconnect`] when the connection broke;
//! - [`Server::poll_dirty`] names connections whose output or interest
//!   changed, in the order their output was produced; for each,
//!   [`Server::poll_transmit`] / [`Server::handle_sent`] (or
//!   [`Server::handle_write_error`]) until nothing is left or the socket is
//!   full, then [`Server::status`] says what to watch (or to close it);
//! - [`Server::poll_timeout`] / [`Server::handle_timeout`] for time.
//!
//! Costs: a frame costs its operation (see the kernel's docs) plus O(1)
//! here; a wake-up costs O(waits parked on that endpoint); a deadline costs
//! O(log parked). Nothing scans every connection, endpoint or wait, except
//! [`Server::shutdown`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::os::fd::BorrowedFd;

use busbar_kernel::{
    BusId, Credentials, EndpointId, Errno, Kernel, KernelConfig, Level, Nanos, OpCode, Request,
};
use busbar_wire::{GOODBYE, emit_frame, emit_response};

use crate::conn::{Conn, ReceivedFd, State};
use crate::host::{LogSink, ServerHost};
use crate::parked::ParkedWaits;
use crate::{Limits, Privilege};

/// A connection, as the session names it.
pub type ConnId = u64;

/// What the driver should do with a connection's socket now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Keep it; watch for readability and/or writability.
    Open {
        /// Read from it (false: backpressure, closing, or half-closed).
        read: bool,
        /// It has output waiting and may be written.
        write: bool,
    },
    /// Close it (the session has forgotten it).
    Closed,
}

/// How writing to a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The OS refused to pass more fds for now (`ETOOMANYREFS`: the
    /// daemon's fds in flight reached the per-user limit). Not this
    /// client's fault: the output stays queued and is retried later.
    TooManyRefs,
    /// The connection is broken.
    Broken,
}

/// Counters for the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections refused for the global or per-uid limit.
    pub refused_connections: u64,
    /// Connections closed for breaking the protocol or a limit.
    pub violations: u64,
    /// Connections closed for not sending `Hello` in time.
    pub hello_timeouts: u64,
    /// Writes put off because the OS refused to pass fds.
    pub fd_write_backoffs: u64,
    /// Requests refused for lack of privilege.
    pub privilege_refusals: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UidUse {
    pub conns: usize,
    pub partial: usize,
    pub fds: usize,
    pub endpoints: usize,
    pub bindings: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Hello,
    Linger,
    WriteRetry,
}

/// At most one summary of the counters per this long (logged at info when
/// they changed).
pub const REPORT_EVERY: Nanos = 60_000_000_000;

/// The longest back-off between two tries of a write the OS refused.
const MAX_WRITE_BACKOFF: Nanos = 1_000_000_000;

/// The daemon's protocol logic over one kernel.
pub struct Server {
    pub(crate) kernel: Kernel<ServerHost>,
    pub(crate) limits: Limits,
    /// Data memfds held mapped, counted per sending uid (`payload`).
    pub(crate) data_memfds: crate::payload::DataMemfds,
    privilege: Privilege,
    pub(crate) conns: HashMap<ConnId, Conn, foldhash::fast::RandomState>,
    pub(crate) owners: HashMap<(BusId, EndpointId), ConnId, foldhash::fast::RandomState>,
    pub(crate) parked: ParkedWaits,
    pub(crate) uids: HashMap<u32, UidUse, foldhash::fast::RandomState>,
    timers: BTreeSet<(Nanos, ConnId, Timer)>,
    dirty: VecDeque<ConnId>,
    /// Connections whose output drained: answered further after the flush.
    to_resume: Vec<ConnId>,
    /// Connections of each uid (to resume them when the uid's fds drop
    /// back under its limit).
    by_uid: HashMap<u32, std::collections::BTreeSet<ConnId>, foldhash::fast::RandomState>,
    next_conn: ConnId,
    pub(crate) stats: ServerStats,
    /// The counters as last logged, and when the next summary may go.
    reported: ServerStats,
    next_report: Nanos,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("connections", &self.conns.len())
            .field("parked", &self.parked.len())
            .finish_non_exhaustive()
    }
}

/// A `Goodbye` frame saying why: what to write to a refused connection.
pub fn goodbye_frame(why: Errno) -> Vec<u8> {
    let mut out = Vec::new();
    emit_frame(&mut out, GOODBYE, 0, 0, why.number(), |_| {});
    out
}

impl Server {
    /// A session over a new kernel. `seed` seeds the kernel's hash tables;
    /// `log` receives the kernel's and the session's log lines.
    pub fn new(
        config: KernelConfig,
        limits: Limits,
        privilege: Privilege,
        seed: u64,
        log: LogSink,
    ) -> Result<Self, Errno> {
        let host = ServerHost {
            now: 0,
            alarm: None,
            woken: Vec::new(),
            levels: HashMap::default(),
            entropy: seed,
            log,
            stats: Default::default(),
        };
        Ok(Self {
            kernel: Kernel::new(host, config)?,
            limits,
            data_memfds: Default::default(),
            privilege,
            conns: HashMap::default(),
            owners: HashMap::default(),
            parked: ParkedWaits::default(),
            uids: HashMap::default(),
            timers: BTreeSet::new(),
            dirty: VecDeque::new(),
            to_resume: Vec::new(),
            by_uid: HashMap::default(),
            next_conn: 1,
            stats: ServerStats::default(),
            reported: ServerStats::default(),
            next_report: 0,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters for the operator.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Waits parked now.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// Buses the kernel holds.
    pub fn bus_count(&self) -> u32 {
        self.kernel.bus_count()
    }

    pub(crate) fn log(&mut self, level: Level, args: std::fmt::Arguments<'_>) {
        (self.kernel.host_mut().log)(level, args);
    }

    fn set_now(&mut self, now: Nanos) {
        let h = self.kernel.host_mut();
        h.now = h.now.max(now);
    }

    pub(crate) fn now(&self) -> Nanos {
        self.kernel.host().now
    }

    /// A new connection from a peer with these (`SO_PEERCRED`)
    /// credentials. `Err`: refused (`ENFILE`: too many connections;
    /// `EUSERS`: too many from this uid); write [`goodbye_frame`] to it and
    /// close it. Non-privileged uids are held to
    /// [`Limits::max_connections_per_uid`].
    pub fn handle_connect(&mut self, now: Nanos, creds: Credentials) -> Result<ConnId, Errno> {
        self.set_now(now);
        let privileged = self.privilege.allows(&creds);
        let uid_conns = self.uids.get(&creds.uid).map_or(0, |u| u.conns);
        let refused = if self.conns.len() >= self.limits.max_connections {
            Some(Errno::ENFILE)
        } else if !privileged && uid_conns >= self.limits.max_connections_per_uid {
            Some(Errno::EUSERS)
        } else {
            None
        };
        if let Some(e) = refused {
            self.stats.refused_connections += 1;
            let n = self.stats.refused_connections;
            if n.is_power_of_two() {
                self.log(
                    Level::Warn,
                    format_args!(
                        "connection from uid {} pid {} refused: {} ({n} refused so far)",
                        creds.uid,
                        creds.pid,
                        e.strerror()
                    ),
                );
            }
            return Err(e);
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.uids.entry(creds.uid).or_default().conns += 1;
        self.by_uid.entry(creds.uid).or_default().insert(id);
        self.conns
            .insert(id, Conn::new(creds, privileged, self.limits.max_frame));
        self.kernel.host_mut().stats.connections = self.conns.len() as u32;
        self.timers.insert((
            now.saturating_add(self.limits.hello_timeout),
            id,
            Timer::Hello,
        ));
        Ok(id)
    }

    /// Whether the driver should read from this connection now.
    pub fn wants_read(&self, c: ConnId) -> bool {
        self.conns
            .get(&c)
            .is_some_and(|conn| conn.state != State::Closing && !conn.eof && !self.out_full(conn))
    }

    /// Whether a connection's output is too full to answer more requests
    /// (bytes, message data riding in memfds, or fds held for its user).
    pub(crate) fn out_full(&self, conn: &Conn) -> bool {
        conn.out.weight() > self.limits.max_output
            || self
                .uids
                .get(&conn.creds.uid)
                .is_some_and(|u| u.fds > self.limits.max_fds_per_uid)
    }

    /// Bytes and fds read from a connection.
    pub fn handle_input(&mut self, now: Nanos, c: ConnId, bytes: &[u8], fds: Vec<ReceivedFd>) {
        self.set_now(now);
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.state == State::Closing {
            return;
        }
        conn.fds_in.extend(fds);
        conn.reader.buffer().extend_from_slice(bytes);
        if conn.fds_in.len() > self.limits.max_unclaimed_fds_per_connection {
            return self.violation(
                c,
                "too many fds sent ahead of their frames",
                None,
                Errno::ENOBUFS,
            );
        }
        self.process(c);
        self.recharge(c);
        self.finish_if_done(c);
    }

    /// The client shut its writing side: its buffered requests are still
    /// answered, then the connection is closed.
    pub fn handle_eof(&mut self, now: Nanos, c: ConnId) {
        self.set_now(now);
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.eof = true;
            self.mark_dirty(c);
            self.finish_if_done(c);
        }
    }

    /// The connection broke (read or write error, hang-up): its endpoints
    /// are closed, so the bus answers for them.
    pub fn handle_disconnect(&mut self, now: Nanos, c: ConnId, why: &str) {
        self.set_now(now);
        self.drop_conn(c, why);
    }

    /// The next connection whose output or interest changed (or that was
    /// closed), in the order output was produced, each once.
    pub fn poll_dirty(&mut self) -> Option<ConnId> {
        if self.dirty.is_empty() {
            for c in std::mem::take(&mut self.to_resume) {
                self.resume(c);
                self.finish_if_done(c);
            }
        }
        let c = self.dirty.pop_front()?;
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.dirty = false;
        }
        Some(c)
    }

    /// What to do with a connection's socket now.
    pub fn status(&self, c: ConnId) -> Status {
        match self.conns.get(&c) {
            None => Status::Closed,
            Some(conn) => Status::Open {
                read: self.wants_read(c),
                write: conn.out.pending() > 0 && conn.write_paused_until.is_none(),
            },
        }
    }

    /// The next bytes to write to a connection, with the fds that must go
    /// with their first byte (`SCM_RIGHTS`).
    pub fn poll_transmit(&self, c: ConnId) -> Option<(&[u8], Vec<BorrowedFd<'_>>)> {
        let conn = self.conns.get(&c)?;
        if conn.write_paused_until.is_some() {
            return None;
        }
        conn.out.transmit()
    }

    /// `n` bytes and `nfds` of the fds of the last [`Server::poll_transmit`]
    /// were written.
    pub fn handle_sent(&mut self, now: Nanos, c: ConnId, n: usize, nfds: usize) {
        self.set_now(now);
        let max_output = self.limits.max_output;
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        conn.out.sent(n, nfds, max_output);
        conn.write_backoff = 0;
        let closing_done = conn.state == State::Closing && conn.out.pending() == 0;
        let drained = conn.out.weight() <= max_output / 2;
        if closing_done {
            return self.drop_conn(c, "closed after goodbye");
        }
        self.recharge(c);
        if drained {
            // After this flush round (as `poll_dirty` ends it): a peer this
            // connection woke is written before its further answers.
            self.to_resume.push(c);
        } else {
            self.finish_if_done(c);
        }
    }

    /// The connection's socket became writable again.
    pub fn handle_writable(&mut self, c: ConnId) {
        self.mark_dirty(c);
    }

    /// The driver saw readiness the connection's [`Server::status`] does
    /// not ask for (its interest is stale): have it recomputed, so a
    /// level-triggered loop does not wake again and again.
    pub fn refresh(&mut self, c: ConnId) {
        self.mark_dirty(c);
    }

    /// Writing failed.
    pub fn handle_write_error(&mut self, now: Nanos, c: ConnId, e: WriteError) {
        self.set_now(now);
        match e {
            WriteError::Broken => self.drop_conn(c, "write failed"),
            WriteError::TooManyRefs => {
                let Some(conn) = self.conns.get_mut(&c) else {
                    return;
                };
                conn.write_backoff = (conn.write_backoff * 2).clamp(1_000_000, MAX_WRITE_BACKOFF);
                let at = now.saturating_add(conn.write_backoff);
                conn.write_paused_until = Some(at);
                self.timers.insert((at, c, Timer::WriteRetry));
                self.stats.fd_write_backoffs += 1;
                let n = self.stats.fd_write_backoffs;
                if n.is_power_of_two() {
                    self.log(
                        Level::Warn,
                        format_args!(
                            "the OS refused to pass more fds (ETOOMANYREFS: too many in flight, some client is not reading); output kept and retried ({n} times so far)"
                        ),
                    );
                }
                self.mark_dirty(c);
            }
        }
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        [
            self.kernel.host().alarm,
            self.parked.next_deadline(),
            self.timers.first().map(|t| t.0),
            (self.stats != self.reported).then_some(self.next_report),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed: kernel alarms, wait deadlines, handshake and linger
    /// deadlines, write retries, the summary of the counters.
    pub fn handle_timeout(&mut self, now: Nanos) {
        self.set_now(now);
        if self.stats != self.reported && now >= self.next_report {
            let s = self.stats;
            self.log(
                Level::Info,
                format_args!(
                    "since start: {} connections refused (limits), {} closed for breaking the protocol or a limit, {} closed for sending no Hello, {} requests refused for lack of privilege, {} writes put off (the OS refused to pass fds)",
                    s.refused_connections, s.violations, s.hello_timeouts, s.privilege_refusals, s.fd_write_backoffs
                ),
            );
            self.reported = s;
            self.next_report = now.saturating_add(REPORT_EVERY);
        }
        if self.kernel.host().alarm.is_some_and(|a| a <= now) {
            self.kernel.handle_alarm();
            self.deliver_wakes(None);
        }
        for (bus, ep) in self.parked.due(now) {
            self.retry_parked(bus, ep, Some(now));
        }
        self.deliver_wakes(None);
        while let Some(&(at, c, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(conn) = self.conns.get_mut(&c) else {
                continue;
            };
            match timer {
                Timer::Hello if conn.state == State::Greeting => {
                    self.stats.hello_timeouts += 1;
                    let (uid, pid) = (conn.creds.uid, conn.creds.pid);
                    self.log(
                        Level::Debug,
                        format_args!("connection of uid {uid} pid {pid} sent no Hello in time"),
                    );
                    self.goodbye(c, Errno::ETIMEDOUT);
                }
                Timer::Linger if conn.state == State::Closing => {
                    self.drop_conn(c, "did not read its goodbye in time");
                }
                Timer::WriteRetry if conn.write_paused_until.is_some_and(|t| t <= now) => {
                    conn.write_paused_until = None;
                    self.mark_dirty(c);
                }
                _ => {}
            }
        }
    }

    /// Says goodbye (`ESHUTDOWN`) to every connection; the driver writes
    /// what it can and closes them.
    pub fn shutdown(&mut self) -> Vec<ConnId> {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for &c in &ids {
            if let Some(conn) = self.conns.get_mut(&c) {
                emit_frame(
                    &mut conn.out.buf,
                    GOODBYE,
                    0,
                    0,
                    Errno::ESHUTDOWN.number(),
                    |_| {},
                );
                // Nothing more is read or answered.
                conn.state = State::Closing;
            }
        }
        ids
    }

    pub(crate) fn mark_dirty(&mut self, c: ConnId) {
        if let Some(conn) = self.conns.get_mut(&c)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push_back(c);
        }
    }

    /// Updates what a connection holds for its uid (partial frames, fds);
    /// closes it if that passes a per-uid limit on input.
    pub(crate) fn recharge(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let (partial, fds) = (conn.reader.buffered(), conn.fds_held());
        let (old_partial, old_fds) = (conn.partial_charged, conn.fds_charged);
        conn.partial_charged = partial;
        conn.fds_charged = fds;
        let fds_in = conn.fds_in.len();
        let uid = conn.creds.uid;
        let u = self.uids.entry(uid).or_default();
        u.partial = u.partial + partial - old_partial;
        let was_over = u.fds > self.limits.max_fds_per_uid;
        u.fds = u.fds + fds - old_fds;
        let is_over = u.fds > self.limits.max_fds_per_uid;
        let held = &mut self.kernel.host_mut().stats.fds_held;
        *held = *held + fds as u64 - old_fds as u64;
        if was_over != is_over {
            self.uid_crossed_fd_limit(uid);
        }
        let u = self.uids.entry(uid).or_default();
        if u.partial > self.limits.max_partial_bytes_per_uid {
            self.violation(
                c,
                "too many bytes of incomplete frames for this user",
                None,
                Errno::ENOBUFS,
            );
        } else if fds_in > 0 && u.fds > self.limits.max_fds_per_uid {
            self.violation(c, "too many fds held for this user", None, Errno::ENOBUFS);
        }
    }

    /// A uid's fds crossed its limit (up or down): every connection of it
    /// may now be read and answered, or not. Rare (one crossing per
    /// change), O(its connections).
    fn uid_crossed_fd_limit(&mut self, uid: u32) {
        let conns: Vec<ConnId> = self
            .by_uid
            .get(&uid)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for c in conns {
            self.mark_dirty(c);
            self.to_resume.push(c);
        }
    }

    /// Answers buffered requests and stalled waits once output drained.
    fn resume(&mut self, c: ConnId) {
        self.process(c);
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if !conn.stalled.is_empty() {
            let mut stalled: Vec<_> = conn.stalled.drain().collect();
            stalled.sort_unstable();
            for (bus, ep) in stalled {
                self.retry_parked(bus, ep, None);
            }
            self.deliver_wakes(None);
        }
    }

    /// Closes a half-closed connection once everything it asked is answered.
    fn finish_if_done(&mut self, c: ConnId) {
        if let Some(conn) = self.conns.get(&c)
            && conn.eof
            && conn.state != State::Closing
            && conn.out.pending() == 0
            && conn.parked == 0
            && !self.out_full(conn)
        {
            self.drop_conn(c, "closed by the client");
        }
    }

    /// A protocol violation or a broken input limit: answer the request if
    /// it can be addressed, say goodbye, close.
    pub(crate) fn violation(
        &mut self,
        c: ConnId,
        what: &str,
        addressed: Option<(u32, OpCode)>,
        why: Errno,
    ) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let (uid, pid) = (conn.creds.uid, conn.creds.pid);
        if let Some((seq, op)) = addressed {
            emit_response(&mut conn.out.buf, seq, op, 0, &Err(why));
        }
        self.stats.violations += 1;
        self.log(
            Level::Warn,
            format_args!(
                "client uid {uid} pid {pid}: {what}; closing the connection ({})",
                why.name()
            ),
        );
        self.goodbye(c, why);
    }

    pub(crate) fn goodbye(&mut self, c: ConnId, why: Errno) {
        let linger = self.now().saturating_add(self.limits.linger_timeout);
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        emit_frame(&mut conn.out.buf, GOODBYE, 0, 0, why.number(), |_| {});
        conn.state = State::Closing;
        // What it sent is dropped now; what it holds is released.
        conn.fds_in.clear();
        *conn.reader.buffer() = Default::default();
        self.timers.insert((linger, c, Timer::Linger));
        self.recharge(c);
        self.mark_dirty(c);
    }

    pub(crate) fn drop_conn(&mut self, c: ConnId, why: &str) {
        let Some(conn) = self.conns.remove(&c) else {
            return;
        };
        let host = self.kernel.host_mut();
        host.stats.connections = self.conns.len() as u32;
        host.stats.fds_held -= conn.fds_charged as u64;
        let uid = conn.creds.uid;
        if let Some(set) = self.by_uid.get_mut(&uid) {
            set.remove(&c);
            if set.is_empty() {
                self.by_uid.remove(&uid);
            }
        }
        let mut crossed = false;
        if let Some(u) = self.uids.get_mut(&conn.creds.uid) {
            u.conns -= 1;
            u.partial -= conn.partial_charged;
            crossed = u.fds > self.limits.max_fds_per_uid
                && u.fds - conn.fds_charged <= self.limits.max_fds_per_uid;
            u.fds -= conn.fds_charged;
            u.endpoints -= conn.endpoints.len();
            u.bindings -= conn.endpoints.values().map(|o| o.bindings).sum::<usize>();
            if u.conns == 0 {
                self.uids.remove(&conn.creds.uid);
            }
        }
        self.dirty.push_back(c);
        let (pid, n) = (conn.creds.pid, conn.endpoints.len());
        self.log(
            Level::Debug,
            format_args!("client pid {pid} gone ({n} endpoints): {why}"),
        );
        // In the order they were opened (ids grow per bus), as the client
        // would have closed them: the bus's answers are deterministic.
        let mut eps: Vec<_> = conn.endpoints.keys().copied().collect();
        eps.sort_unstable();
        for (bus, ep) in eps {
            drop(self.parked.take(bus, ep));
            self.owners.remove(&(bus, ep));
            let _ = self.kernel.dispatch(bus, ep, Request::Close(()));
            self.kernel.host_mut().levels.remove(&(bus, ep));
        }
        self.deliver_wakes(None);
        if crossed {
            self.uid_crossed_fd_limit(uid);
        }
    }
}
