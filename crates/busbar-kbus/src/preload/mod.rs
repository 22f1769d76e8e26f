//! The preload layer: glibc's entry points for `/dev/kbusN`, `/proc/kbus/*`
//! and Ksock fds, everything else passed straight on.
//!
//! Contract:
//!
//! - A Ksock is one real fd: the socket of its endpoint's own daemon
//!   connection, so `fstat`, `fcntl(F_GETFD/F_SETFD)`, `dup`, close-on-exec
//!   and `select`'s fd limit behave. A table of atomics indexed by fd says
//!   which fds are Ksocks and which process opened them; a call on any other
//!   fd looks at that table only (no lock, no allocation, no syscall) and
//!   goes to glibc, so the hooks are safe in a `vfork` child and after
//!   `fork` (a child sees its parent's Ksocks as plain sockets it may close).
//! - The library's own calls (the client reading and writing its sockets)
//!   are marked by a thread-local guard and pass straight through.
//! - Readiness: `poll`, `select`, `epoll` compute a Ksock's readiness from
//!   its state and wait on its socket, which the daemon writes to (a `Wake`)
//!   when something arrives; see [`wait`].
//! - Program memory is reached with `process_vm_readv`/`process_vm_writev`
//!   on our own pid, so a bad pointer is `EFAULT`, never a crash.

#![allow(unsafe_code)]

mod fds;
mod memory;
mod notify;
mod paths;
mod real;
mod stat;
mod table;
mod wait;

use busbar::Errno;
use libc::c_int;

/// Sets `errno` and returns -1.
pub(crate) fn fail(e: Errno) -> c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = e.number() };
    -1
}

fn done(r: Result<c_int, Errno>) -> c_int {
    r.unwrap_or_else(fail)
}
