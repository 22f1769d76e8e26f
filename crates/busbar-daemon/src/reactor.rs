//! The reactor: one thread, one epoll set, one kernel. No lock on the hot
//! path: the kernel is owned by the loop.
//!
//! Per connection: a [`FrameReader`] for what comes in, one output buffer
//! for what goes out (every response and `Wake` produced by one batch of
//! input leaves in one `write`). A connection whose unsent output passes
//! [`OUT_LIMIT`] is not read from until it drains, so a client that stops
//! reading cannot grow the daemon's memory: its messages wait in the
//! kernel, inside their queue limits.
//!
//! Connection lifecycle: `Greeting` (only `Hello` accepted) → `Serving` →
//! `Closing` (a `Goodbye` is queued; closed once it is written). Closing a
//! connection closes every endpoint it opened, so the bus answers their
//! requests (`GoneAway`, `Ignored`) as for any close.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busbar_kernel::{
    Attachment, BusId, Credentials, EndpointId, Errno, Kernel, MessageId, OpCode, Outgoing,
    Request, Response, Scope,
};
use busbar_sys::{Epoll, Interest, ProcessCredentials, Ready};
use busbar_wire::{
    FLAG_LAST_REQUEST, FLAG_QUIET, FLAG_READABLE, FLAG_WAIT, Frame, FrameReader, GOODBYE, VERSION,
    WAIT_FOREVER, WAKE, Welcome, WireError, can_wait, emit_frame, emit_response, emit_welcome,
    is_empty_result, parse_hello, parse_request,
};

use crate::DaemonConfig;
use crate::host::DaemonHost;

const LISTENER: u64 = 0;
const STOP: u64 = 1;
const FIRST_CONN: u64 = 2;

/// Unsent output above which a connection is no longer read from.
pub const OUT_LIMIT: usize = 4 << 20;
/// Endpoints one connection may hold open.
pub const MAX_ENDPOINTS_PER_CONNECTION: usize = 4096;
/// Bytes read from one connection per readiness event (fairness).
const READ_BUDGET: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for `Hello`.
    Greeting,
    /// Handling requests.
    Serving,
    /// A `Goodbye` is queued; nothing more is read.
    Closing,
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    creds: ProcessCredentials,
    reader: FrameReader,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
    state: State,
    /// Endpoints opened through this connection.
    endpoints: Vec<Owned>,
    /// Registered for readability (false while backpressured or closing).
    reading: bool,
    /// Registered for writability (while output is stuck).
    writing: bool,
    /// File descriptors received and not yet claimed by a decoded message.
    fds_in: VecDeque<OwnedFd>,
    /// Fds to send with the byte of `out` at each offset (a response frame
    /// carrying messages with fds starts there), and how many of them went.
    fds_out: VecDeque<(usize, Vec<Attachment>, usize)>,
}

/// An endpoint a connection opened.
#[derive(Debug)]
struct Owned {
    bus: BusId,
    ep: EndpointId,
    /// A `Wake` may be sent (re-armed by every request on the endpoint).
    armed: bool,
    /// The request the endpoint's last `Send` sent, if that is what it did:
    /// what `TakeReply` of id `{0,0}` waits for (pipelined calls).
    last_request: Option<MessageId>,
}

impl Conn {
    fn owned(&mut self, bus: BusId, ep: EndpointId) -> Option<&mut Owned> {
        self.endpoints
            .iter_mut()
            .find(|o| o.bus == bus && o.ep == ep)
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    fn owns(&self, bus: BusId, ep: EndpointId) -> bool {
        self.endpoints.iter().any(|o| o.bus == bus && o.ep == ep)
    }

    fn arm(&mut self, bus: BusId, ep: EndpointId) {
        if let Some(o) = self.owned(bus, ep) {
            o.armed = true;
        }
    }

    /// Takes the right to send a `Wake` for this endpoint.
    fn disarm(&mut self, bus: BusId, ep: EndpointId) -> bool {
        self.owned(bus, ep)
            .is_some_and(|o| mem::replace(&mut o.armed, false))
    }

    fn interest(&self) -> Interest {
        Interest {
            read: self.reading,
            write: self.writing,
        }
    }
}

/// A waiting request (`FLAG_WAIT`) that found nothing yet. It is retried
/// whenever its endpoint is woken, and answered with whatever it finds then,
/// or with the empty result at its deadline.
#[derive(Debug)]
struct Parked {
    token: u64,
    seq: u32,
    request: Request,
    deadline: Option<Instant>,
}

/// File descriptors a connection may have sent ahead of the frames that
/// claim them.
const MAX_FDS_BUFFERED: usize = 4 * busbar_kernel::MAX_FDS_PER_MESSAGE as usize;

/// Gives each message in a request the fds that came with it. `Ok(false)`
/// if one is a Unix socket (refused: a connection passed over itself would
/// never be closed); an error if fewer fds came than the frame names.
fn claim_fds(request: &mut Request, fds_in: &mut VecDeque<OwnedFd>) -> Result<bool, WireError> {
    let outs: Vec<&mut Outgoing> = match request {
        Request::Send(a) => vec![&mut a.message],
        Request::SendBatch(v) => v.iter_mut().map(|a| &mut a.message).collect(),
        _ => return Ok(true),
    };
    let mut ok = true;
    for out in outs {
        let Some(att) = out.attached_fds() else {
            continue;
        };
        let n = att.count as usize;
        if fds_in.len() < n {
            return Err(WireError::Invalid("frame names more fds than came with it"));
        }
        let fds: Vec<OwnedFd> = fds_in.drain(..n).collect();
        ok &= !fds.iter().any(busbar_sys::is_unix_socket);
        out.set_attached_fds(Some(Attachment::from_fds(fds)));
    }
    Ok(ok)
}

/// Records the fds a response frame starting at `at` must carry.
fn note_fds(conn: &mut Conn, at: usize, result: &Result<Response, Errno>) {
    let atts: Vec<Attachment> = match result {
        Ok(Response::Recv(Some(m)) | Response::TakeReply(Some(m))) => {
            m.fds.iter().cloned().collect()
        }
        Ok(Response::RecvBatch(v)) => v.iter().filter_map(|m| m.fds.clone()).collect(),
        _ => Vec::new(),
    };
    if !atts.is_empty() {
        conn.fds_out.push_back((at, atts, 0));
    }
}

/// Stops a running daemon from another thread (as SIGTERM would).
#[derive(Debug)]
pub struct ShutdownHandle(UnixStream);

impl ShutdownHandle {
    /// Asks the daemon to shut down; it tells its clients (`ESHUTDOWN`),
    /// removes its socket file and returns from [`Daemon::run`].
    pub fn shutdown(&self) {
        let _ = (&self.0).write(&[1]);
    }
}

/// A daemon bound to its socket, ready to [`Daemon::run`].
#[derive(Debug)]
pub struct Daemon {
    kernel: Kernel<DaemonHost>,
    config: DaemonConfig,
    epoll: Epoll,
    listener: UnixListener,
    /// Kept open: epoll watches it for SIGTERM/SIGINT and shutdown handles.
    _stop_rx: UnixStream,
    stop_tx: UnixStream,
    conns: HashMap<u64, Conn, foldhash::fast::RandomState>,
    owners: HashMap<(BusId, EndpointId), u64, foldhash::fast::RandomState>,
    parked: HashMap<(BusId, EndpointId), Vec<Parked>, foldhash::fast::RandomState>,
    next_token: u64,
    max_frame: usize,
    scratch: Vec<u8>,
    to_flush: Vec<u64>,
    to_resume: Vec<u64>,
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Binds `path`: replaces a stale socket file, refuses if a live daemon
/// answers there, creates the directory (mode 0700) if needed.
fn bind_socket(path: &Path, mode: u32, group: Option<u32>) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        busbar_sys::set_mode(dir, 0o700)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(other(format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a busbar daemon is already running at {}", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), "replacing stale socket file");
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    busbar_sys::set_mode(path, mode)?;
    if let Some(g) = group {
        busbar_sys::set_group(path, g)?;
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl Daemon {
    /// Creates the kernel and binds the socket.
    pub fn bind(config: DaemonConfig) -> io::Result<Self> {
        let kernel = Kernel::new(DaemonHost::new(), config.kernel)
            .map_err(|e| other(format!("invalid limits: {e}")))?;
        let listener = bind_socket(&config.socket, config.socket_mode, config.socket_group)?;
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        stop_rx.set_nonblocking(true)?;
        let epoll = Epoll::new()?;
        let readable = Interest {
            read: true,
            write: false,
        };
        epoll.add(&listener, LISTENER, readable)?;
        epoll.add(&stop_rx, STOP, readable)?;
        let max_frame = (config.kernel.absolute_max_message_size as usize)
            .saturating_mul(2)
            .saturating_add(1 << 20);

        Ok(Self {
            kernel,
            config,
            epoll,
            listener,
            _stop_rx: stop_rx,
            stop_tx,
            conns: HashMap::default(),
            owners: HashMap::default(),
            parked: HashMap::default(),
            next_token: FIRST_CONN,
            max_frame,
            scratch: vec![0; 256 * 1024],
            to_flush: Vec::new(),
            to_resume: Vec::new(),
        })
    }

    /// The socket being served.
    pub fn socket_path(&self) -> &Path {
        &self.config.socket
    }

    /// A handle that stops [`Daemon::run`] from another thread.
    pub fn shutdown_handle(&self) -> io::Result<ShutdownHandle> {
        Ok(ShutdownHandle(self.stop_tx.try_clone()?))
    }

    /// Makes SIGTERM and SIGINT shut the daemon down cleanly.
    pub fn stop_on_signals(&self) -> io::Result<()> {
        busbar_sys::forward_signals(&[busbar_sys::SIGTERM, busbar_sys::SIGINT], &self.stop_tx)
    }

    /// Serves until shut down. Removes the socket file on the way out.
    pub fn run(mut self) -> io::Result<()> {
        // Logged here, once everything is set up: scripts wait for this line.
        tracing::info!(
            socket = %self.config.socket.display(),
            buses = self.config.kernel.buses,
            "busbar daemon listening"
        );
        let r = self.serve();
        let _ = std::fs::remove_file(&self.config.socket);
        r
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut ready: Vec<Ready> = Vec::with_capacity(256);
        loop {
            let timeout = self.alarm_timeout();
            ready.clear();
            self.epoll.wait(&mut ready, timeout)?;
            for r in &ready {
                match r.token {
                    LISTENER => self.accept_all(),
                    STOP => {
                        self.shutdown();
                        return Ok(());
                    }
                    t => {
                        if r.read || r.hangup {
                            self.read_conn(t);
                        }
                        if r.write {
                            self.to_flush.push(t);
                        }
                    }
                }
            }
            if self
                .kernel
                .host()
                .alarm
                .is_some_and(|a| self.kernel.host().now_ns() >= a)
            {
                self.kernel.handle_alarm();
                self.deliver_wakes(None);
            }
            self.expire_parked();
            self.flush_all();
        }
    }

    /// How long epoll may sleep: until the kernel's alarm or the earliest
    /// parked request's deadline.
    fn alarm_timeout(&mut self) -> Option<Duration> {
        let now_ns = self.kernel.host().now_ns();
        let alarm = self
            .kernel
            .host()
            .alarm
            .map(|at| Duration::from_nanos(at.saturating_sub(now_ns)));
        let now = Instant::now();
        let parked = self
            .parked
            .values()
            .flatten()
            .filter_map(|p| p.deadline)
            .min()
            .map(|d| d.saturating_duration_since(now));
        match (alarm, parked) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// Answers parked requests whose deadline has passed.
    fn expire_parked(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<(BusId, EndpointId)> = self
            .parked
            .iter()
            .filter(|(_, v)| v.iter().any(|p| p.deadline.is_some_and(|d| d <= now)))
            .map(|(k, _)| *k)
            .collect();
        for (bus, ep) in due {
            self.retry_parked(bus, ep, Some(now));
        }
        self.deliver_wakes(None);
    }

    /// Retries the parked requests of one endpoint, oldest first; answers
    /// those that find something (or fail, or are past `expired_at`).
    /// Returns whether the endpoint had parked requests.
    fn retry_parked(&mut self, bus: BusId, ep: EndpointId, expired_at: Option<Instant>) -> bool {
        let Some(list) = self.parked.remove(&(bus, ep)) else {
            return false;
        };
        let mut keep = Vec::new();
        for p in list {
            if !self.conns.contains_key(&p.token) {
                continue;
            }
            let op = p.request.code();
            let result = self.kernel.dispatch(bus, ep, p.request.clone());
            let expired = expired_at.is_some_and(|now| p.deadline.is_some_and(|d| d <= now));
            if is_empty_result(&result) && !expired {
                keep.push(p);
                continue;
            }
            let readable = self.kernel.host().readable(bus, ep);
            if let Some(conn) = self.conns.get_mut(&p.token) {
                conn.arm(bus, ep);
                let flags = if readable { FLAG_READABLE } else { 0 };
                let at = conn.out.len();
                emit_response(&mut conn.out, p.seq, op, flags, &result);
                note_fds(conn, at, &result);
                self.to_flush.push(p.token);
            }
        }
        if !keep.is_empty() {
            self.parked.insert((bus, ep), keep);
        }
        true
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog.
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            if self.conns.len() >= self.config.max_connections {
                tracing::warn!(
                    max = self.config.max_connections,
                    "connection refused: too many connections"
                );
                let mut out = Vec::new();
                emit_frame(&mut out, GOODBYE, 0, 0, Errno::EBUSY.number(), |_| {});
                let _ = (&stream).write(&out);
                continue;
            }
            let creds = match busbar_sys::peer_credentials(&stream) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("no peer credentials: {e}");
                    continue;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            if let Err(e) = self.epoll.add(
                &stream,
                token,
                Interest {
                    read: true,
                    write: false,
                },
            ) {
                tracing::warn!("cannot watch connection: {e}");
                continue;
            }
            tracing::debug!(token, pid = creds.pid, uid = creds.uid, "client connected");
            self.conns.insert(
                token,
                Conn {
                    stream,
                    creds,
                    reader: FrameReader::new(self.max_frame),
                    out: Vec::new(),
                    sent: 0,
                    state: State::Greeting,
                    endpoints: Vec::new(),
                    reading: true,
                    writing: false,
                    fds_in: VecDeque::new(),
                    fds_out: VecDeque::new(),
                },
            );
        }
    }

    fn read_conn(&mut self, t: u64) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(&t) else {
                return;
            };
            if !conn.reading {
                return;
            }
            let mut fds = Vec::new();
            let got = busbar_sys::recv_with_fds(&conn.stream, &mut self.scratch, &mut fds, true);
            conn.fds_in.extend(fds);
            if conn.fds_in.len() > MAX_FDS_BUFFERED {
                return self.violation(t, WireError::Invalid("too many unclaimed fds"), None);
            }
            match got {
                Ok(0) => return self.drop_conn(t, "closed by the client"),
                Ok(n) => {
                    conn.reader.buffer().extend_from_slice(&self.scratch[..n]);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.process_frames(t),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.drop_conn(t, &format!("read failed: {e}")),
            }
            self.process_frames(t);
            if budget == 0 {
                return;
            }
        }
    }

    fn process_frames(&mut self, t: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(&t) else {
                return;
            };
            if conn.state == State::Closing {
                return;
            }
            if conn.pending() > OUT_LIMIT {
                // Backpressure: leave the rest buffered (in the socket and
                // our reader) until the client reads what we sent.
                conn.reading = false;
                let _ = self.epoll.modify(&conn.stream, t, conn.interest());
                self.to_flush.push(t);
                return;
            }
            let frame = match conn.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.violation(t, e, None),
            };
            self.handle_frame(t, frame);
        }
    }

    fn handle_frame(&mut self, t: u64, frame: Frame) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        if conn.state == State::Greeting {
            self.to_flush.push(t);
            match parse_hello(&frame) {
                Ok(VERSION) => {
                    let welcome = Welcome {
                        version: VERSION,
                        max_frame: self.max_frame.min(u32::MAX as usize) as u32,
                        buses: self.kernel.bus_count(),
                    };
                    emit_welcome(&mut conn.out, welcome);
                    conn.state = State::Serving;
                }
                Ok(v) => {
                    tracing::warn!(
                        token = t,
                        version = v,
                        "client speaks another protocol version"
                    );
                    self.goodbye(t, Errno::EOPNOTSUPP);
                }
                Err(e) => self.violation(t, e, None),
            }
            return;
        }
        let seq = frame.header.seq;
        let wire = match parse_request(&frame) {
            Ok(w) => w,
            Err(e) => {
                return self.violation(
                    t,
                    e,
                    OpCode::from_u16(frame.header.kind).map(|op| (seq, op)),
                );
            }
        };
        let (bus, ep) = (BusId(wire.bus), EndpointId(wire.endpoint));
        let op = wire.request.code();
        let mut request = wire.request;
        let fds_ok = match claim_fds(&mut request, &mut conn.fds_in) {
            Ok(ok) => ok,
            Err(e) => return self.violation(t, e, Some((seq, op))),
        };
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        if let Request::TakeReply(id) = &mut request
            && frame.header.flags & FLAG_LAST_REQUEST != 0
        {
            // Pipelined call: the request this endpoint's last Send sent.
            *id = conn
                .owned(bus, ep)
                .and_then(|o| o.last_request)
                .unwrap_or(MessageId::NONE);
        }
        let wait = (frame.header.flags & FLAG_WAIT != 0 && can_wait(op)).then(|| {
            let ms = frame.header.status as u32;
            let deadline =
                (ms != WAIT_FOREVER).then(|| Instant::now() + Duration::from_millis(u64::from(ms)));
            (request.clone(), deadline)
        });
        let result = if op.scope() == Scope::Endpoint && !conn.owns(bus, ep) {
            Err(Errno::EPERM)
        } else if !fds_ok {
            Err(Errno::EOPNOTSUPP)
        } else if op == OpCode::Open && conn.endpoints.len() >= MAX_ENDPOINTS_PER_CONNECTION {
            Err(Errno::EBUSY)
        } else {
            let sends_request = matches!(&request, Request::Send(a) if a.message.is_request());
            if let Request::Open(c) = &mut request {
                // Credentials come from SO_PEERCRED, never from the client.
                *c = Credentials {
                    pid: conn.creds.pid,
                    uid: conn.creds.uid,
                    gid: conn.creds.gid,
                };
            }
            let r = self.kernel.dispatch(bus, ep, request);
            if op == OpCode::Send {
                let sent = match &r {
                    Ok(Response::Send(id)) if sends_request => Some(*id),
                    _ => None,
                };
                if let Some(o) = self.conns.get_mut(&t).and_then(|c| c.owned(bus, ep)) {
                    o.last_request = sent;
                }
            }
            r
        };
        match &result {
            Ok(Response::Open(new)) => {
                self.owners.insert((bus, *new), t);
                if let Some(c) = self.conns.get_mut(&t) {
                    c.endpoints.push(Owned {
                        bus,
                        ep: *new,
                        armed: true,
                        last_request: None,
                    });
                }
            }
            Ok(Response::Close(())) => self.forget_endpoint(t, bus, ep),
            _ => {}
        }
        // Wake-ups this operation caused for others; the requester learns
        // its own readiness from the response flag.
        self.deliver_wakes(Some((bus, ep)));
        let readable = op.scope() == Scope::Endpoint && self.kernel.host().readable(bus, ep);
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        conn.arm(bus, ep);
        if let Some((request, deadline)) = wait {
            let live = deadline.is_none_or(|d| d > Instant::now());
            if live && is_empty_result(&result) {
                self.parked.entry((bus, ep)).or_default().push(Parked {
                    token: t,
                    seq,
                    request,
                    deadline,
                });
                return;
            }
        }
        if frame.header.flags & FLAG_QUIET != 0 && result.is_ok() {
            return;
        }
        let flags = if readable { FLAG_READABLE } else { 0 };
        let at = conn.out.len();
        emit_response(&mut conn.out, seq, op, flags, &result);
        note_fds(conn, at, &result);
        self.to_flush.push(t);
    }

    fn forget_endpoint(&mut self, t: u64, bus: BusId, ep: EndpointId) {
        self.retry_parked(bus, ep, None);
        self.owners.remove(&(bus, ep));
        self.kernel.host_mut().levels.remove(&(bus, ep));
        if let Some(c) = self.conns.get_mut(&t) {
            c.endpoints.retain(|o| !(o.bus == bus && o.ep == ep));
        }
    }

    /// Handles the kernel's wake-ups: parked requests of a woken endpoint are
    /// retried; an endpoint with none gets a `Wake` frame (at most one
    /// between two of its requests). Retries can wake others in turn, so this
    /// runs until nothing is left.
    fn deliver_wakes(&mut self, except: Option<(BusId, EndpointId)>) {
        loop {
            let mut woken = mem::take(&mut self.kernel.host_mut().woken);
            if woken.is_empty() {
                self.kernel.host_mut().woken = woken;
                return;
            }
            woken.sort_unstable();
            woken.dedup();
            for &(bus, ep) in &woken {
                // Parked requests are retried even for the requester (another
                // thread of it may be waiting); only its Wake is left to the
                // response flag.
                if self.retry_parked(bus, ep, None) || Some((bus, ep)) == except {
                    continue;
                }
                let Some(&t) = self.owners.get(&(bus, ep)) else {
                    continue;
                };
                let Some(conn) = self.conns.get_mut(&t) else {
                    continue;
                };
                if conn.state == State::Serving && conn.disarm(bus, ep) {
                    emit_frame(&mut conn.out, WAKE, 0, 0, 0, |b| {
                        b.extend_from_slice(&bus.0.to_le_bytes());
                        b.extend_from_slice(&ep.0.to_le_bytes());
                    });
                    self.to_flush.push(t);
                }
            }
            woken.clear();
            let fresh = mem::replace(&mut self.kernel.host_mut().woken, woken);
            self.kernel.host_mut().woken.extend(fresh);
        }
    }

    /// A protocol violation: answer the request if it can be addressed,
    /// say goodbye, close.
    fn violation(&mut self, t: u64, e: WireError, addressed: Option<(u32, OpCode)>) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        tracing::warn!(
            token = t,
            pid = conn.creds.pid,
            "protocol violation: {e}; closing the connection"
        );
        if let Some((seq, op)) = addressed {
            emit_response(&mut conn.out, seq, op, 0, &Err(Errno::EPROTO));
        }
        self.goodbye(t, Errno::EPROTO);
    }

    fn goodbye(&mut self, t: u64, why: Errno) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        emit_frame(&mut conn.out, GOODBYE, 0, 0, why.number(), |_| {});
        conn.state = State::Closing;
        conn.reading = false;
        let _ = self.epoll.modify(&conn.stream, t, conn.interest());
        self.to_flush.push(t);
    }

    fn flush_all(&mut self) {
        while !self.to_flush.is_empty() || !self.to_resume.is_empty() {
            let mut list = mem::take(&mut self.to_flush);
            // In the order output was produced (a woken peer before the
            // requester that woke it), each connection once.
            let mut firsts: Vec<(u64, usize)> =
                list.iter().enumerate().map(|(i, &t)| (t, i)).collect();
            firsts.sort_unstable();
            firsts.dedup_by_key(|x| x.0);
            firsts.sort_unstable_by_key(|x| x.1);
            list.clear();
            list.extend(firsts.iter().map(|x| x.0));
            for t in list.drain(..) {
                self.flush_conn(t);
            }
            self.to_flush = list;
            for t in mem::take(&mut self.to_resume) {
                self.process_frames(t);
            }
        }
    }

    fn flush_conn(&mut self, t: u64) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        while conn.sent < conn.out.len() {
            // Bytes up to the next frame that carries fds go with write();
            // that frame's first byte goes with its fds (sendmsg).
            let with_fds = conn.fds_out.front().is_some_and(|f| f.0 == conn.sent);
            let end = conn
                .fds_out
                .iter()
                .map(|f| f.0)
                .find(|&o| o > conn.sent)
                .unwrap_or(conn.out.len());
            let r = if with_fds {
                let (_, atts, done) = conn.fds_out.front().expect("checked above");
                let fds: Vec<BorrowedFd<'_>> = atts
                    .iter()
                    .filter_map(Attachment::fds)
                    .flatten()
                    .map(AsFd::as_fd)
                    .skip(*done)
                    .collect();
                busbar_sys::send_with_fds(&conn.stream, &conn.out[conn.sent..end], &fds)
                    .map(|(n, sent)| (n, sent, sent == fds.len()))
            } else {
                conn.stream
                    .write(&conn.out[conn.sent..end])
                    .map(|n| (n, 0, false))
            };
            match r {
                Ok((n, fds_sent, all_sent)) => {
                    conn.sent += n;
                    if with_fds {
                        if all_sent {
                            conn.fds_out.pop_front();
                        } else if let Some(front) = conn.fds_out.front_mut() {
                            // The rest ride on the next byte.
                            front.0 = conn.sent;
                            front.2 += fds_sent;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.drop_conn(t, &format!("write failed: {e}")),
            }
        }
        if conn.sent == conn.out.len() {
            conn.out.clear();
            conn.sent = 0;
        } else if conn.sent > OUT_LIMIT {
            conn.out.drain(..conn.sent);
            for f in &mut conn.fds_out {
                f.0 -= conn.sent;
            }
            conn.sent = 0;
        }
        let stuck = conn.pending() > 0;
        let mut changed = stuck != conn.writing;
        conn.writing = stuck;
        if conn.state == State::Closing && !stuck {
            return self.drop_conn(t, "closed after goodbye");
        }
        if !conn.reading && conn.state != State::Closing && conn.pending() <= OUT_LIMIT / 2 {
            conn.reading = true;
            changed = true;
            self.to_resume.push(t);
        }
        if changed {
            let _ = self.epoll.modify(&conn.stream, t, conn.interest());
        }
    }

    fn drop_conn(&mut self, t: u64, why: &str) {
        let Some(conn) = self.conns.remove(&t) else {
            return;
        };
        let _ = self.epoll.delete(&conn.stream);
        for list in self.parked.values_mut() {
            list.retain(|p| p.token != t);
        }
        self.parked.retain(|_, v| !v.is_empty());
        tracing::debug!(
            token = t,
            pid = conn.creds.pid,
            endpoints = conn.endpoints.len(),
            "client gone: {why}"
        );
        for &Owned { bus, ep, .. } in &conn.endpoints {
            self.owners.remove(&(bus, ep));
            let _ = self.kernel.dispatch(bus, ep, Request::Close(()));
            self.kernel.host_mut().levels.remove(&(bus, ep));
        }
        self.deliver_wakes(None);
    }

    fn shutdown(&mut self) {
        tracing::info!(clients = self.conns.len(), "shutting down");
        for (_, conn) in self.conns.iter_mut() {
            emit_frame(
                &mut conn.out,
                GOODBYE,
                0,
                0,
                Errno::ESHUTDOWN.number(),
                |_| {},
            );
            // Best effort: one non-blocking write of what is pending.
            let _ = conn.stream.write(&conn.out[conn.sent..]);
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        self.conns.clear();
    }
}

/// Binds and runs a daemon until SIGTERM/SIGINT.
pub fn run_daemon(config: DaemonConfig) -> io::Result<()> {
    match busbar_sys::raise_fd_limit() {
        Ok(n) => tracing::debug!(fds = n, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let d = Daemon::bind(config)?;
    d.stop_on_signals()?;
    d.run()
}

/// The socket path a daemon started with `socket` would use.
pub fn resolve_socket(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(busbar_sys::default_socket_path)
}
