//! One connection to the daemon: requests written whole, responses read
//! by whichever caller is the reader and filed by sequence number, the
//! endpoint's readiness followed in stream order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use busbar_kernel::{
    Attachment, BusId, EndpointId, Errno, Message, OpCode, Request, Response, Scope,
};
use busbar_sys::{Epoll, Interest, ReadinessFd};
use busbar_wire::{
    FLAG_QUIET, FLAG_READABLE, FrameReader, GOODBYE, RESPONSE, VERSION, WAIT_FOREVER, WAKE,
    emit_hello, emit_request, parse_response, parse_welcome,
};

/// Frames the client accepts (responses may carry many messages).
const CLIENT_MAX_FRAME: usize = u32::MAX as usize;

fn io_errno(e: &io::Error) -> Errno {
    match e.kind() {
        io::ErrorKind::NotFound => Errno::ENOENT,
        io::ErrorKind::ConnectionRefused => Errno::ECONNREFUSED,
        io::ErrorKind::PermissionDenied => Errno::EACCES,
        // A path too long for a Unix socket address.
        io::ErrorKind::InvalidInput => Errno::ENAMETOOLONG,
        _ => Errno::ECONNRESET,
    }
}

/// Writes all of `buf`, the fds riding on its first bytes (at most
/// `SCM_MAX_FD` per byte-carrying write).
fn send_all_with_fds(
    mut stream: &UnixStream,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let (mut pos, mut done) = (0, 0);
    while done < fds.len() {
        let (n, sent) = busbar_sys::send_with_fds(stream, &buf[pos..], &fds[done..])?;
        pos += n;
        done += sent;
    }
    stream.write_all(&buf[pos..])
}

/// A response: the operation's result and the response flags.
pub(super) type Answer = (Result<Response, Errno>, u16);

/// One connection to the daemon, shared by every thread using it.
///
/// Requests are written whole under the lock; responses may come back in
/// any order (waiting requests are parked by the daemon). Whichever caller
/// finds no reader active becomes the reader: it reads from the socket
/// *without* the lock, files each response under its sequence number and
/// wakes the others (leader/follower), so a thread blocked in `recv` never
/// stops another thread's `send` on the same endpoint.
#[derive(Debug)]
pub(super) struct Conn {
    state: Mutex<ConnState>,
    cond: Condvar,
    /// The socket. Written only under the state lock (whole requests);
    /// read by whichever caller is the reader, without the lock.
    socket: UnixStream,
    /// The reader's buffer (only the current reader touches it).
    read_buf: Mutex<Vec<u8>>,
    /// Made on first use of `readiness_fd` (endpoint connections only): an
    /// eventfd mirroring `ConnState::readable`, and an epoll set holding it
    /// and the socket (where a frame not yet read waits).
    readiness: OnceLock<(ReadinessFd, Epoll)>,
}

#[derive(Debug)]
struct ConnState {
    reader: FrameReader,
    out: Vec<u8>,
    seq: u32,
    /// Responses read but not yet collected by their caller.
    done: HashMap<u32, Answer>,
    /// Some thread is reading the socket.
    reading: bool,
    /// The endpoint's readiness as the newest frame read about it says
    /// (false until one does): mirrored by the readiness eventfd.
    readable: bool,
    /// The daemon said goodbye (or the connection broke): every call fails with this.
    dead: Option<Errno>,
    /// Largest frame the daemon accepts.
    max_frame: usize,
    /// File descriptors received and not yet claimed by a decoded message.
    fds_in: VecDeque<OwnedFd>,
    /// Started requests ([`Conn::start`]) waiting for their response, and
    /// the task to wake when it is filed (by whichever caller reads it).
    wakers: HashMap<u32, Waker>,
    /// Started `TakeReply`s given up before their response came: the reply
    /// they bring goes to `strays`.
    orphans: HashSet<u32>,
    /// Replies brought by given-up `TakeReply`s, for the endpoint's next
    /// receive.
    strays: VecDeque<Message>,
}

impl ConnState {
    fn die(&mut self, e: Errno) -> Errno {
        // Every waiting task learns it at its next look.
        for (_, w) in self.wakers.drain() {
            w.wake();
        }
        *self.dead.get_or_insert(e)
    }

    /// Files a response: for a given-up `TakeReply` its reply becomes a
    /// stray (and the endpoint readable: something to take); otherwise it
    /// waits for its caller, whose task, if one waits, is woken.
    fn file_response(&mut self, seq: u32, answer: Answer) {
        if self.orphans.remove(&seq) {
            if let (Ok(Response::TakeReply(Some(m))), _) = answer {
                self.strays.push_back(m);
                self.readable = true;
            }
            return;
        }
        self.done.insert(seq, answer);
        if let Some(w) = self.wakers.remove(&seq) {
            w.wake();
        }
    }

    /// Buffers whatever has arrived, without blocking (file it with
    /// `Conn::file_frames`). Returns whether the daemon closed the
    /// connection (then, once what came before is filed, it is dead).
    fn read_nonblocking(&mut self, stream: &UnixStream) -> bool {
        let mut buf = [0u8; 4096];
        let mut fds = Vec::new();
        while let Ok(n) = busbar_sys::recv_with_fds(stream, &mut buf, &mut fds, true) {
            if n == 0 {
                self.fds_in.extend(fds);
                return true;
            }
            self.reader.buffer().extend_from_slice(&buf[..n]);
        }
        self.fds_in.extend(fds);
        false
    }

    /// Gives each message in a response the fds that came with it; false if
    /// fewer came than the frame names.
    fn claim_fds(&mut self, r: &mut Result<Response, Errno>) -> bool {
        let msgs: Vec<&mut Message> = match r {
            Ok(Response::Recv(Some(m)) | Response::TakeReply(Some(m))) => vec![m],
            Ok(Response::RecvBatch(v)) => v.iter_mut().collect(),
            _ => return true,
        };
        for m in msgs {
            let Some(n) = m.fds.as_ref().map(|a| a.count as usize) else {
                continue;
            };
            if self.fds_in.len() < n {
                return false;
            }
            let mut fds: Vec<OwnedFd> = self.fds_in.drain(..n).collect();
            if m.fds.as_ref().is_some_and(|a| a.data_in_last)
                && crate::payload::data_from_wire(m, &mut fds).is_err()
            {
                return false;
            }
            m.set_fds((!fds.is_empty()).then(|| Attachment::from_fds(fds)));
        }
        true
    }

    /// Files every complete frame in the buffer, in stream order, and
    /// follows the readiness they report: a `Wake` means readable, a
    /// response to an endpoint-scoped operation says it in its
    /// `FLAG_READABLE` (bus-scoped ones, such as `Open`, say nothing about
    /// the endpoint). Returns whether any frame said something.
    fn file_frames(&mut self) -> bool {
        let mut learnt = false;
        loop {
            let f = match self.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return learnt,
                Err(_) => {
                    self.die(Errno::EPROTO);
                    return learnt;
                }
            };
            match f.header.kind {
                WAKE => {
                    self.readable = true;
                    learnt = true;
                }
                GOODBYE => {
                    self.die(Errno::from_number(f.header.status).unwrap_or(Errno::ESHUTDOWN));
                }
                k if k & RESPONSE != 0 => match parse_response(&f) {
                    Ok(mut r) => {
                        if !self.claim_fds(&mut r) {
                            self.die(Errno::EPROTO);
                            return learnt;
                        }
                        if OpCode::from_u16(k & !RESPONSE)
                            .is_some_and(|op| op.scope() == Scope::Endpoint)
                        {
                            // Strays held here are something to take too.
                            self.readable =
                                f.header.flags & FLAG_READABLE != 0 || !self.strays.is_empty();
                            learnt = true;
                        }
                        let strays = self.strays.len();
                        self.file_response(f.header.seq, (r, f.header.flags));
                        learnt |= self.strays.len() > strays;
                    }
                    Err(_) => {
                        self.die(Errno::EPROTO);
                    }
                },
                _ => {
                    self.die(Errno::EPROTO);
                }
            }
        }
    }
}

/// How long a client waits for the daemon's `Welcome`.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a daemon running as `uid` may be talked to: this process's own
/// uid, root, or a uid listed in `BUSBAR_TRUSTED_UIDS` (comma-separated).
fn trusted_daemon_uid(uid: u32) -> bool {
    uid == 0
        || uid == busbar_sys::effective_uid()
        || std::env::var("BUSBAR_TRUSTED_UIDS").is_ok_and(|v| {
            v.split(',')
                .any(|s| s.trim().parse::<u32>().is_ok_and(|u| u == uid))
        })
}

impl Conn {
    pub(super) fn connect(path: &Path) -> Result<Self, Errno> {
        let mut stream = UnixStream::connect(path).map_err(|e| io_errno(&e))?;
        // Nothing is sent to a daemon this user does not trust (another
        // user may have planted a socket where ours should be).
        let peer = busbar_sys::peer_credentials(&stream).map_err(|e| io_errno(&e))?;
        if !trusted_daemon_uid(peer.uid) {
            return Err(Errno::EACCES);
        }
        // A daemon that never answers (overloaded, stopped) is an error,
        // not a hang.
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(|e| io_errno(&e))?;
        let mut out = Vec::new();
        emit_hello(&mut out);
        // If the daemon already refused us (and closed), the write fails but
        // its Goodbye, saying why, is still there to read.
        let hello_sent = stream.write_all(&out).is_ok();
        let mut reader = FrameReader::new(CLIENT_MAX_FRAME);
        let f = loop {
            if let Some(f) = reader.next_frame().map_err(|_| Errno::EPROTO)? {
                break f;
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => return Err(Errno::ECONNRESET),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Errno::ETIMEDOUT);
                }
                Err(_) => return Err(Errno::ECONNRESET),
                Ok(n) => reader.buffer().extend_from_slice(&buf[..n]),
            }
        };
        stream.set_read_timeout(None).map_err(|e| io_errno(&e))?;
        if f.header.kind == GOODBYE {
            return Err(Errno::from_number(f.header.status).unwrap_or(Errno::EPROTO));
        }
        if !hello_sent {
            return Err(Errno::ECONNRESET);
        }
        let w = parse_welcome(&f).map_err(|_| Errno::EPROTO)?;
        if w.version != VERSION {
            return Err(Errno::EOPNOTSUPP);
        }

        Ok(Self {
            state: Mutex::new(ConnState {
                reader,
                out,
                seq: 0,
                done: HashMap::new(),
                reading: false,
                readable: false,
                dead: None,
                max_frame: w.max_frame as usize,
                fds_in: VecDeque::new(),
                wakers: HashMap::new(),
                orphans: HashSet::new(),
                strays: VecDeque::new(),
            }),
            cond: Condvar::new(),
            socket: stream,
            read_buf: Mutex::new(vec![0; 64 * 1024]),
            readiness: OnceLock::new(),
        })
    }

    /// Files the frames read ([`ConnState::file_frames`]) and brings the
    /// readiness eventfd to the level they leave, under the state lock so
    /// the eventfd follows the frames in stream order.
    ///
    /// A readable level is written even if the eventfd is already set: the
    /// write is a fresh wake-up for an edge-triggered poller (tokio's
    /// `AsyncFd`), whose edge from the socket may have found nothing left
    /// to read by the time it looked (this reader took the `Wake`).
    fn file_frames(&self, st: &mut ConnState) {
        if !st.file_frames() {
            return;
        }
        if let Some((fd, _)) = self.readiness.get() {
            // Failing to flip our own eventfd only degrades poll() to the socket.
            let _ = if st.readable { fd.set() } else { fd.clear() };
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Performs one operation; `wait`: let the daemon park it until it finds
    /// something or the deadline. Returns the result and the response flags.
    pub(super) fn call(
        &self,
        bus: BusId,
        ep: EndpointId,
        request: &Request,
        wait: Option<Option<Instant>>,
    ) -> Result<Answer, Errno> {
        let mut v = self.call_many(bus, ep, &[(request, wait, 0)])?;
        v.pop().flatten().ok_or(Errno::EPROTO)
    }

    /// Writes several requests in one write (the daemon handles them in
    /// order): the connection, still locked, and the first request's
    /// sequence number; or, if they could not be sent, their answers.
    fn write(
        &self,
        bus: BusId,
        ep: EndpointId,
        requests: &[(&Request, Option<Option<Instant>>, u16)],
    ) -> Result<Written<'_>, Errno> {
        // Large data goes as sealed memfds (crate::payload).
        let converted;
        let with_memfds;
        let requests = if requests
            .iter()
            .any(|(r, _, _)| crate::payload::has_large_data(r))
        {
            converted = requests
                .iter()
                .map(|(r, _, _)| crate::payload::request_to_wire(r))
                .collect::<Result<Vec<_>, Errno>>()?;
            with_memfds = requests
                .iter()
                .zip(&converted)
                .map(|(&(r, wait, flags), c)| (c.as_ref().unwrap_or(r), wait, flags))
                .collect::<Vec<_>>();
            &with_memfds[..]
        } else {
            requests
        };
        let mut st = self.lock();
        if let Some(e) = st.dead {
            return Err(e);
        }
        let mut out = std::mem::take(&mut st.out);
        out.clear();
        let first = st.seq.wrapping_add(1);
        for (request, wait, flags) in requests {
            st.seq = st.seq.wrapping_add(1);
            let wait_ms = wait.map(|deadline| match deadline {
                None => WAIT_FOREVER,
                Some(d) => {
                    // Round up, so the daemon never answers before the deadline.
                    let ms = d
                        .saturating_duration_since(Instant::now())
                        .as_nanos()
                        .div_ceil(1_000_000);
                    ms.min(u128::from(WAIT_FOREVER - 1)) as u32
                }
            });
            let start = out.len();
            emit_request(&mut out, st.seq, bus.0, ep.0, request, wait_ms, *flags);
            if out.len() - start > st.max_frame {
                st.out = out;
                return Ok(Written::Refused(Errno::EMSGSIZE));
            }
        }
        let fds: Vec<&Attachment> = requests
            .iter()
            .flat_map(|(r, _, _)| match r {
                Request::Send(a) => vec![&a.message],
                Request::SendBatch(v) => v.iter().map(|a| &a.message).collect(),
                _ => Vec::new(),
            })
            .filter_map(|m| m.attached_fds())
            .collect();
        if fds
            .iter()
            .any(|a| a.count > busbar_kernel::MAX_FDS_PER_MESSAGE)
        {
            st.out = out;
            return Ok(Written::Refused(Errno::ETOOMANYREFS));
        }
        let w = if fds.is_empty() {
            (&self.socket).write_all(&out)
        } else {
            let borrowed: Vec<BorrowedFd<'_>> = fds
                .iter()
                .filter_map(|a| a.fds())
                .flatten()
                .map(AsFd::as_fd)
                .collect();
            send_all_with_fds(&self.socket, &out, &borrowed)
        };
        st.out = out;
        if w.is_err() {
            // The daemon may have said why before closing (ESHUTDOWN).
            st.read_nonblocking(&self.socket);
            self.file_frames(&mut st);
            return Err(st.die(Errno::ECONNRESET));
        }
        Ok(Written::Sent { st, first })
    }

    /// Writes several requests in one write (the daemon handles them in
    /// order) and collects their responses.
    pub(super) fn call_many(
        &self,
        bus: BusId,
        ep: EndpointId,
        requests: &[(&Request, Option<Option<Instant>>, u16)],
    ) -> Result<Vec<Option<Answer>>, Errno> {
        let (mut st, first) = match self.write(bus, ep, requests)? {
            Written::Sent { st, first } => (st, first),
            Written::Refused(e) => return Ok(requests.iter().map(|_| Some((Err(e), 0))).collect()),
        };
        // The last request's response comes after every earlier one's
        // (the daemon answers a connection's requests in order, parked ones
        // when they complete, and a quiet request only if it failed).
        let last = first.wrapping_add(requests.len() as u32 - 1);
        loop {
            if st.done.contains_key(&last) {
                let mut results = Vec::with_capacity(requests.len());
                let mut seq = first;
                for (_, _, flags) in requests {
                    match st.done.remove(&seq) {
                        Some(r) => results.push(Some(r)),
                        None if flags & FLAG_QUIET != 0 => results.push(None),
                        None => return Err(st.die(Errno::EPROTO)),
                    }
                    seq = seq.wrapping_add(1);
                }
                return Ok(results);
            }
            if let Some(e) = st.dead {
                return Err(e);
            }
            if st.reading {
                st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.reading = true;
            drop(st);
            let mut buf = self.read_buf.lock().unwrap_or_else(|e| e.into_inner());
            let mut fds = Vec::new();
            let got = loop {
                match busbar_sys::recv_with_fds(&self.socket, &mut buf, &mut fds, false) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            st = self.lock();
            st.reading = false;
            st.fds_in.extend(fds);
            match got {
                Ok(0) | Err(_) => {
                    st.die(Errno::ECONNRESET);
                }
                Ok(n) => {
                    st.reader.buffer().extend_from_slice(&buf[..n]);
                    self.file_frames(&mut st);
                }
            }
            drop(buf);
            self.cond.notify_all();
        }
    }

    /// Writes several requests in one write and returns the first one's
    /// sequence number without waiting for any response: collect each with
    /// [`Self::poll_answer`] (or give it up with [`Self::abandon`]).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(super) fn start(
        &self,
        bus: BusId,
        ep: EndpointId,
        requests: &[(&Request, Option<Option<Instant>>, u16)],
    ) -> Result<Result<u32, Errno>, Errno> {
        Ok(match self.write(bus, ep, requests)? {
            Written::Sent { first, .. } => Ok(first),
            Written::Refused(e) => Err(e),
        })
    }

    /// The response to started request `seq`, if it has come: reads what
    /// the socket holds (without blocking) unless another caller is the
    /// reader. If not, `waker` (when given) is woken when it is filed, by
    /// whoever reads it, or when the connection dies.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(super) fn poll_answer(
        &self,
        seq: u32,
        waker: Option<&Waker>,
    ) -> Result<Option<Answer>, Errno> {
        let mut st = self.lock();
        if let Some(a) = st.done.remove(&seq) {
            st.wakers.remove(&seq);
            return Ok(Some(a));
        }
        self.read_now(&mut st);
        if let Some(a) = st.done.remove(&seq) {
            st.wakers.remove(&seq);
            return Ok(Some(a));
        }
        if let Some(e) = st.dead {
            return Err(e);
        }
        if let Some(w) = waker {
            st.wakers.insert(seq, w.clone());
        }
        Ok(None)
    }

    /// Gives up started request `seq` (a `TakeReply`): its answer if it has
    /// come; otherwise the reply it brings later is kept as a stray for the
    /// endpoint's next receive.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(super) fn abandon(&self, seq: u32) -> Option<Answer> {
        let mut st = self.lock();
        st.wakers.remove(&seq);
        let a = st.done.remove(&seq);
        if a.is_none() && st.dead.is_none() {
            st.orphans.insert(seq);
        }
        a
    }

    /// Replies of given-up `TakeReply`s that answer `request` (`Recv`,
    /// `RecvBatch`, `TakeReply` of their request), if any are held: the
    /// response, without asking the daemon.
    pub(super) fn take_strays(&self, request: &Request) -> Option<Response> {
        let mut st = self.lock();
        if st.strays.is_empty() {
            return None;
        }
        match *request {
            Request::Recv(()) => st.strays.pop_front().map(|m| Response::Recv(Some(m))),
            Request::RecvBatch(n) if n > 0 => {
                let k = (n as usize).min(st.strays.len());
                Some(Response::RecvBatch(st.strays.drain(..k).collect()))
            }
            Request::TakeReply(id) => {
                let i = st.strays.iter().position(|m| m.in_reply_to == id)?;
                st.strays.remove(i).map(|m| Response::TakeReply(Some(m)))
            }
            _ => None,
        }
    }

    /// The socket (polls readable with a frame unread).
    pub(super) fn socket(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Reads and files, without blocking, what has come (unless a caller
    /// is reading the socket: it files what comes), and returns whether the
    /// endpoint has something to take.
    pub(super) fn refresh(&self) -> Result<bool, Errno> {
        let mut st = self.lock();
        self.read_now(&mut st);
        match st.dead {
            Some(e) => Err(e),
            None => Ok(st.readable),
        }
    }

    /// Reads and files what has come, without blocking, unless another
    /// caller is the reader.
    fn read_now(&self, st: &mut ConnState) {
        if !st.reading {
            let closed = st.read_nonblocking(&self.socket);
            self.file_frames(st);
            if closed {
                // Killed without a Goodbye: dead, not merely quiet.
                st.die(Errno::ECONNRESET);
            }
        }
    }

    /// The readiness fd: an epoll set of the socket and an eventfd holding
    /// the level the frames read say (made on first use).
    pub(super) fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        let readiness = &self.readiness;
        if readiness.get().is_none() {
            // Under the connection lock, so the level cannot change meanwhile.
            let st = self.lock();
            if readiness.get().is_none() {
                let level = ReadinessFd::new().map_err(|_| Errno::EIO)?;
                let epoll = Epoll::new().map_err(|_| Errno::EIO)?;
                let read = Interest {
                    read: true,
                    write: false,
                };
                epoll.add(&self.socket, 0, read).map_err(|_| Errno::EIO)?;
                epoll.add(&level, 1, read).map_err(|_| Errno::EIO)?;
                if st.readable {
                    level.set().map_err(|_| Errno::EIO)?;
                }
                let _ = readiness.set((level, epoll));
            }
        }
        Ok(readiness.get().expect("initialised above").1.as_fd())
    }

    pub(super) fn shutdown(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// What [`Conn::write`] did.
enum Written<'a> {
    /// Written: the connection, still locked, and the first sequence number.
    Sent {
        st: MutexGuard<'a, ConnState>,
        first: u32,
    },
    /// Not sent: every request gets this error.
    Refused(Errno),
}
