//! The two systemd protocols a service daemon speaks, without libsystemd:
//! socket activation (`sd_listen_fds(3)`: listening sockets passed as fds
//! 3.. with `LISTEN_FDS` and `LISTEN_PID`) and readiness notification
//! (`sd_notify(3)`: datagrams such as `READY=1` to `$NOTIFY_SOCKET`).
//! Both are no-ops when systemd (or a test standing in for it) did not ask.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first fd passed by socket activation.
const SD_LISTEN_FDS_START: i32 = 3;

/// The fds passed to this process by socket activation (`LISTEN_FDS` fds
/// from 3 on, when `LISTEN_PID` is this process), each made close-on-exec.
/// Empty when none were passed; the fds are handed out once per process.
pub fn listen_fds() -> io::Result<Vec<OwnedFd>> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || n <= 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let mut fds = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START.saturating_add(n) {
        // SAFETY: the socket-activation protocol hands fds 3..3+LISTEN_FDS
        // to the process named by LISTEN_PID, which is this one; `TAKEN`
        // makes this the only place that ever owns them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        fds.push(owned);
    }
    Ok(fds)
}

/// Is `fd` a listening Unix stream socket? Its path, if so (`None` for an
/// unnamed or abstract one).
pub fn unix_listener_path(fd: &OwnedFd) -> io::Result<Option<std::path::PathBuf>> {
    use rustix::net::{SocketAddrAny, SocketType, sockopt};
    if sockopt::socket_type(fd)? != SocketType::STREAM || !sockopt::socket_acceptconn(fd)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the passed fd is not a listening stream socket",
        ));
    }
    let addr: SocketAddrAny = rustix::net::getsockname(fd)?;
    let unix = rustix::net::SocketAddrUnix::try_from(addr).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the passed socket is not a Unix-domain socket",
        )
    })?;
    Ok(unix.path().map(|p| {
        use std::os::unix::ffi::OsStrExt;
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p.to_bytes()))
    }))
}

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to `$NOTIFY_SOCKET` if
/// set: a path, or an abstract name written with a leading `@`. Returns
/// whether it was sent.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(&target))?,
    };
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}
