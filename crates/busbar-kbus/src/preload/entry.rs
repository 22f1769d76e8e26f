//! The file entry points: open, stat, read, write, ioctl, close, dup, fcntl.
//! Each looks first at whether the path or fd is ours, and if not calls
//! glibc's own function with the same arguments.

use std::ffi::CStr;

use busbar::Errno;
use libc::{FILE, c_char, c_int, c_uint, c_ulong, c_void, iovec, mode_t, size_t, ssize_t};

use super::memory::ProcessMemory;
use super::real::{self, call_real};
use super::table::{self, Entry, Table, inside};
use crate::ioctl::Command;
use crate::ksock::Ksock;

/// Sets `errno` and returns -1.
pub(crate) fn fail(e: Errno) -> c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = e.number() };
    -1
}

fn done(r: Result<c_int, Errno>) -> c_int {
    r.unwrap_or_else(fail)
}

/// A path this library serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `/dev/kbusN`.
    Device(u32),
    /// `/proc/kbus/bindings`.
    Bindings,
    /// `/proc/kbus/stats`.
    Stats,
}

/// What `path` names, if it is ours (absolute paths only).
pub(crate) fn classify(path: &[u8]) -> Option<Path> {
    if let Some(n) = path.strip_prefix(b"/dev/kbus") {
        let ok = !n.is_empty()
            && n.len() <= 9
            && n.iter().all(u8::is_ascii_digit)
            && (n == b"0" || n[0] != b'0');
        return ok
            .then(|| std::str::from_utf8(n).ok()?.parse().ok().map(Path::Device))
            .flatten();
    }
    match path {
        b"/proc/kbus/bindings" => Some(Path::Bindings),
        b"/proc/kbus/stats" => Some(Path::Stats),
        _ => None,
    }
}

/// The path behind a C string, if it is ours.
fn ours(path: *const c_char) -> Option<Path> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller passed a NUL-terminated path, as glibc requires.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    // Cheap test first: most paths are not ours.
    if !(bytes.starts_with(b"/dev/kbus") || bytes.starts_with(b"/proc/kbus/")) {
        return None;
    }
    classify(bytes)
}

/// Is `path` the empty string (for `AT_EMPTY_PATH`)?
fn empty(path: *const c_char) -> bool {
    // SAFETY: a non-NULL path is the caller's C string; its first byte exists.
    !path.is_null() && unsafe { *path } == 0
}

/// Errors that mean "no daemon answers": the device does not exist.
fn no_device(e: Errno) -> Errno {
    match e {
        Errno::ECONNREFUSED | Errno::ECONNRESET | Errno::ETIMEDOUT | Errno::ESHUTDOWN => {
            Errno::ENOENT
        }
        e => e,
    }
}

fn open_device(n: u32, flags: c_int) -> Result<c_int, Errno> {
    let can_write = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let (bus, device) = Table::with(|t| -> Result<_, Errno> {
        let bus = t.bus(n).map_err(no_device)?;
        Ok((bus, t.device(n)))
    })?;
    let fd = inside(|| -> Result<c_int, Errno> {
        bus.info().map_err(no_device)?;
        let ksock = Ksock::open(&bus, device, can_write).map_err(no_device)?;
        Table::with(|t| t.insert(ksock, n))
    })?;
    if flags & libc::O_CLOEXEC == 0 {
        // Our sockets are made close-on-exec; the program did not ask.
        call_real!(
            real::FCNTL,
            fn(c_int, c_int, c_int) -> c_int,
            fd,
            libc::F_SETFD,
            0
        );
    }
    Ok(fd)
}

/// A snapshot of a `/proc/kbus` file in a memfd.
fn open_proc(path: Path, flags: c_int) -> Result<c_int, Errno> {
    if flags & libc::O_ACCMODE != libc::O_RDONLY {
        return Err(Errno::EACCES);
    }
    let text = Table::with(|t| -> Result<String, Errno> {
        let bus = t.bus(0).map_err(no_device)?;
        inside(|| match path {
            Path::Stats => crate::proc::stats(&bus),
            _ => crate::proc::bindings(&bus),
        })
    })?;
    let cloexec = if flags & libc::O_CLOEXEC != 0 {
        libc::MFD_CLOEXEC
    } else {
        0
    };
    // SAFETY: a literal NUL-terminated name; no other preconditions.
    let fd = unsafe { libc::memfd_create(c"kbus-proc".as_ptr(), cloexec) };
    if fd < 0 {
        return Err(Errno::ENOMEM);
    }
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: `rest` is a live slice; `fd` is the memfd just made.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            // SAFETY: closing the memfd we made.
            unsafe { libc::close(fd) };
            return Err(Errno::ENOMEM);
        }
        rest = &rest[n as usize..];
    }
    // SAFETY: rewinding the memfd we made.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(fd)
}

fn open_ours(path: Path, flags: c_int) -> c_int {
    done(match path {
        Path::Device(n) => open_device(n, flags),
        p => open_proc(p, flags),
    })
}

/// # Safety
/// glibc's `open`: `path` is a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPEN,
            fn(*const c_char, c_int, mode_t) -> c_int,
            path,
            flags,
            mode
        ),
    }
}

/// # Safety
/// glibc's `open64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPEN64,
            fn(*const c_char, c_int, mode_t) -> c_int,
            path,
            flags,
            mode
        ),
    }
}

/// # Safety
/// glibc's `openat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPENAT,
            fn(c_int, *const c_char, c_int, mode_t) -> c_int,
            dir,
            path,
            flags,
            mode
        ),
    }
}

/// # Safety
/// glibc's `openat64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat64(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPENAT64,
            fn(c_int, *const c_char, c_int, mode_t) -> c_int,
            dir,
            path,
            flags,
            mode
        ),
    }
}

/// # Safety
/// glibc's fortified `open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(real::OPEN_2, fn(*const c_char, c_int) -> c_int, path, flags),
    }
}

/// # Safety
/// glibc's fortified `open64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPEN64_2,
            fn(*const c_char, c_int) -> c_int,
            path,
            flags
        ),
    }
}

/// # Safety
/// glibc's fortified `openat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPENAT_2,
            fn(c_int, *const c_char, c_int) -> c_int,
            dir,
            path,
            flags
        ),
    }
}

/// # Safety
/// glibc's fortified `openat64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat64_2(dir: c_int, path: *const c_char, flags: c_int) -> c_int {
    match ours(path) {
        Some(p) => open_ours(p, flags),
        None => call_real!(
            real::OPENAT64_2,
            fn(c_int, *const c_char, c_int) -> c_int,
            dir,
            path,
            flags
        ),
    }
}

/// `fopen` of one of our paths: our `open`, then `fdopen`.
fn fopen_ours(p: Path, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller passed a NUL-terminated mode, as fopen requires.
    let m = unsafe { CStr::from_ptr(mode) }.to_bytes();
    let flags = if m.contains(&b'+') || m.first().is_some_and(|&c| c == b'w' || c == b'a') {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    } | if m.contains(&b'e') {
        libc::O_CLOEXEC
    } else {
        0
    };
    let fd = open_ours(p, flags);
    if fd < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: `fd` is the fd just opened; `mode` is the caller's C string.
    unsafe { libc::fdopen(fd, mode) }
}

/// # Safety
/// glibc's `fopen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    match ours(path) {
        Some(p) => fopen_ours(p, mode),
        None => call_real!(
            real::FOPEN,
            fn(*const c_char, *const c_char) -> *mut FILE,
            path,
            mode
        ),
    }
}

/// # Safety
/// glibc's `fopen64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    match ours(path) {
        Some(p) => fopen_ours(p, mode),
        None => call_real!(
            real::FOPEN64,
            fn(*const c_char, *const c_char) -> *mut FILE,
            path,
            mode
        ),
    }
}

// ----- stat --------------------------------------------------------------

/// What `stat` says about one of our paths: `(mode, rdev minor)`, or
/// `ENOENT` (no such bus, or no daemon).
fn stat_ours(p: Path) -> Result<(u32, u32), Errno> {
    Table::with(|t| -> Result<(u32, u32), Errno> {
        let n = match p {
            Path::Device(n) => n,
            _ => 0,
        };
        let bus = t.bus(n).map_err(no_device)?;
        inside(|| bus.info()).map_err(no_device)?;
        Ok(match p {
            Path::Device(n) => (libc::S_IFCHR | 0o666, n),
            _ => (libc::S_IFREG | 0o444, 0),
        })
    })
}

/// Major number reported for `/dev/kbusN` (a dynamic-range major, as the
/// module's would be).
const KBUS_MAJOR: u32 = 240;

fn fill_stat(p: Path, buf: *mut libc::stat) -> c_int {
    match stat_ours(p) {
        Ok((mode, minor)) => write_stat(mode, minor, buf),
        Err(e) => fail(e),
    }
}

/// What `fstat` says about a Ksock: the character device it was opened as.
fn ksock_stat(fd: c_int) -> Result<(u32, u32), Errno> {
    let device = Table::with(|t| t.get(fd).map(|e| e.device)).ok_or(Errno::EBADF)?;
    Ok((libc::S_IFCHR | 0o666, device))
}

fn ksock_fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    match ksock_stat(fd) {
        Ok((mode, minor)) => write_stat(mode, minor, buf),
        Err(e) => fail(e),
    }
}

fn write_stat(mode: u32, minor: u32, buf: *mut libc::stat) -> c_int {
    if buf.is_null() {
        return fail(Errno::EFAULT);
    }
    // SAFETY: an all-zero `struct stat` is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_mode = mode;
    st.st_nlink = 1;
    st.st_rdev = if mode & libc::S_IFMT == libc::S_IFCHR {
        libc::makedev(KBUS_MAJOR, minor)
    } else {
        0
    };
    st.st_blksize = 4096;
    st.st_ino = 0x6b62_7573_0000 + u64::from(minor);
    // SAFETY: `buf` is the caller's `struct stat`, checked non-NULL.
    unsafe { buf.write(st) };
    0
}

macro_rules! stat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, buf: *mut libc::stat) -> c_int {
            match ours(path) {
                Some(p) => fill_stat(p, buf),
                None => call_real!($sym, fn(*const c_char, *mut libc::stat) -> c_int, path, buf),
            }
        }
    };
}
stat_hook!(stat, real::STAT);
stat_hook!(stat64, real::STAT64);
stat_hook!(lstat, real::LSTAT);
stat_hook!(lstat64, real::LSTAT64);

macro_rules! fstatat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            dir: c_int,
            path: *const c_char,
            buf: *mut libc::stat,
            flags: c_int,
        ) -> c_int {
            if flags & libc::AT_EMPTY_PATH != 0 && empty(path) && table::is_ksock(dir) {
                return ksock_fstat(dir, buf);
            }
            match ours(path) {
                Some(p) => fill_stat(p, buf),
                None => call_real!(
                    $sym,
                    fn(c_int, *const c_char, *mut libc::stat, c_int) -> c_int,
                    dir,
                    path,
                    buf,
                    flags
                ),
            }
        }
    };
}
fstatat_hook!(fstatat, real::FSTATAT);

macro_rules! fstat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, buf: *mut libc::stat) -> c_int {
            if table::is_ksock(fd) {
                return ksock_fstat(fd, buf);
            }
            call_real!($sym, fn(c_int, *mut libc::stat) -> c_int, fd, buf)
        }
    };
}
fstat_hook!(fstat, real::FSTAT);
fstat_hook!(fstat64, real::FSTAT64);

macro_rules! fxstat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's pre-2.33 function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(_ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int {
            if table::is_ksock(fd) {
                return ksock_fstat(fd, buf);
            }
            call_real!($sym, fn(c_int, *mut libc::stat) -> c_int, fd, buf)
        }
    };
}
fxstat_hook!(__fxstat, real::FSTAT);
fxstat_hook!(__fxstat64, real::FSTAT64);
fstatat_hook!(fstatat64, real::FSTATAT64);

macro_rules! xstat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's pre-2.33 function of this name (`_STAT_VER` is ignored:
        /// there is one `struct stat` on 64-bit Linux).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            _ver: c_int,
            path: *const c_char,
            buf: *mut libc::stat,
        ) -> c_int {
            match ours(path) {
                Some(p) => fill_stat(p, buf),
                None => call_real!($sym, fn(*const c_char, *mut libc::stat) -> c_int, path, buf),
            }
        }
    };
}
xstat_hook!(__xstat, real::STAT);
xstat_hook!(__xstat64, real::STAT64);
xstat_hook!(__lxstat, real::LSTAT);
xstat_hook!(__lxstat64, real::LSTAT64);

macro_rules! fxstatat_hook {
    ($name:ident, $sym:path) => {
        /// # Safety
        /// glibc's pre-2.33 function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            _ver: c_int,
            dir: c_int,
            path: *const c_char,
            buf: *mut libc::stat,
            flags: c_int,
        ) -> c_int {
            match ours(path) {
                Some(p) => fill_stat(p, buf),
                None => call_real!(
                    $sym,
                    fn(c_int, *const c_char, *mut libc::stat, c_int) -> c_int,
                    dir,
                    path,
                    buf,
                    flags
                ),
            }
        }
    };
}
fxstatat_hook!(__fxstatat, real::FSTATAT);
fxstatat_hook!(__fxstatat64, real::FSTATAT64);

/// # Safety
/// glibc's `statx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn statx(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    let found = if flags & libc::AT_EMPTY_PATH != 0 && empty(path) && table::is_ksock(dir) {
        ksock_stat(dir)
    } else {
        match ours(path) {
            Some(p) => stat_ours(p),
            None => {
                return call_real!(
                    real::STATX,
                    fn(c_int, *const c_char, c_int, c_uint, *mut libc::statx) -> c_int,
                    dir,
                    path,
                    flags,
                    mask,
                    buf
                );
            }
        }
    };
    let (mode, minor) = match found {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if buf.is_null() {
        return fail(Errno::EFAULT);
    }
    // SAFETY: an all-zero `struct statx` is valid.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    st.stx_mask = libc::STATX_BASIC_STATS;
    st.stx_mode = mode as u16;
    st.stx_nlink = 1;
    st.stx_blksize = 4096;
    if mode & libc::S_IFMT == libc::S_IFCHR {
        st.stx_rdev_major = KBUS_MAJOR;
        st.stx_rdev_minor = minor;
    }
    st.stx_ino = 0x6b62_7573_0000 + u64::from(minor);
    // SAFETY: `buf` is the caller's `struct statx`, checked non-NULL.
    unsafe { buf.write(st) };
    0
}

/// # Safety
/// glibc's `access`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    match ours(path) {
        Some(p) => done(stat_ours(p).map(|_| 0)),
        None => call_real!(real::ACCESS, fn(*const c_char, c_int) -> c_int, path, mode),
    }
}

/// # Safety
/// glibc's `faccessat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn faccessat(
    dir: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    match ours(path) {
        Some(p) => done(stat_ours(p).map(|_| 0)),
        None => call_real!(
            real::FACCESSAT,
            fn(c_int, *const c_char, c_int, c_int) -> c_int,
            dir,
            path,
            mode,
            flags
        ),
    }
}

// ----- Ksock fds ---------------------------------------------------------

/// Runs `f` on the Ksock behind `fd` (`EBADF` if it has closed).
pub(crate) fn with_ksock<T>(
    fd: c_int,
    f: impl FnOnce(&mut Ksock, &Entry) -> Result<T, Errno>,
) -> Result<T, Errno> {
    let entry = Table::with(|t| t.get(fd)).ok_or(Errno::EBADF)?;
    inside(|| {
        let mut g = entry.lock();
        let ksock = g.as_mut().ok_or(Errno::EBADF)?;
        f(ksock, &entry)
    })
}

fn ksock_read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    match with_ksock(fd, |k, _| Ok(k.read(n))) {
        Ok(bytes) => {
            if !bytes.is_empty() {
                // SAFETY: the caller's buffer holds `n` bytes, and
                // `bytes.len() <= n`.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast(), bytes.len()) };
            }
            bytes.len() as ssize_t
        }
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

/// The caller's iovecs as (pointer, length) pairs.
fn iovecs(iov: *const iovec, count: c_int) -> Result<&'static [iovec], Errno> {
    if !(0..=libc::UIO_MAXIOV).contains(&count) {
        return Err(Errno::EINVAL);
    }
    if count == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the caller passed `count` iovecs at `iov`, as readv/writev
    // require; the slice is used only during the call.
    Ok(unsafe { std::slice::from_raw_parts(iov, count as usize) })
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
    for io in v {
        let n = ksock_read(fd, io.iov_base, io.iov_len);
        if n < 0 {
            return if total > 0 { total } else { n };
        }
        total += n;
        if (n as usize) < io.iov_len {
            break;
        }
    }
    total
}

fn ksock_write(fd: c_int, bytes: &[u8]) -> ssize_t {
    match with_ksock(fd, |k, _| k.write(bytes)) {
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
    if n == 0 {
        return ksock_write(fd, &[]);
    }
    if buf.is_null() {
        return fail(Errno::EFAULT) as ssize_t;
    }
    // SAFETY: the caller's buffer holds `n` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), n) };
    ksock_write(fd, bytes)
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
    let mut all = Vec::new();
    for io in v {
        if io.iov_len > 0 {
            // SAFETY: each iovec describes `iov_len` readable bytes.
            all.extend_from_slice(unsafe {
                std::slice::from_raw_parts(io.iov_base.cast::<u8>(), io.iov_len)
            });
        }
    }
    ksock_write(fd, &all)
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

/// Closes the Ksock fd `fd` (KBUS's release when it is the last).
fn ksock_close(fd: c_int) -> c_int {
    let Some((entry, last)) = Table::with(|t| t.remove(fd)) else {
        return fail(Errno::EBADF);
    };
    if last {
        // Closes the endpoint (the bus answers what it owed) and its
        // socket, which is `entry.socket`.
        let ksock = inside(|| entry.lock().take());
        if let Some(k) = ksock {
            let _ = inside(|| k.close());
        }
        if fd == entry.socket {
            return 0;
        }
    } else if fd == entry.socket {
        // Other fds still use the Ksock, whose connection is this socket:
        // it stays open until the last of them closes.
        return 0;
    }
    call_real!(real::CLOSE, fn(c_int) -> c_int, fd)
}

/// # Safety
/// glibc's `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
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
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        let top = last.min(table::MAX_FD as c_uint - 1);
        let mut fd = first;
        while fd <= top {
            if table::is_ksock(fd as c_int) {
                ksock_close(fd as c_int);
            }
            fd += 1;
        }
    }
    call_real!(
        real::CLOSE_RANGE,
        fn(c_uint, c_uint, c_int) -> c_int,
        first,
        last,
        flags
    )
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
    if old != new && table::is_ksock(new) {
        ksock_close(new);
    }
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
    if old != new && table::is_ksock(new) {
        ksock_close(new);
    }
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
            let mode = if k.can_write() {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
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
