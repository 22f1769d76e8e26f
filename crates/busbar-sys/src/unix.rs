//! Unix-socket and event-loop wrappers for the daemon and its clients.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::epoll;

use crate::ProcessCredentials;

/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)`—The credentials of the process
/// at the other end of a Unix socket, as the kernel recorded them at
/// `connect`/`socketpair` time (the peer cannot forge them).
///
/// # References
/// - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "SO_PEERCRED")]
pub fn peer_credentials(fd: impl AsFd) -> io::Result<ProcessCredentials> {
    let c = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(ProcessCredentials {
        pid: c.pid.as_raw_nonzero().get() as u32,
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// Interest in readability and/or writability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Wake when readable.
    pub read: bool,
    /// Wake when writable.
    pub write: bool,
}

impl Interest {
    fn flags(self) -> epoll::EventFlags {
        // RDHUP only with reading: a half-closed peer whose input is not
        // wanted (backpressure, answering what it sent) must not wake the
        // loop again and again.
        let mut f = epoll::EventFlags::empty();
        if self.read {
            f |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        }
        if self.write {
            f |= epoll::EventFlags::OUT;
        }
        f
    }
}

/// What an fd is ready for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The token it was registered with.
    pub token: u64,
    /// Readable (or peer hung up: a read will say so).
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Error or hang-up.
    pub hangup: bool,
}

/// `epoll(7)`—A level-triggered readiness set.
///
/// # References
/// - [`epoll(7)`](https://man7.org/linux/man-pages/man7/epoll.7.html)
#[doc(alias = "epoll_create1")]
pub struct Epoll {
    fd: OwnedFd,
}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll").field("fd", &self.fd).finish()
    }
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            fd: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`.
    pub fn add(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        epoll::add(
            &self.fd,
            fd,
            epoll::EventData::new_u64(token),
            interest.flags(),
        )?;
        Ok(())
    }

    /// `epoll_ctl(EPOLL_CTL_MOD)`.
    pub fn modify(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        epoll::modify(
            &self.fd,
            fd,
            epoll::EventData::new_u64(token),
            interest.flags(),
        )?;
        Ok(())
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`.
    pub fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.fd, fd)?;
        Ok(())
    }

    /// `epoll_wait`—Waits up to `timeout` (`None`: forever) and appends what
    /// is ready to `out`.
    pub fn wait(&self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            match epoll::wait(
                &self.fd,
                rustix::buffer::spare_capacity(&mut events),
                ts.as_ref(),
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        for e in &events {
            let f = e.flags;
            out.push(Ready {
                token: e.data.u64(),
                read: f.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP),
                write: f.contains(epoll::EventFlags::OUT),
                hangup: f.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR),
            });
        }
        Ok(())
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Makes `signals` write a byte to `to` when they arrive (a self-pipe,
/// registered with `signal-hook`), instead of their default action.
pub fn forward_signals(signals: &[i32], to: &UnixStream) -> io::Result<()> {
    for &s in signals {
        signal_hook::low_level::pipe::register(s, to.try_clone()?)?;
    }
    Ok(())
}

/// `SIGTERM`.
pub const SIGTERM: i32 = signal_hook::consts::SIGTERM;
/// `SIGINT`.
pub const SIGINT: i32 = signal_hook::consts::SIGINT;

/// Where busbar's socket lives unless told otherwise: `$BUSBAR_SOCKET`, else
/// `$XDG_RUNTIME_DIR/busbar/bus.sock`, else `/tmp/busbar-<uid>/bus.sock`.
/// Daemon and clients resolve it the same way.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BUSBAR_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&d).join("busbar").join("bus.sock");
    }
    let uid = rustix::process::geteuid().as_raw();
    PathBuf::from(format!("/tmp/busbar-{uid}/bus.sock"))
}

/// `fchmodat(AT_FDCWD, path, mode)` on a path that must not be a symbolic
/// link: `lstat` first, so a link planted at `path` is refused
/// (`ELOOP`), never followed. (Linux cannot chmod a link itself.)
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::LOOP.raw_os_error(),
        ));
    }
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `lchown(path, -1, gid)`—Sets a file's group without following a
/// symbolic link.
pub fn set_group(path: &Path, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, None, Some(gid))
}

/// `geteuid()`.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The gid of a group name, from `/etc/group`.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let text = std::fs::read_to_string("/etc/group")?;
    Ok(text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    }))
}

/// Counts this process's open fds (entries of `/proc/self/fd`).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// `setrlimit(RLIMIT_NOFILE)`—Raises this process's soft limit on open fds
/// to its hard limit (a daemon serving thousands of clients needs it).
/// Returns the new soft limit.
#[doc(alias = "setrlimit")]
pub fn raise_fd_limit() -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum
        && l.current.is_none_or(|c| c < max)
    {
        l.current = Some(max);
        setrlimit(Resource::Nofile, l)?;
    }
    Ok(l.current.unwrap_or(u64::MAX))
}

/// Room for this many fds in one received control message batch.
const RECV_FDS: usize = 253;

/// `recvmsg(fd, buf, SCM_RIGHTS, MSG_CMSG_CLOEXEC)`—Reads bytes into `buf`
/// and appends any file descriptors that came with them to `fds`. Returns
/// the bytes read (0: the peer closed).
///
/// # References
/// - [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html),
///   [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html) (`SCM_RIGHTS`)
#[doc(alias = "recvmsg")]
#[doc(alias = "SCM_RIGHTS")]
pub fn recv_with_fds(
    socket: impl AsFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(RECV_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let r = recvmsg(
        &socket,
        &mut [io::IoSliceMut::new(buf)],
        &mut control,
        flags,
    )?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    Ok(r.bytes)
}

/// The most fds one `sendmsg` can carry (`SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;

/// `sendmsg(fd, buf, SCM_RIGHTS)`—Writes (some of) `buf` with up to
/// [`SCM_MAX_FD`] of `fds` attached to its first byte. Returns the bytes
/// written and how many fds went with them (the caller keeps its copies and
/// sends the rest with later bytes).
///
/// # References
/// - [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
///   [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html) (`SCM_RIGHTS`)
#[doc(alias = "sendmsg")]
pub fn send_with_fds(
    socket: impl AsFd,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<(usize, usize)> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let fds = &fds[..fds.len().min(SCM_MAX_FD)];
    // With more fds to follow, send one byte now so the next batch has a
    // byte of its own to ride on.
    let buf = if fds.len() == SCM_MAX_FD {
        &buf[..buf.len().min(1)]
    } else {
        buf
    };
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small"));
    }
    let n = sendmsg(
        &socket,
        &[io::IoSlice::new(buf)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok((n, fds.len()))
}

/// Is `fd` a Unix-domain socket? (busbar refuses to pass those through the
/// daemon: a connection passed over itself would never be closed.)
pub fn is_unix_socket(fd: impl AsFd) -> bool {
    let Ok(st) = rustix::fs::fstat(&fd) else {
        return false;
    };
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
        && rustix::net::sockopt::socket_domain(&fd)
            .is_ok_and(|d| d == rustix::net::AddressFamily::UNIX)
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)` filled with
/// `data`—An anonymous file to pass around (large payloads, tests).
///
/// # References
/// - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
#[doc(alias = "memfd_create")]
pub fn memfd_with(name: &str, data: &[u8]) -> io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut done = 0;
    while done < data.len() {
        done += rustix::io::write(&fd, &data[done..])?;
    }
    Ok(fd)
}
