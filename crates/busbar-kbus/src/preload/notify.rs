//! Wakes every thread waiting on Ksocks when one thread sees a Ksock's
//! readiness change.
//!
//! A waiter's real `poll` watches its Ksocks' sockets, where the daemon
//! writes when something arrives; but whichever thread takes those bytes
//! (another waiter, or a thread in an ioctl) is the only one that learns
//! what they said. So every waiter also watches one eventfd (semaphore
//! mode, one per process, made on first wait), and whoever sees a Ksock's
//! readiness change adds one count per waiter to it. Each waiter takes one
//! count when it wakes and computes again; a count left over only causes
//! one more computation.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use libc::c_int;

use crate::ksock::Readiness;

static WAITERS: AtomicUsize = AtomicUsize::new(0);
/// The eventfd and the process it belongs to: `pid << 32 | (fd + 1)`
/// (0: none yet). A child made by `fork` makes its own: the parent's is
/// shared with it, and counts must not cross processes.
static EVENTFD: AtomicU64 = AtomicU64::new(0);

/// The process's notification eventfd (`None` if it cannot be made: then
/// waiters rely on their sockets alone).
pub(crate) fn fd() -> Option<c_int> {
    let me = u64::from(std::process::id());
    let cur = EVENTFD.load(Ordering::Acquire);
    if cur != 0 && cur >> 32 == me {
        return Some((cur & 0xFFFF_FFFF) as c_int - 1);
    }
    let flags = libc::EFD_SEMAPHORE | libc::EFD_NONBLOCK | libc::EFD_CLOEXEC;
    // SAFETY: eventfd has no memory preconditions.
    let fd = unsafe { libc::eventfd(0, flags) };
    if fd < 0 {
        return None;
    }
    let new = me << 32 | (fd as u64 + 1);
    match EVENTFD.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fd),
        Err(other) => {
            // Another thread made one first.
            // SAFETY: closing the eventfd just made, which nothing else has.
            unsafe { libc::close(fd) };
            (other >> 32 == me).then(|| (other & 0xFFFF_FFFF) as c_int - 1)
        }
    }
}

/// A thread waiting on Ksocks, for its lifetime.
#[derive(Debug)]
pub(crate) struct Waiting;

impl Waiting {
    pub(crate) fn new() -> Self {
        WAITERS.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Is anyone waiting?
pub(crate) fn anyone_waiting() -> bool {
    WAITERS.load(Ordering::SeqCst) > 0
}

/// Takes one count (after a wake-up through the eventfd).
pub(crate) fn take_one() {
    if let Some(fd) = fd() {
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into `v` from our own nonblocking eventfd.
        unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
    }
}

/// Records a Ksock's readiness as last seen (`seen`); if it changed, wakes
/// every waiter (but the caller, if it is `waiting` itself: it acts on what
/// it just saw).
pub(crate) fn observe(seen: &AtomicU8, r: Readiness, waiting: bool) {
    let now = 0x80 | u8::from(r.readable) | (u8::from(r.writable) << 1);
    if seen.swap(now, Ordering::SeqCst) == now {
        return;
    }
    let n = (WAITERS.load(Ordering::SeqCst) - usize::from(waiting)) as u64;
    if n == 0 {
        return;
    }
    if let Some(fd) = fd() {
        // SAFETY: writing 8 bytes from `n` to our own nonblocking eventfd.
        unsafe { libc::write(fd, (&raw const n).cast(), 8) };
    }
}
