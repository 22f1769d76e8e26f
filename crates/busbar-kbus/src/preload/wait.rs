//! `poll`, `select`, `epoll` over Ksocks and other fds together.
//!
//! A Ksock's readiness is computed from its state (a message queued:
//! readable; opened for writing and no send waiting: writable), never from
//! its socket. To wait, the real call waits on each Ksock's socket for
//! input instead: the daemon writes there (a `Wake`, or the answer that
//! re-arms one) whenever the endpoint's state may have changed, and the
//! loop then computes again. A Ksock found ready makes the real call a
//! non-blocking one, so other fds ready at the same moment are reported
//! with it.

use std::time::{Duration, Instant};

use busbar::Errno;
use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};

use super::fail;
use super::fds::{ksock_readiness, with_ksock};
use super::memory::ProcessMemory;
use super::notify;
use super::real::{self, call_real};
use super::table::{self, Table, Watch};
use crate::ksock::Memory;

const READ_BITS: i16 = libc::POLLIN | libc::POLLRDNORM;
const WRITE_BITS: i16 = libc::POLLOUT | libc::POLLWRNORM;
/// Marks our registrations of Ksock sockets in real epoll sets.
const TAG: u64 = 0xB5B5_0000_0000_0000;
const TAG_MASK: u64 = 0xFFFF_FFFF_0000_0000;
/// Our registration of the notification eventfd in real epoll sets.
const NOTIFY_TAG: u64 = TAG | 0xFFFF_FFFF;
/// The kernel's limit on `maxevents` (`EINVAL` above it).
const EP_MAX_EVENTS: usize = i32::MAX as usize / std::mem::size_of::<epoll_event>();
/// Events returned by one call at most (a bigger `maxevents` gets more on
/// the next call, as the kernel allows).
const EPOLL_BATCH: usize = 1024;

/// A Ksock's poll bits, of those in `events` (`POLLERR` if its daemon
/// connection broke).
fn ksock_revents(fd: c_int, events: i16) -> i16 {
    match ksock_readiness(fd) {
        Ok(r) => {
            (if r.readable { events & READ_BITS } else { 0 })
                | (if r.writable { events & WRITE_BITS } else { 0 })
        }
        Err(_) => libc::POLLERR,
    }
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn timespec_of(d: Duration) -> timespec {
    timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `ppoll` over `fds`, Ksocks included. Returns the count of fds with
/// events, 0 at the deadline, or -1 with `errno`.
fn wait_poll(fds: &mut [pollfd], deadline: Option<Instant>, mask: *const sigset_t) -> c_int {
    let _waiting = notify::Waiting::new();
    let ksock: Vec<bool> = fds.iter().map(|p| table::is_ksock(p.fd)).collect();
    let mut real_fds = fds.to_vec();
    // Last: the notification eventfd (another thread saw a Ksock change).
    let notify_fd = notify::fd();
    if let Some(fd) = notify_fd {
        real_fds.push(pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    loop {
        let mut ready = 0;
        let mut mine = vec![0i16; fds.len()];
        for (i, p) in fds.iter().enumerate() {
            if ksock[i] {
                mine[i] = ksock_revents(p.fd, p.events);
                ready += usize::from(mine[i] != 0);
                real_fds[i].events = libc::POLLIN;
            }
            real_fds[i].revents = 0;
        }
        if let Some(n) = real_fds.get_mut(fds.len()) {
            n.revents = 0;
        }
        let wait = if ready > 0 {
            Some(Duration::ZERO)
        } else {
            remaining(deadline)
        };
        let ts = wait.map(timespec_of);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const timespec);
        let r = call_real!(
            real::PPOLL,
            fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int,
            real_fds.as_mut_ptr(),
            real_fds.len() as nfds_t,
            ts_ptr,
            mask
        );
        if r < 0 {
            return r;
        }
        // A count is ours only if we slept: one seen in passing (a Ksock
        // was already ready) is left for the waiter it was meant for.
        if ready == 0
            && real_fds
                .get(fds.len())
                .is_some_and(|n| n.revents & libc::POLLIN != 0)
        {
            notify::take_one();
        }
        let mut count = 0;
        for (i, p) in fds.iter_mut().enumerate() {
            p.revents = if ksock[i] {
                mine[i]
            } else {
                real_fds[i].revents
            };
            count += c_int::from(p.revents != 0);
        }
        if count > 0 || r == 0 || remaining(deadline).is_some_and(|d| d.is_zero()) {
            return count;
        }
        // A Ksock's socket spoke: compute again.
    }
}

fn deadline_ms(timeout: c_int) -> Option<Instant> {
    (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64))
}

fn deadline_ts(ts: *const timespec) -> Option<Instant> {
    if ts.is_null() {
        return None;
    }
    // SAFETY: the caller's timespec, non-NULL.
    let t = unsafe { *ts };
    Some(
        Instant::now()
            + Duration::new(
                t.tv_sec.max(0) as u64,
                t.tv_nsec.clamp(0, 999_999_999) as u32,
            ),
    )
}

/// The bytes of plain C structs (pollfd, epoll_event, fd_set).
fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain C struct (no padding-sensitive invariants, no
    // pointers owned); its bytes are readable for the slice's lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn bytes_of_mut<T: Copy>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as `bytes_of`; every byte pattern is a valid `T` (C ints).
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

/// A copy of the caller's pollfds, if one of them is a Ksock (read
/// without trusting the pointer: a bad one is the real call's `EFAULT`).
fn pollfds_with_ksock(fds: *mut pollfd, n: nfds_t) -> Option<Vec<pollfd>> {
    if !table::any_ksocks() || n == 0 || n > MAX_POLL_FDS {
        return None;
    }
    let mut v = vec![
        pollfd {
            fd: -1,
            events: 0,
            revents: 0
        };
        n as usize
    ];
    ProcessMemory::read_into(fds as u64, bytes_of_mut(&mut v)).ok()?;
    v.iter().any(|p| table::is_ksock(p.fd)).then_some(v)
}

/// More fds than a process can have: not ours to look at.
const MAX_POLL_FDS: nfds_t = 1 << 20;

/// Waits on a copy of the caller's pollfds and writes the results back.
fn poll_copy(
    fds: *mut pollfd,
    mut v: Vec<pollfd>,
    deadline: Option<Instant>,
    mask: *const sigset_t,
) -> c_int {
    let r = wait_poll(&mut v, deadline, mask);
    if r >= 0 && ProcessMemory.write(fds as u64, bytes_of(&v)).is_err() {
        return fail(Errno::EFAULT);
    }
    r
}

/// # Safety
/// glibc's `poll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    match pollfds_with_ksock(fds, n) {
        Some(v) => poll_copy(fds, v, deadline_ms(timeout), std::ptr::null()),
        None => call_real!(
            real::POLL,
            fn(*mut pollfd, nfds_t, c_int) -> c_int,
            fds,
            n,
            timeout
        ),
    }
}

/// # Safety
/// glibc's fortified `poll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    len: usize,
) -> c_int {
    match pollfds_with_ksock(fds, n) {
        Some(v) => poll_copy(fds, v, deadline_ms(timeout), std::ptr::null()),
        None => call_real!(
            real::POLL_CHK,
            fn(*mut pollfd, nfds_t, c_int, usize) -> c_int,
            fds,
            n,
            timeout,
            len
        ),
    }
}

/// # Safety
/// glibc's `ppoll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    match pollfds_with_ksock(fds, n) {
        Some(v) => poll_copy(fds, v, deadline_ts(ts), mask),
        None => call_real!(
            real::PPOLL,
            fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int,
            fds,
            n,
            ts,
            mask
        ),
    }
}

/// `select` as `poll`, when a Ksock is among the fds (`deadline` is read
/// only then: the real call handles every other case).
fn select_via_poll(
    n: c_int,
    sets: [*mut fd_set; 3],
    deadline: impl FnOnce() -> Option<Instant>,
    mask: *const sigset_t,
) -> Option<c_int> {
    if !table::any_ksocks() {
        return None;
    }
    // Copies of the caller's sets, read without trusting the pointers (a
    // bad one: the real call's EFAULT).
    // SAFETY: an all-zero fd_set is the empty set.
    let empty: fd_set = unsafe { std::mem::zeroed() };
    let mut copies = [empty; 3];
    for (s, c) in sets.iter().zip(copies.iter_mut()) {
        if !s.is_null() {
            ProcessMemory::read_into(*s as u64, bytes_of_mut(std::slice::from_mut(c))).ok()?;
        }
    }
    let top = n.clamp(0, libc::FD_SETSIZE as c_int);
    // SAFETY: FD_ISSET reads our own copy; fd < FD_SETSIZE.
    let isset = |i: usize, fd| !sets[i].is_null() && unsafe { libc::FD_ISSET(fd, &copies[i]) };
    let mut fds = Vec::new();
    for fd in 0..top {
        let events = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI]
            .iter()
            .enumerate()
            .filter(|&(i, _)| isset(i, fd))
            .fold(0, |e, (_, bit)| e | bit);
        if events != 0 {
            fds.push(pollfd {
                fd,
                events,
                revents: 0,
            });
        }
    }
    if !fds.iter().any(|p| table::is_ksock(p.fd)) {
        return None;
    }
    let r = wait_poll(&mut fds, deadline(), mask);
    if r < 0 {
        return Some(r);
    }
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Some(fail(Errno::EBADF));
    }
    let mut results = [empty; 3];
    let mut count = 0;
    for p in &fds {
        let err = p.revents & (libc::POLLERR | libc::POLLHUP) != 0;
        let ready = [
            p.events & libc::POLLIN != 0 && (p.revents & libc::POLLIN != 0 || err),
            p.events & libc::POLLOUT != 0
                && (p.revents & libc::POLLOUT != 0 || p.revents & libc::POLLERR != 0),
            p.events & libc::POLLPRI != 0 && p.revents & libc::POLLPRI != 0,
        ];
        for (i, set) in results.iter_mut().enumerate() {
            if ready[i] && !sets[i].is_null() {
                // SAFETY: our own copy; fd < FD_SETSIZE.
                unsafe { libc::FD_SET(p.fd, set) };
                count += 1;
            }
        }
    }
    for (s, c) in sets.iter().zip(results.iter()) {
        if !s.is_null()
            && ProcessMemory
                .write(*s as u64, bytes_of(std::slice::from_ref(c)))
                .is_err()
        {
            return Some(fail(Errno::EFAULT));
        }
    }
    Some(count)
}

/// # Safety
/// glibc's `select`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    let deadline = || {
        (!tv.is_null()).then(|| {
            // SAFETY: the caller's timeval, non-NULL (select reads it too).
            let t = unsafe { *tv };
            Instant::now()
                + Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        })
    };
    match select_via_poll(n, [r, w, e], deadline, std::ptr::null()) {
        Some(count) => count,
        None => call_real!(
            real::SELECT,
            fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int,
            n,
            r,
            w,
            e,
            tv
        ),
    }
}

/// # Safety
/// glibc's `pselect`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    match select_via_poll(n, [r, w, e], || deadline_ts(ts), mask) {
        Some(count) => count,
        None => call_real!(
            real::PSELECT,
            fn(
                c_int,
                *mut fd_set,
                *mut fd_set,
                *mut fd_set,
                *const timespec,
                *const sigset_t,
            ) -> c_int,
            n,
            r,
            w,
            e,
            ts,
            mask
        ),
    }
}

/// # Safety
/// glibc's `epoll_ctl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut epoll_event,
) -> c_int {
    if !table::is_ksock(fd) {
        return call_real!(
            real::EPOLL_CTL,
            fn(c_int, c_int, c_int, *mut epoll_event) -> c_int,
            epfd,
            op,
            fd,
            ev
        );
    }
    let watch = if op == libc::EPOLL_CTL_DEL {
        None
    } else {
        let mut e = [epoll_event { events: 0, u64: 0 }];
        if ProcessMemory::read_into(ev as u64, bytes_of_mut(&mut e)).is_err() {
            return fail(Errno::EFAULT);
        }
        Some(Watch {
            events: e[0].events,
            data: e[0].u64,
            disarmed: false,
            last: 0,
            arrivals: 0,
        })
    };
    // The real set watches the Ksock's socket for input, tagged.
    let mut mine = epoll_event {
        events: libc::EPOLLIN as u32,
        u64: TAG | fd as u64,
    };
    let r = call_real!(
        real::EPOLL_CTL,
        fn(c_int, c_int, c_int, *mut epoll_event) -> c_int,
        epfd,
        op,
        fd,
        &mut mine
    );
    if r == 0 && !table::is_tracked_epoll(epfd) {
        // The set now holds a Ksock: it also watches the notification
        // eventfd (EEXIST if it already does: fine).
        if let Some(nfd) = notify::fd() {
            let mut ev = epoll_event {
                events: libc::EPOLLIN as u32,
                u64: NOTIFY_TAG,
            };
            call_real!(
                real::EPOLL_CTL,
                fn(c_int, c_int, c_int, *mut epoll_event) -> c_int,
                epfd,
                libc::EPOLL_CTL_ADD,
                nfd,
                &mut ev
            );
        }
    }
    if r == 0 {
        Table::with(|t| {
            match watch {
                Some(w) => {
                    t.epolls.entry(epfd).or_default().insert(fd, w);
                }
                None => {
                    if let Some(s) = t.epolls.get_mut(&epfd) {
                        s.remove(&fd);
                    }
                }
            }
            t.track_epoll(epfd, true);
        });
    }
    r
}

fn wait_epoll(
    epfd: c_int,
    out: *mut epoll_event,
    max: c_int,
    deadline: Option<Instant>,
    mask: *const sigset_t,
) -> c_int {
    if out.is_null() || max <= 0 || max as usize > EP_MAX_EVENTS {
        return fail(Errno::EINVAL);
    }
    let _waiting = notify::Waiting::new();
    // At most a page of events per call, whatever the caller allows.
    let max = (max as usize).min(EPOLL_BATCH);
    let mut buf = vec![epoll_event { events: 0, u64: 0 }; max];
    loop {
        let ready = ready_ksocks(epfd, max);
        let got = if ready.len() == max {
            0
        } else {
            let timeout = if ready.is_empty() {
                remaining(deadline).map_or(-1, |d| {
                    d.as_micros().div_ceil(1000).min(i32::MAX as u128) as c_int
                })
            } else {
                0
            };
            let r = call_real!(
                real::EPOLL_PWAIT,
                fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int,
                epfd,
                buf.as_mut_ptr(),
                (max - ready.len()) as c_int,
                timeout,
                mask
            );
            if r < 0 && ready.is_empty() {
                return r;
            }
            r.max(0) as usize
        };
        let slept = ready.is_empty();
        let mut ready = ready;
        for e in &buf[..got] {
            if e.u64 == NOTIFY_TAG {
                // Ours only if we slept (see `wait_poll`).
                if slept {
                    notify::take_one();
                }
            } else if e.u64 & TAG_MASK != TAG {
                ready.push(*e);
            }
        }
        if !ready.is_empty() {
            if ProcessMemory.write(out as u64, bytes_of(&ready)).is_err() {
                return fail(Errno::EFAULT);
            }
            return ready.len() as c_int;
        }
        if got == 0 || remaining(deadline).is_some_and(|d| d.is_zero()) {
            return 0;
        }
    }
}

/// The Ksocks of `epfd` with events to report now (at most `max`), as
/// `EPOLLONESHOT` (once, until re-armed) and `EPOLLET` (only bits that were
/// not ready the last time) say.
fn ready_ksocks(epfd: c_int, max: usize) -> Vec<epoll_event> {
    let watches: Vec<(c_int, Watch)> = Table::with(|t| {
        t.epolls
            .get(&epfd)
            .map(|s| s.iter().map(|(&fd, &w)| (fd, w)).collect())
            .unwrap_or_default()
    });
    let mut ready = Vec::new();
    for (fd, w) in watches {
        if w.disarmed || ready.len() == max {
            continue;
        }
        let bits = ksock_revents(fd, w.events as i16) as u16 as u32;
        let read_bits = (READ_BITS as u16 as u32) & bits;
        let (fresh, arrivals) = if w.events & libc::EPOLLET as u32 != 0 {
            // Edge: bits that were not ready, and input again if more
            // messages have arrived (taken plus queued) than last time.
            let arrivals = with_ksock(fd, |k, _| k.endpoint().stats()).map_or(w.arrivals, |s| {
                s.received + u64::from(s.queued + s.set_aside)
            });
            let arrival = if arrivals > w.arrivals { read_bits } else { 0 };
            ((bits & !w.last) | arrival, arrivals)
        } else {
            (bits, 0)
        };
        let oneshot = fresh != 0 && w.events & libc::EPOLLONESHOT as u32 != 0;
        Table::with(|t| {
            if let Some(w) = t.epolls.get_mut(&epfd).and_then(|s| s.get_mut(&fd)) {
                w.last = bits;
                w.arrivals = arrivals;
                w.disarmed |= oneshot;
            }
        });
        if oneshot {
            // Silent until re-armed: the real set stops watching the socket
            // (EPOLL_CTL_MOD arms it again).
            set_real_watch(epfd, fd, 0);
        }
        if fresh != 0 {
            ready.push(epoll_event {
                events: fresh,
                u64: w.data,
            });
        }
    }
    ready
}

/// What the real epoll set `epfd` watches on Ksock `fd`'s socket (`events`
/// 0: nothing).
fn set_real_watch(epfd: c_int, fd: c_int, events: u32) {
    let mut ev = epoll_event {
        events,
        u64: TAG | fd as u64,
    };
    call_real!(
        real::EPOLL_CTL,
        fn(c_int, c_int, c_int, *mut epoll_event) -> c_int,
        epfd,
        libc::EPOLL_CTL_MOD,
        fd,
        &mut ev
    );
}

/// Takes Ksock `fd` out of the real epoll sets that hold it (it is being
/// closed, maybe while a `dup` keeps its socket open).
pub(crate) fn forget_in_epolls(fd: c_int, sets: &[c_int]) {
    for &epfd in sets {
        call_real!(
            real::EPOLL_CTL,
            fn(c_int, c_int, c_int, *mut epoll_event) -> c_int,
            epfd,
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut()
        );
    }
}

/// # Safety
/// glibc's `epoll_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    out: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    if !table::is_tracked_epoll(epfd) {
        return call_real!(
            real::EPOLL_WAIT,
            fn(c_int, *mut epoll_event, c_int, c_int) -> c_int,
            epfd,
            out,
            max,
            timeout
        );
    }
    wait_epoll(epfd, out, max, deadline_ms(timeout), std::ptr::null())
}

/// # Safety
/// glibc's `epoll_pwait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    out: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    if !table::is_tracked_epoll(epfd) {
        return call_real!(
            real::EPOLL_PWAIT,
            fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int,
            epfd,
            out,
            max,
            timeout,
            mask
        );
    }
    wait_epoll(epfd, out, max, deadline_ms(timeout), mask)
}
