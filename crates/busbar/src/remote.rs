//! The daemon transport: the same API over a Unix socket to `busbar daemon`.
//!
//! Each endpoint has its own connection (so a slow or blocked endpoint never
//! holds up another), plus one control connection per `Bus` for bus-scoped
//! operations. A call writes one request frame and reads until its response;
//! `Wake` frames read on the way bump the endpoint's generation. The daemon
//! sends at most one `Wake` between two requests on an endpoint, so waiting
//! is: read the generation, make a request, and if it found nothing, wait
//! for the socket to deliver a `Wake`.
//!
//! The readiness fd is an epoll set holding the socket (a `Wake` waiting
//! in it) and a local eventfd that mirrors the last readiness the daemon
//! reported in a response: level-triggered, like the in-process one.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use busbar_kernel::{BusId, EndpointId, Errno, Request, Response};
use busbar_sys::{Epoll, Interest, ReadinessFd};
use busbar_wire::{
    FLAG_READABLE, Frame, FrameReader, GOODBYE, RESPONSE, VERSION, WAKE, emit_hello, emit_request,
    parse_response, parse_welcome,
};

use crate::transport::{Connector, Link};

/// Frames the client accepts (responses may carry many messages).
const CLIENT_MAX_FRAME: usize = u32::MAX as usize;

fn io_errno(e: &io::Error) -> Errno {
    match e.kind() {
        io::ErrorKind::NotFound => Errno::ENOENT,
        io::ErrorKind::ConnectionRefused => Errno::ECONNREFUSED,
        io::ErrorKind::PermissionDenied => Errno::EPERM,
        _ => Errno::ECONNRESET,
    }
}

/// One connection to the daemon.
#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    reader: FrameReader,
    out: Vec<u8>,
    seq: u32,
    /// `Wake` frames seen.
    wakes: u64,
    /// The daemon said goodbye (or the connection broke): every call fails with this.
    dead: Option<Errno>,
    /// Largest frame the daemon accepts.
    max_frame: usize,
}

impl Conn {
    fn connect(path: &Path) -> Result<Conn, Errno> {
        let stream = UnixStream::connect(path).map_err(|e| io_errno(&e))?;
        let mut c = Conn {
            stream,
            reader: FrameReader::new(CLIENT_MAX_FRAME),
            out: Vec::new(),
            seq: 0,
            wakes: 0,
            dead: None,
            max_frame: 0,
        };
        emit_hello(&mut c.out);
        c.write_out()?;
        let f = c.read_frame()?;
        if f.header.kind == GOODBYE {
            return Err(Errno::from_number(f.header.status).unwrap_or(Errno::EPROTO));
        }
        let w = parse_welcome(&f).map_err(|_| Errno::EPROTO)?;
        if w.version != VERSION {
            return Err(Errno::EOPNOTSUPP);
        }
        c.max_frame = w.max_frame as usize;
        Ok(c)
    }

    fn write_out(&mut self) -> Result<(), Errno> {
        let r = self.stream.write_all(&self.out);
        self.out.clear();
        r.map_err(|_| self.die(Errno::ECONNRESET))
    }

    fn die(&mut self, e: Errno) -> Errno {
        *self.dead.get_or_insert(e)
    }

    /// Reads until a whole frame is buffered (blocking).
    fn read_frame(&mut self) -> Result<Frame, Errno> {
        loop {
            match self.reader.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(_) => return Err(self.die(Errno::EPROTO)),
            }
            let mut buf = [0u8; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(self.die(Errno::ECONNRESET)),
                Ok(n) => self.reader.buffer().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.die(Errno::ECONNRESET)),
            }
        }
    }

    /// Handles a frame that is not the response being waited for.
    fn unsolicited(&mut self, f: &Frame) -> Result<(), Errno> {
        match f.header.kind {
            WAKE => {
                self.wakes += 1;
                Ok(())
            }
            GOODBYE => {
                let why = Errno::from_number(f.header.status).unwrap_or(Errno::ESHUTDOWN);
                Err(self.die(why))
            }
            _ => Err(self.die(Errno::EPROTO)),
        }
    }

    /// Performs one operation; returns the result and the response flags.
    fn call(
        &mut self,
        bus: BusId,
        ep: EndpointId,
        request: &Request,
    ) -> Result<(Result<Response, Errno>, u16), Errno> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        emit_request(&mut self.out, seq, bus.0, ep.0, request);
        if self.out.len() > self.max_frame {
            self.out.clear();
            return Ok((Err(Errno::EMSGSIZE), 0));
        }
        self.write_out()?;
        loop {
            let f = self.read_frame()?;
            if f.header.kind & RESPONSE != 0 && f.header.seq == seq {
                let r = parse_response(&f).map_err(|_| self.die(Errno::EPROTO))?;
                return Ok((r, f.header.flags));
            }
            self.unsolicited(&f)?;
        }
    }

    /// Processes whatever frames can be read without blocking.
    fn pump(&mut self) -> Result<(), Errno> {
        loop {
            match self.reader.next_frame() {
                Ok(Some(f)) => {
                    self.unsolicited(&f)?;
                    continue;
                }
                Ok(None) => {}
                Err(_) => return Err(self.die(Errno::EPROTO)),
            }
            let mut buf = [0u8; 16 * 1024];
            match rustix::net::recv(&self.stream, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err(self.die(Errno::ECONNRESET)),
                Ok((n, _)) => self.reader.buffer().extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Err(self.die(Errno::ECONNRESET)),
            }
        }
    }
}

/// A way to reach the buses of one daemon.
#[derive(Debug)]
pub(crate) struct RemoteConnector {
    path: PathBuf,
    control: Mutex<Conn>,
}

impl RemoteConnector {
    pub(crate) fn connect(path: &Path) -> Result<Self, Errno> {
        Ok(RemoteConnector {
            path: path.to_owned(),
            control: Mutex::new(Conn::connect(path)?),
        })
    }
}

fn lock(m: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connector for RemoteConnector {
    fn open(&self, bus: BusId) -> Result<Box<dyn Link>, Errno> {
        let mut conn = Conn::connect(&self.path)?;
        // The daemon stamps SO_PEERCRED credentials over these.
        let (r, _) = conn.call(bus, EndpointId::BUS, &Request::Open(Default::default()))?;
        let Response::Open(endpoint) = r? else {
            return Err(Errno::EPROTO);
        };
        let level = ReadinessFd::new().map_err(|_| Errno::EIO)?;
        let epoll = Epoll::new().map_err(|_| Errno::EIO)?;
        let read = Interest {
            read: true,
            write: false,
        };
        epoll.add(&conn.stream, 0, read).map_err(|_| Errno::EIO)?;
        epoll.add(&level, 1, read).map_err(|_| Errno::EIO)?;
        let wait_fd = conn.stream.try_clone().map_err(|_| Errno::EIO)?;
        Ok(Box::new(RemoteLink {
            wait_fd,
            conn: Mutex::new(conn),
            bus,
            endpoint,
            generation: AtomicU64::new(0),
            readable: AtomicBool::new(false),
            readiness: OnceLock::new(),
            closed: AtomicBool::new(false),
        }))
    }

    fn call(&self, bus: BusId, request: Request) -> Result<Response, Errno> {
        lock(&self.control).call(bus, EndpointId::BUS, &request)?.0
    }
}

#[derive(Debug)]
struct RemoteLink {
    conn: Mutex<Conn>,
    bus: BusId,
    endpoint: EndpointId,
    generation: AtomicU64,
    /// The last readiness level learnt from the daemon.
    readable: AtomicBool,
    /// Made on first use of `readiness_fd`: an eventfd mirroring `readable`,
    /// and an epoll set holding it and the socket.
    readiness: OnceLock<(ReadinessFd, Epoll)>,
    /// A second fd for the socket, to sleep on without holding the lock.
    wait_fd: UnixStream,
    closed: AtomicBool,
}

impl RemoteLink {
    /// Publishes what a locked connection learnt: new wakes bump the
    /// generation; a response's flag (or a new wake) sets the readiness level.
    fn learn(&self, conn: &Conn, wakes_before: u64, flags: Option<u16>) {
        let new = conn.wakes - wakes_before;
        if new > 0 {
            self.generation.fetch_add(new, Ordering::SeqCst);
        }
        let level = match flags {
            Some(f) => Some(f & FLAG_READABLE != 0),
            None => (new > 0).then_some(true),
        };
        if let Some(level) = level {
            self.readable.store(level, Ordering::SeqCst);
            if let Some((fd, _)) = self.readiness.get() {
                // Failing to flip our own eventfd only degrades poll() to the socket.
                let _ = if level { fd.set() } else { fd.clear() };
            }
        }
    }
}

impl Link for RemoteLink {
    fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    fn call(&self, request: Request) -> Result<Response, Errno> {
        let mut conn = lock(&self.conn);
        let before = conn.wakes;
        let (r, flags) = conn.call(self.bus, self.endpoint, &request)?;
        self.learn(&conn, before, Some(flags));
        r
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn wait_change(&self, seen: u64, deadline: Option<Instant>) -> Result<bool, Errno> {
        loop {
            if self.generation.load(Ordering::SeqCst) != seen {
                return Ok(true);
            }
            {
                let mut conn = lock(&self.conn);
                let before = conn.wakes;
                let r = conn.pump();
                self.learn(&conn, before, None);
                r?;
            }
            if self.generation.load(Ordering::SeqCst) != seen {
                return Ok(true);
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
            };
            // Sleep until the socket has something (a Wake), without the lock
            // so other threads can use the endpoint meanwhile.
            let woke = busbar_sys::wait_readable(
                self.wait_fd.as_fd(),
                timeout.map(|t| t.min(Duration::from_secs(3600))),
            )
            .map_err(|_| Errno::EIO)?;
            if !woke && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        if self.readiness.get().is_none() {
            // Under the connection lock, so the level cannot change meanwhile.
            let _conn = lock(&self.conn);
            if self.readiness.get().is_none() {
                let level = ReadinessFd::new().map_err(|_| Errno::EIO)?;
                let epoll = Epoll::new().map_err(|_| Errno::EIO)?;
                let read = Interest {
                    read: true,
                    write: false,
                };
                epoll.add(&self.wait_fd, 0, read).map_err(|_| Errno::EIO)?;
                epoll.add(&level, 1, read).map_err(|_| Errno::EIO)?;
                if self.readable.load(Ordering::SeqCst) {
                    level.set().map_err(|_| Errno::EIO)?;
                }
                let _ = self.readiness.set((level, epoll));
            }
        }
        Ok(self.readiness.get().expect("initialised above").1.as_fd())
    }

    fn close(&self) -> Result<(), Errno> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut conn = lock(&self.conn);
        let r = conn.call(self.bus, self.endpoint, &Request::Close(()));
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        match r {
            Ok((r, _)) => r.map(|_| ()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for RemoteLink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
