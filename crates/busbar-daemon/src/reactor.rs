//! The reactor: an epoll shell over the sans-IO [`Server`] session. One
//! thread, one epoll set; it reads bytes and fds, writes what the session
//! asks, tells it the time, and owns nothing of the protocol.
//!
//! Out of fds: when `accept` fails with `EMFILE`/`ENFILE`, the listener is
//! taken out of the epoll set for a back-off (10 ms doubling to 1 s), one
//! log line per episode, so the loop never spins; a reserve fd is freed to
//! accept and refuse one client cleanly (`Goodbye` `EMFILE`) per episode.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busbar_kernel::{Credentials, Errno, Level, Nanos};
use busbar_server::{ConnId, ReceivedFd, Server, Status, WriteError, goodbye_frame};
use busbar_sys::{Epoll, Interest, Ready};

use crate::DaemonConfig;
use crate::socket_dir::bind_socket;

const LISTENER: u64 = 0;
const STOP: u64 = 1;
/// Epoll token of connection `c`: `c + CONN_TOKEN`.
const CONN_TOKEN: u64 = 2;

/// Bytes read from one connection per readiness event (fairness).
const READ_BUDGET: usize = 1 << 20;
/// Longest pause of `accept` after running out of fds.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

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

#[derive(Debug)]
struct Stream {
    stream: UnixStream,
    interest: Interest,
}

/// A daemon bound to its socket, ready to [`Daemon::run`].
#[derive(Debug)]
pub struct Daemon {
    server: Server,
    config: DaemonConfig,
    epoll: Epoll,
    listener: UnixListener,
    /// The listening socket was passed in (socket activation): its file is
    /// not ours to remove.
    activated: bool,
    /// Kept open: epoll watches it for SIGTERM/SIGINT and shutdown handles.
    _stop_rx: UnixStream,
    stop_tx: UnixStream,
    streams: HashMap<ConnId, Stream, foldhash::fast::RandomState>,
    epoch: Instant,
    scratch: Vec<u8>,
    /// Accepting is paused until then (out of fds).
    accept_paused_until: Option<Instant>,
    accept_backoff: Duration,
    /// An fd kept to be freed when out of fds, to refuse one client cleanly.
    reserve: Option<OwnedFd>,
}

fn log_line(level: Level, args: std::fmt::Arguments<'_>) {
    match level {
        Level::Error => tracing::error!(target: "busbar", "{args}"),
        Level::Warn => tracing::warn!(target: "busbar", "{args}"),
        Level::Info => tracing::info!(target: "busbar", "{args}"),
        Level::Debug => tracing::debug!(target: "busbar", "{args}"),
    }
}

fn open_reserve() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

impl Daemon {
    /// Checks the config, binds the socket (see `socket_dir`), and creates
    /// the session. Nothing is created or logged if the config is unusable
    /// or another daemon answers on the socket.
    pub fn bind(config: DaemonConfig) -> io::Result<Self> {
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = bind_socket(&config.socket, config.socket_mode, config.socket_group)?;
        let socket = config.socket.clone();
        Self::with_listener(config, listener, false).inspect_err(|_| {
            let _ = std::fs::remove_file(&socket);
        })
    }

    /// A daemon serving a listening socket it was given (socket
    /// activation): the socket's owner made it, and removes it.
    pub fn from_listener(config: DaemonConfig, listener: UnixListener) -> io::Result<Self> {
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        listener.set_nonblocking(true)?;
        Self::with_listener(config, listener, true)
    }

    fn with_listener(
        config: DaemonConfig,
        listener: UnixListener,
        activated: bool,
    ) -> io::Result<Self> {
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), Instant::now());
        let server = Server::new(
            config.kernel,
            config.limits.clone(),
            config.privilege(),
            seed,
            Box::new(log_line),
        )
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the daemon's limits are not usable ({})", e.name()),
            )
        })?;
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        stop_rx.set_nonblocking(true)?;
        let epoll = Epoll::new()?;
        let readable = Interest {
            read: true,
            write: false,
        };
        epoll.add(&listener, LISTENER, readable)?;
        epoll.add(&stop_rx, STOP, readable)?;
        Ok(Self {
            server,
            config,
            epoll,
            listener,
            activated,
            _stop_rx: stop_rx,
            stop_tx,
            streams: HashMap::default(),
            epoch: Instant::now(),
            scratch: vec![0; 256 * 1024],
            accept_paused_until: None,
            accept_backoff: Duration::ZERO,
            reserve: open_reserve(),
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

    /// Serves until shut down. Removes the socket file on the way out
    /// (unless it was passed in). Tells systemd (`$NOTIFY_SOCKET`, if set)
    /// when it is ready and when it stops.
    pub fn run(mut self) -> io::Result<()> {
        // Logged here, once everything is set up: scripts wait for this line.
        tracing::info!(
            socket = %self.config.socket.display(),
            buses = self.config.kernel.buses,
            activated = self.activated,
            "busbar daemon listening"
        );
        if let Some(addr) = self.config.metrics_listen {
            let bound = crate::metrics::serve_http(addr, self.config.socket.clone())?;
            tracing::info!(address = %bound, "serving metrics at http://{bound}/metrics");
        }
        let status = format!(
            "READY=1\nSTATUS=serving {} bus(es) on {}",
            self.config.kernel.buses,
            self.config.socket.display()
        );
        if let Err(e) = busbar_sys::systemd::notify(&status) {
            tracing::warn!("cannot notify systemd of readiness: {e}");
        }
        let r = self.serve();
        let _ = busbar_sys::systemd::notify("STOPPING=1\nSTATUS=stopping");
        if !self.activated {
            let _ = std::fs::remove_file(&self.config.socket);
        }
        r
    }

    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut ready: Vec<Ready> = Vec::with_capacity(256);
        loop {
            let timeout = self.timeout();
            ready.clear();
            self.epoll.wait(&mut ready, timeout)?;
            for r in &ready {
                match r.token {
                    LISTENER => self.accept_all(),
                    STOP => {
                        self.shutdown();
                        return Ok(());
                    }
                    token => {
                        let t = token - CONN_TOKEN;
                        if self.server.wants_read(t) && (r.read || r.hangup) {
                            self.read_conn(t);
                        } else if r.hangup {
                            // The peer is gone both ways: nothing more can
                            // be read or delivered.
                            self.server.handle_disconnect(self.now(), t, "hung up");
                        } else if r.read {
                            // Registered for reading when the session no
                            // longer wants to read (its user's limits changed
                            // meanwhile): update the interest, don't spin.
                            self.server.refresh(t);
                        }
                        if r.write {
                            self.server.handle_writable(t);
                        }
                    }
                }
            }
            let now = self.now();
            if self.server.poll_timeout().is_some_and(|at| at <= now) {
                self.server.handle_timeout(now);
            }
            if self
                .accept_paused_until
                .is_some_and(|t| t <= Instant::now())
            {
                self.accept_paused_until = None;
                let _ = self.epoll.add(
                    &self.listener,
                    LISTENER,
                    Interest {
                        read: true,
                        write: false,
                    },
                );
            }
            self.flush_all();
        }
    }

    /// How long epoll may sleep: until the session's next deadline or the
    /// end of an accept back-off.
    fn timeout(&self) -> Option<Duration> {
        let now = self.now();
        let session = self
            .server
            .poll_timeout()
            .map(|at| Duration::from_nanos(at.saturating_sub(now)));
        let accept = self
            .accept_paused_until
            .map(|t| t.saturating_duration_since(Instant::now()));
        match (session, accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.pause_accepting(&e),
            };
            self.accept_backoff = Duration::ZERO;
            if self.reserve.is_none() {
                self.reserve = open_reserve();
            }
            let creds = match busbar_sys::peer_credentials(&stream) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("no peer credentials: {e}");
                    continue;
                }
            };
            let creds = Credentials {
                pid: creds.pid,
                uid: creds.uid,
                gid: creds.gid,
            };
            let id = match self.server.handle_connect(self.now(), creds) {
                Ok(id) => id,
                Err(e) => {
                    let _ = (&stream).write(&goodbye_frame(e));
                    continue;
                }
            };
            let interest = Interest {
                read: true,
                write: false,
            };
            if stream.set_nonblocking(true).is_err()
                || self.epoll.add(&stream, id + CONN_TOKEN, interest).is_err()
            {
                self.server
                    .handle_disconnect(self.now(), id, "cannot watch the connection");
                continue;
            }
            tracing::debug!(id, pid = creds.pid, uid = creds.uid, "client connected");
            self.streams.insert(id, Stream { stream, interest });
        }
    }

    /// Out of fds (or another accept failure): stop watching the listener
    /// for a while instead of spinning on it; refuse one waiting client
    /// cleanly with the reserve fd.
    fn pause_accepting(&mut self, e: &io::Error) {
        let first = self.accept_backoff.is_zero();
        self.accept_backoff =
            (self.accept_backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
        if first {
            tracing::warn!(
                "accept failed: {e}; pausing new connections (back-off up to {:?}) until fds are free",
                MAX_ACCEPT_BACKOFF
            );
        }
        if self.reserve.take().is_some()
            && let Ok((s, _)) = self.listener.accept()
        {
            let _ = (&s).write(&goodbye_frame(Errno::EMFILE));
            drop(s);
            // Take the slot back at once, or the next accept would serve
            // a client with no fd to spare.
            self.reserve = open_reserve();
        }
        let _ = self.epoll.delete(&self.listener);
        self.accept_paused_until = Some(Instant::now() + self.accept_backoff);
    }

    fn read_conn(&mut self, t: ConnId) {
        let mut budget = READ_BUDGET;
        while budget > 0 && self.server.wants_read(t) {
            let Some(s) = self.streams.get(&t) else {
                return;
            };
            let mut fds = Vec::new();
            let got = busbar_sys::recv_with_fds(&s.stream, &mut self.scratch, &mut fds, true);
            let fds: Vec<ReceivedFd> = fds
                .into_iter()
                .map(|fd| ReceivedFd {
                    unix_socket: busbar_sys::is_unix_socket(&fd),
                    fd,
                })
                .collect();
            let now = self.now();
            match got {
                Ok(0) => {
                    self.server.handle_input(now, t, &[], fds);
                    return self.server.handle_eof(now, t);
                }
                Ok(n) => {
                    self.server.handle_input(now, t, &self.scratch[..n], fds);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.server.handle_input(now, t, &[], fds);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return self
                        .server
                        .handle_disconnect(now, t, &format!("read failed: {e}"));
                }
            }
        }
    }

    fn flush_all(&mut self) {
        while let Some(c) = self.server.poll_dirty() {
            self.flush_conn(c);
            match self.server.status(c) {
                Status::Closed => {
                    if let Some(s) = self.streams.remove(&c) {
                        let _ = self.epoll.delete(&s.stream);
                    }
                }
                Status::Open { read, write } => {
                    if let Some(s) = self.streams.get_mut(&c) {
                        let interest = Interest { read, write };
                        if interest != s.interest {
                            s.interest = interest;
                            let _ = self.epoll.modify(&s.stream, c + CONN_TOKEN, interest);
                        }
                    }
                }
            }
        }
    }

    fn flush_conn(&mut self, c: ConnId) {
        loop {
            let Some(s) = self.streams.get(&c) else {
                return;
            };
            let Some((bytes, fds)) = self.server.poll_transmit(c) else {
                return;
            };
            let r = if fds.is_empty() {
                (&s.stream).write(bytes).map(|n| (n, 0))
            } else {
                busbar_sys::send_with_fds(&s.stream, bytes, &fds)
            };
            let now = self.now();
            match r {
                Ok((n, nfds)) => self.server.handle_sent(now, c, n, nfds),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(Errno::ETOOMANYREFS.number()) => {
                    return self
                        .server
                        .handle_write_error(now, c, WriteError::TooManyRefs);
                }
                Err(e) => {
                    tracing::debug!(c, "write failed: {e}");
                    return self.server.handle_write_error(now, c, WriteError::Broken);
                }
            }
        }
    }

    fn shutdown(&mut self) {
        tracing::info!(clients = self.streams.len(), "shutting down");
        for c in self.server.shutdown() {
            // Best effort: non-blocking writes of what is pending.
            while let (Some(s), Some((bytes, _))) =
                (self.streams.get(&c), self.server.poll_transmit(c))
            {
                match (&s.stream).write(bytes) {
                    Ok(n) if n > 0 => self.server.handle_sent(self.now(), c, n, 0),
                    _ => break,
                }
            }
            if let Some(s) = self.streams.remove(&c) {
                let _ = s.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Binds (or takes the socket passed by socket activation) and runs a
/// daemon until SIGTERM/SIGINT.
pub fn run_daemon(mut config: DaemonConfig) -> io::Result<()> {
    config
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let passed = busbar_sys::systemd::listen_fds()?;
    let d = match passed.len() {
        0 => {
            raise_fd_limit();
            Daemon::bind(config)?
        }
        1 => {
            let fd = passed.into_iter().next().expect("one fd");
            if let Some(path) = busbar_sys::systemd::unix_listener_path(&fd)? {
                config.socket = path;
            }
            raise_fd_limit();
            Daemon::from_listener(config, UnixListener::from(fd))?
        }
        n => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "socket activation passed {n} sockets; busbar serves one (give the \
                     .socket unit a single ListenStream=)"
                ),
            ));
        }
    };
    d.stop_on_signals()?;
    d.run()
}

fn raise_fd_limit() {
    match busbar_sys::raise_fd_limit() {
        Ok(n) => tracing::debug!(fds = n, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}

/// The socket path a daemon started with `socket` would use.
pub fn resolve_socket(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(busbar_sys::default_socket_path)
}
