//! The `stat` family for `/dev/kbusN` and `/proc/kbus/*` (and `fstat` of a
//! Ksock): a character device, mode `0666`, while the daemon has the bus;
//! `ENOENT` otherwise. Any other path or fd goes to glibc.

use busbar::Errno;
use libc::{c_char, c_int, c_uint};

use super::memory::ProcessMemory;
use super::paths::{Path, empty, no_device, ours_at, path_hook};
use super::real::{self, call_real};
use super::table::{self, Table, contained, inside};
use super::{done, fail};
use crate::ksock::Memory;

/// What `stat` says about one of our paths: `(mode, rdev minor)`, or
/// `ENOENT` (no such bus, or no daemon).
fn stat_ours(p: Path) -> Result<(u32, u32), Errno> {
    contained(|| {
        Table::with(|t| -> Result<(u32, u32), Errno> {
            let n = match p {
                Path::Device(n) => n,
                Path::DeviceAsDirectory => return Err(Errno::ENOTDIR),
                _ => 0,
            };
            let bus = t.bus(n).map_err(no_device)?;
            inside(|| bus.info()).map_err(no_device)?;
            Ok(match p {
                Path::Device(n) => (libc::S_IFCHR | 0o666, n),
                _ => (libc::S_IFREG | 0o444, 0),
            })
        })
    })
}

/// Stores `v` at the caller's `out` without trusting the pointer
/// (`EFAULT` as from the kernel).
fn write_out<T: Copy>(out: *mut T, v: &T) -> c_int {
    // SAFETY: the bytes of a plain C struct we own, read for the call.
    let bytes = unsafe {
        std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    match ProcessMemory.write(out as u64, bytes) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
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
    write_out(buf, &st)
}

path_hook!(stat, real::STAT, (path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(stat64, real::STAT64, (path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(lstat, real::LSTAT, (path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(lstat64, real::LSTAT64, (path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
// Before glibc 2.33 these were the exported names (`_STAT_VER` first; one
// `struct stat` on 64-bit Linux).
path_hook!(__xstat, real::XSTAT, (ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(__xstat64, real::XSTAT64, (ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(__lxstat, real::LXSTAT, (ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(__lxstat64, real::LXSTAT64, (ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int,
    (libc::AT_FDCWD, path), |p| fill_stat(p, buf));
path_hook!(access, real::ACCESS, (path: *const c_char, mode: c_int) -> c_int,
    (libc::AT_FDCWD, path), |p| done(stat_ours(p).map(|_| 0)));
path_hook!(faccessat, real::FACCESSAT, (dir: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int,
    (dir, path), |p| done(stat_ours(p).map(|_| 0)));

/// `fstatat` of one of our paths, or of a Ksock's own fd with
/// `AT_EMPTY_PATH`; `None` for anything else.
fn fstatat_ours(
    dir: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> Option<c_int> {
    if flags & libc::AT_EMPTY_PATH != 0 && table::is_ksock(dir) && empty(path) {
        return Some(ksock_fstat(dir, buf));
    }
    ours_at(dir, path).map(|p| fill_stat(p, buf))
}

macro_rules! fstatat_hook {
    ($name:ident, $sym:path, $($ver:ident)?) => {
        /// # Safety
        /// glibc's function of this name: `path` is a C string.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            $($ver: c_int,)?
            dir: c_int,
            path: *const c_char,
            buf: *mut libc::stat,
            flags: c_int,
        ) -> c_int {
            fstatat_ours(dir, path, buf, flags).unwrap_or_else(|| {
                call_real!($sym, fn($(stat_ver!($ver),)? c_int, *const c_char, *mut libc::stat, c_int) -> c_int,
                    $($ver,)? dir, path, buf, flags)
            })
        }
    };
}

macro_rules! fstat_hook {
    ($name:ident, $sym:path, $($ver:ident)?) => {
        /// # Safety
        /// glibc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($ver: c_int,)? fd: c_int, buf: *mut libc::stat) -> c_int {
            if table::is_ksock(fd) {
                return ksock_fstat(fd, buf);
            }
            call_real!($sym, fn($(stat_ver!($ver),)? c_int, *mut libc::stat) -> c_int, $($ver,)? fd, buf)
        }
    };
}

/// The type of the `_STAT_VER` argument (`$ver` only marks its presence).
macro_rules! stat_ver {
    ($ver:ident) => {
        c_int
    };
}

fstatat_hook!(fstatat, real::FSTATAT,);
fstatat_hook!(fstatat64, real::FSTATAT64,);
fstatat_hook!(__fxstatat, real::FXSTATAT, ver);
fstatat_hook!(__fxstatat64, real::FXSTATAT64, ver);
fstat_hook!(fstat, real::FSTAT,);
fstat_hook!(fstat64, real::FSTAT64,);
fstat_hook!(__fxstat, real::FXSTAT, ver);
fstat_hook!(__fxstat64, real::FXSTAT64, ver);

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
    let found = if flags & libc::AT_EMPTY_PATH != 0 && table::is_ksock(dir) && empty(path) {
        ksock_stat(dir)
    } else {
        match ours_at(dir, path) {
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
    write_out(buf, &st)
}
