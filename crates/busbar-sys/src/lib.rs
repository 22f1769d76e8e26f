//! # busbar-sys: the OS interface
//!
//! Every syscall busbar makes goes through this crate, as thin wrappers with
//! owned/borrowed fds only (rustix conventions). Nothing else in busbar talks
//! to the OS directly. Its only `unsafe` is `mmap`/`munmap` of payload
//! memfds ([`memfd`]) and taking the fds of socket activation
//! ([`systemd`]), each block with a `// SAFETY:` comment.

#![warn(missing_docs)]
#![allow(unsafe_code)]

pub mod memfd;
pub mod systemd;
mod unix;

pub use unix::{
    Epoll, Interest, Ready, SCM_MAX_FD, SIGINT, SIGTERM, default_socket_path, effective_uid,
    forward_signals, group_id, is_unix_socket, memfd_with, open_fd_count, peer_credentials,
    raise_fd_limit, recv_with_fds, send_with_fds, set_group, set_mode,
};

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};

/// A level-triggered readiness flag that `poll(2)`/`epoll(7)` can watch:
/// an `eventfd(2)` that is readable while the flag is set.
///
/// `set` and `clear` are idempotent; the caller tracks the level so each
/// transition costs one syscall and a steady state costs none.
#[derive(Debug)]
pub struct ReadinessFd {
    fd: OwnedFd,
}

impl ReadinessFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`—Creates a cleared flag.
    ///
    /// # References
    /// - [`eventfd(2)`](https://man7.org/linux/man-pages/man2/eventfd.2.html)
    #[doc(alias = "eventfd")]
    pub fn new() -> io::Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { fd })
    }

    /// `write(fd, 1)`—Makes the fd readable.
    pub fn set(&self) -> io::Result<()> {
        match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `read(fd)`—Makes the fd not readable.
    pub fn clear(&self) -> io::Result<()> {
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for ReadinessFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `poll([fd], POLLIN, timeout)`—Waits until `fd` is readable or `timeout`
/// passes (`None`: forever). Returns whether it is readable.
///
/// # References
/// - [`poll(2)`](https://man7.org/linux/man-pages/man2/poll.2.html)
#[doc(alias = "poll")]
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let ts = timeout.map(|d| Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) => return Ok(n > 0 && fds[0].revents().contains(PollFlags::IN)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The calling process's credentials: `getpid(2)`, `geteuid(2)`, `getegid(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCredentials {
    /// Process id.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// The credentials of this process, as the OS reports them.
#[doc(alias = "getpid")]
#[doc(alias = "geteuid")]
pub fn process_credentials() -> ProcessCredentials {
    ProcessCredentials {
        pid: rustix::process::getpid().as_raw_nonzero().get() as u32,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_fd_levels() {
        let r = ReadinessFd::new().unwrap();
        assert!(!wait_readable(r.as_fd(), Some(Duration::ZERO)).unwrap());
        r.set().unwrap();
        r.set().unwrap();
        assert!(wait_readable(r.as_fd(), Some(Duration::ZERO)).unwrap());
        r.clear().unwrap();
        assert!(!wait_readable(r.as_fd(), Some(Duration::ZERO)).unwrap());
        r.clear().unwrap();
    }

    #[test]
    fn credentials_are_ours() {
        let c = process_credentials();
        assert_eq!(c.pid, std::process::id());
    }
}
