//! The fd entry points for Ksocks: read, write, ioctl, close, dup, fcntl.
//! A call on any other fd goes to glibc after one lock-free table lookup.

use busbar::Errno;
use libc::{c_int, c_uint, c_ulong, c_void, iovec, size_t, ssize_t};

use super::memory::ProcessMemory;
use super::notify;
use super::real::{self, call_real};
use super::table::{self, Entry, Table, contained, inside};
use super::wait;
use super::{done, fail};
use crate::ioctl::Command;
use crate::ksock::{Ksock, Memory, Mode, Readiness};

/// Runs `f` on the Ksock behind `fd` (`EBADF` if it has closed). If other
/// threads wait on Ksocks and what `f` did changed this one's readiness,
/// they are woken (see `notify`).
pub(crate) fn with_ksock<T>(
    fd: c_int,
    f: impl FnOnce(&mut Ksock, &Entry) -> Result<T, Errno>,
) -> Result<T, Errno> {
    locked(fd, |ksock, entry| {
        let r = f(ksock, entry);
        if notify::anyone_waiting()
            && let Ok(now) = ksock.readiness()
        {
            notify::observe(&entry.seen, now, false);
        }
        r
    })
}

/// The Ksock's readiness for a waiter (the caller, counted in
/// `notify::Waiting`), recorded as the readiness waiters last saw: a thread
/// that changes it later wakes them (see `notify`).
pub(crate) fn ksock_readiness(fd: c_int) -> Result<Readiness, Errno> {
    locked(fd, |ksock, entry| {
        let now = ksock.readiness()?;
        notify::observe(&entry.seen, now, true);
        Ok(now)
    })
}

/// Runs `f` on the Ksock behind `fd` under its lock, as the library.
fn locked<T>(
    fd: c_int,
    f: impl FnOnce(&mut Ksock, &Entry) -> Result<T, Errno>,
) -> Result<T, Errno> {
    contained(|| {
        let entry = Table::with(|t| t.get(fd)).ok_or(Errno::EBADF)?;
        inside(|| {
            let mut g = entry.lock();
            let ksock = g.as_mut().ok_or(Errno::EBADF)?;
            f(ksock, &entry)
        })
    })
}

fn ksock_read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    match with_ksock(fd, |k, _| k.read(buf as u64, n, &mut ProcessMemory)) {
        Ok(got) => got as ssize_t,
        Err(e) => fail(e) as ssize_t,
    }
}

/// # Safety
/// glibc's `read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    if table::is_ksock(fd) {
        return ksock_read(fd, buf, n);
    }
    call_real!(
        real::READ,
        fn(c_int, *mut c_void, size_t) -> ssize_t,
        fd,
        buf,
        n
    )
}

/// # Safety
/// glibc's fortified `read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if table::is_ksock(fd) {
        if n > buflen {
            // What glibc does on a fortify failure.
            // SAFETY: aborting has no preconditions.
            unsafe { libc::abort() };
        }
        return ksock_read(fd, buf, n);
    }
    call_real!(
        real::READ_CHK,
        fn(c_int, *mut c_void, size_t, size_t) -> ssize_t,
        fd,
        buf,
        n,
        buflen
    )
}

/// The caller's iovecs as (address, length) pairs, read like any other
/// program memory (`EFAULT` if they cannot be).
fn iovecs(iov: *const iovec, count: c_int) -> Result<Vec<(u64, usize)>, Errno> {
    if !(0..=libc::UIO_MAXIOV).contains(&count) {
        return Err(Errno::EINVAL);
    }
    let raw = ProcessMemory.read(iov as u64, count as usize * 16)?;
    Ok(raw
        .chunks_exact(16)
        .map(|c| {
            let word = |i: usize| u64::from_ne_bytes(c[i..i + 8].try_into().expect("8 bytes"));
            (word(0), word(8) as usize)
        })
        .collect())
}

/// # Safety
/// glibc's `readv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !table::is_ksock(fd) {
        return call_real!(
            real::READV,
            fn(c_int, *const iovec, c_int) -> ssize_t,
            fd,
            iov,
            count
        );
    }
    let v = match iovecs(iov, count) {
        Ok(v) => v,
        Err(e) => return fail(e) as ssize_t,
    };
    let mut total = 0;
    for (base, len) in v {
        let n = ksock_read(fd, base as usize as *mut c_void, len);
        if n < 0 {
            return if total > 0 { total } else { n };
        }
        total += n;
        if (n as usize) < len {
            break;
        }
    }
    total
}

fn ksock_write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    match with_ksock(fd, |k, _| k.write_from(buf as u64, n, &ProcessMemory)) {
        Ok(n) => n as ssize_t,
        Err(e) => fail(e) as ssize_t,
    }
}

/// # Safety
/// glibc's `write`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    if !table::is_ksock(fd) {
        return call_real!(
            real::WRITE,
            fn(c_int, *const c_void, size_t) -> ssize_t,
            fd,
            buf,
            n
        );
    }
    ksock_write(fd, buf, n)
}

/// # Safety
/// glibc's `writev`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !table::is_ksock(fd) {
        return call_real!(
            real::WRITEV,
            fn(c_int, *const iovec, c_int) -> ssize_t,
            fd,
            iov,
            count
        );
    }
    let v = match iovecs(iov, count) {
        Ok(v) => v,
        Err(e) => return fail(e) as ssize_t,
    };
    // As that many writes, each copying only what the message can take.
    let r = with_ksock(fd, |k, _| {
        v.iter().try_fold(0usize, |total, &(base, len)| {
            k.write_from(base, len, &ProcessMemory)
                .map(|n| total.saturating_add(n))
        })
    });
    match r {
        Ok(n) => n.min(isize::MAX as usize) as ssize_t,
        Err(e) => fail(e) as ssize_t,
    }
}

/// # Safety
/// glibc's `ioctl` (its third argument read as a pointer-sized word, as the
/// variadic calling convention passes it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: usize) -> c_int {
    if !table::is_ksock(fd) {
        return call_real!(
            real::IOCTL,
            fn(c_int, c_ulong, usize) -> c_int,
            fd,
            request,
            arg
        );
    }
    match Command::decode(request) {
        Some(Ok(cmd)) => done(with_ksock(fd, |k, _| {
            k.ioctl(cmd, arg as u64, &mut ProcessMemory)
        })),
        Some(Err(e)) => fail(e),
        None if request as u32 == libc::FIONBIO as u32 => {
            // Kept off the socket: the library's own reads must block.
            let on = read_int_arg(arg);
            done(with_ksock(fd, |_, e| {
                e.nonblock.store(on?, std::sync::atomic::Ordering::SeqCst);
                Ok(0)
            }))
        }
        None => call_real!(
            real::IOCTL,
            fn(c_int, c_ulong, usize) -> c_int,
            fd,
            request,
            arg
        ),
    }
}

/// The `int *` argument of `FIONBIO`.
fn read_int_arg(arg: usize) -> Result<bool, Errno> {
    use crate::ksock::Memory;
    let b = ProcessMemory.read(arg as u64, 4)?;
    Ok(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != 0)
}

/// Forgets Ksock fd `fd` and takes it out of the epoll sets holding it;
/// if it was the Ksock's last fd, closes the Ksock (the bus answers what
/// it owed, and the endpoint closes its socket). Returns that socket, or
/// `None` if `fd` was not a Ksock.
fn forget(fd: c_int) -> Option<c_int> {
    let (entry, last, sets) = Table::with(|t| {
        let sets = t.sets_holding(fd);
        t.remove(fd).map(|(e, last)| (e, last, sets))
    })?;
    wait::forget_in_epolls(fd, &sets);
    if last && let Some(k) = inside(|| entry.lock().take()) {
        let _ = inside(|| k.close());
    }
    Some(entry.socket)
}

/// Forgets Ksock fd `fd`, which is about to be closed past our `close`
/// (by glibc's `fclose`).
pub(crate) fn release(fd: c_int) {
    forget(fd);
}

/// Closes the Ksock fd `fd` (KBUS's release when it is the last).
fn ksock_close(fd: c_int) -> c_int {
    let Some(socket) = forget(fd) else {
        return fail(Errno::EBADF);
    };
    if fd == socket {
        // The endpoint's own socket: closed with the Ksock, or kept open
        // (the number stays in use) while a `dup` still uses the Ksock.
        return 0;
    }
    call_real!(real::CLOSE, fn(c_int) -> c_int, fd)
}

/// # Safety
/// glibc's `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // (epoll sets are untracked here and in dup2/dup3/close_range.)
    if table::is_ksock(fd) {
        return ksock_close(fd);
    }
    if table::is_tracked_epoll(fd) {
        Table::with(|t| t.track_epoll(fd, false));
    }
    call_real!(real::CLOSE, fn(c_int) -> c_int, fd)
}

/// # Safety
/// glibc's `close_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let real = |a: c_uint, b: c_uint| {
        call_real!(
            real::CLOSE_RANGE,
            fn(c_uint, c_uint, c_int) -> c_int,
            a,
            b,
            flags
        )
    };
    if !table::any_ksocks() || flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 || first > last {
        return real(first, last);
    }
    let top = last.min(table::MAX_FD as c_uint - 1);
    for fd in first..=top.max(first) {
        if fd > top {
            break;
        }
        if table::is_ksock(fd as c_int) {
            ksock_close(fd as c_int);
        } else if table::is_tracked_epoll(fd as c_int) {
            Table::with(|t| t.track_epoll(fd as c_int, false));
        }
    }
    // The sockets of Ksocks still open through a `dup` stay open: close
    // the rest of the range around them.
    let mut keep: Vec<c_uint> = Table::with(|t| t.live_sockets())
        .into_iter()
        .filter_map(|s| c_uint::try_from(s).ok())
        .filter(|s| (first..=last).contains(s))
        .collect();
    keep.sort_unstable();
    let mut from = first;
    for k in keep {
        if k > from {
            let r = real(from, k - 1);
            if r < 0 {
                return r;
            }
        }
        from = k.saturating_add(1);
    }
    // (Kept sockets are below MAX_FD, so `from` never wrapped.)
    if from <= last {
        return real(from, last);
    }
    0
}

/// `new` is about to be replaced by `dup2`/`dup3`: a Ksock there is closed,
/// an epoll set there forgotten.
fn replacing(old: c_int, new: c_int) {
    if old == new {
        return;
    }
    if table::is_ksock(new) {
        ksock_close(new);
    } else if table::is_tracked_epoll(new) {
        Table::with(|t| t.track_epoll(new, false));
    }
}

/// After a successful dup of Ksock `old` onto `new`, files `new`.
fn dup_done(old: c_int, new: c_int) -> c_int {
    if new >= 0 && !Table::with(|t| t.alias(old, new)) {
        call_real!(real::CLOSE, fn(c_int) -> c_int, new);
        return fail(Errno::EMFILE);
    }
    new
}

/// # Safety
/// glibc's `dup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let new = call_real!(real::DUP, fn(c_int) -> c_int, fd);
    if table::is_ksock(fd) {
        dup_done(fd, new)
    } else {
        new
    }
}

/// # Safety
/// glibc's `dup2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    replacing(old, new);
    let r = call_real!(real::DUP2, fn(c_int, c_int) -> c_int, old, new);
    if old != new && table::is_ksock(old) {
        dup_done(old, r)
    } else {
        r
    }
}

/// # Safety
/// glibc's `dup3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    replacing(old, new);
    let r = call_real!(
        real::DUP3,
        fn(c_int, c_int, c_int) -> c_int,
        old,
        new,
        flags
    );
    if table::is_ksock(old) {
        dup_done(old, r)
    } else {
        r
    }
}

fn ksock_fcntl(fd: c_int, cmd: c_int, arg: usize, sym: &real::Sym) -> c_int {
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let new = call_real!(sym, fn(c_int, c_int, usize) -> c_int, fd, cmd, arg);
            dup_done(fd, new)
        }
        libc::F_GETFL => done(with_ksock(fd, |k, e| {
            let mode = match k.mode() {
                Mode::ReadOnly => libc::O_RDONLY,
                Mode::WriteOnly => libc::O_WRONLY,
                Mode::ReadWrite => libc::O_RDWR,
            };
            let nb = if e.nonblock.load(std::sync::atomic::Ordering::SeqCst) {
                libc::O_NONBLOCK
            } else {
                0
            };
            Ok(mode | nb)
        })),
        libc::F_SETFL => done(with_ksock(fd, |_, e| {
            let on = arg as c_int & libc::O_NONBLOCK != 0;
            e.nonblock.store(on, std::sync::atomic::Ordering::SeqCst);
            Ok(0)
        })),
        _ => call_real!(sym, fn(c_int, c_int, usize) -> c_int, fd, cmd, arg),
    }
}

/// # Safety
/// glibc's `fcntl` (third argument read as a pointer-sized word).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    if table::is_ksock(fd) {
        return ksock_fcntl(fd, cmd, arg, &real::FCNTL);
    }
    call_real!(real::FCNTL, fn(c_int, c_int, usize) -> c_int, fd, cmd, arg)
}

/// # Safety
/// glibc's `fcntl64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    if table::is_ksock(fd) {
        return ksock_fcntl(fd, cmd, arg, &real::FCNTL64);
    }
    call_real!(
        real::FCNTL64,
        fn(c_int, c_int, usize) -> c_int,
        fd,
        cmd,
        arg
    )
}
