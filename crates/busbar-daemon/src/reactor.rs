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

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::mem;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use busbar_kernel::{
    BusId, Credentials, EndpointId, Errno, Kernel, OpCode, Request, Response, Scope,
};
use busbar_sys::{Epoll, Interest, ProcessCredentials, Ready};
use busbar_wire::{
    FLAG_READABLE, Frame, FrameReader, GOODBYE, VERSION, WAKE, Welcome, WireError, emit_frame,
    emit_response, emit_welcome, parse_hello, parse_request,
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
    /// Endpoints opened through this connection, with whether a `Wake` may
    /// be sent for them (re-armed by every request on them).
    endpoints: Vec<(BusId, EndpointId, bool)>,
    /// Registered for readability (false while backpressured or closing).
    reading: bool,
    /// Registered for writability (while output is stuck).
    writing: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    fn owns(&self, bus: BusId, ep: EndpointId) -> bool {
        self.endpoints.iter().any(|&(b, e, _)| b == bus && e == ep)
    }

    fn arm(&mut self, bus: BusId, ep: EndpointId) {
        if let Some(x) = self.endpoints.iter_mut().find(|x| x.0 == bus && x.1 == ep) {
            x.2 = true;
        }
    }

    /// Takes the right to send a `Wake` for this endpoint.
    fn disarm(&mut self, bus: BusId, ep: EndpointId) -> bool {
        match self.endpoints.iter_mut().find(|x| x.0 == bus && x.1 == ep) {
            Some(x) => mem::replace(&mut x.2, false),
            None => false,
        }
    }

    fn interest(&self) -> Interest {
        Interest {
            read: self.reading,
            write: self.writing,
        }
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
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            busbar_sys::set_mode(dir, 0o700)?;
        }
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
    pub fn bind(config: DaemonConfig) -> io::Result<Daemon> {
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
        tracing::info!(
            socket = %config.socket.display(),
            buses = config.kernel.buses,
            "busbar daemon listening"
        );
        Ok(Daemon {
            kernel,
            config,
            epoll,
            listener,
            _stop_rx: stop_rx,
            stop_tx,
            conns: HashMap::default(),
            owners: HashMap::default(),
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
            self.flush_all();
        }
    }

    fn alarm_timeout(&mut self) -> Option<Duration> {
        let at = self.kernel.host().alarm?;
        let now = self.kernel.host().now_ns();
        Some(Duration::from_nanos(at.saturating_sub(now)))
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
            match conn.stream.read(&mut self.scratch) {
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
        self.to_flush.push(t);
        if conn.state == State::Greeting {
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
        let result = if op.scope() == Scope::Endpoint && !conn.owns(bus, ep) {
            Err(Errno::EPERM)
        } else if op == OpCode::Open && conn.endpoints.len() >= MAX_ENDPOINTS_PER_CONNECTION {
            Err(Errno::EBUSY)
        } else {
            if let Request::Open(c) = &mut request {
                // Credentials come from SO_PEERCRED, never from the client.
                *c = Credentials {
                    pid: conn.creds.pid,
                    uid: conn.creds.uid,
                    gid: conn.creds.gid,
                };
            }
            self.kernel.dispatch(bus, ep, request)
        };
        match &result {
            Ok(Response::Open(new)) => {
                self.owners.insert((bus, *new), t);
                if let Some(c) = self.conns.get_mut(&t) {
                    c.endpoints.push((bus, *new, true));
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
        let flags = if readable { FLAG_READABLE } else { 0 };
        emit_response(&mut conn.out, seq, op, flags, &result);
    }

    fn forget_endpoint(&mut self, t: u64, bus: BusId, ep: EndpointId) {
        self.owners.remove(&(bus, ep));
        self.kernel.host_mut().levels.remove(&(bus, ep));
        if let Some(c) = self.conns.get_mut(&t) {
            c.endpoints.retain(|&(b, e, _)| !(b == bus && e == ep));
        }
    }

    /// Turns the kernel's wake-ups into `Wake` frames (at most one per
    /// endpoint between two of its requests).
    fn deliver_wakes(&mut self, except: Option<(BusId, EndpointId)>) {
        let mut woken = mem::take(&mut self.kernel.host_mut().woken);
        for &(bus, ep) in &woken {
            if Some((bus, ep)) == except {
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
        self.kernel.host_mut().woken = woken;
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
            list.sort_unstable();
            list.dedup();
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
            match conn.stream.write(&conn.out[conn.sent..]) {
                Ok(n) => conn.sent += n,
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
        tracing::debug!(
            token = t,
            pid = conn.creds.pid,
            endpoints = conn.endpoints.len(),
            "client gone: {why}"
        );
        for &(bus, ep, _) in &conn.endpoints {
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
