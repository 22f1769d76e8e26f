//! The path entry points: `open` and its variants and `fopen` for
//! `/dev/kbusN` (a new Ksock) and `/proc/kbus/*` (a snapshot in a memfd).
//! Any other path goes to glibc's own function with the same arguments.

use std::ffi::CStr;

use busbar::Errno;
use libc::{FILE, c_char, c_int, mode_t};

use super::done;
use super::memory::ProcessMemory;
use super::real::{self, call_real};
use super::table::{self, Table, contained, inside};
use crate::ksock::{Ksock, Mode};

/// A path this library serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `/dev/kbusN`.
    Device(u32),
    /// `/proc/kbus/bindings`.
    Bindings,
    /// `/proc/kbus/stats`.
    Stats,
    /// `/dev/kbusN/` or `/dev/kbusN/.`: a device used as a directory.
    DeviceAsDirectory,
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

/// The path behind a C string, relative to directory fd `dir`, if it is
/// ours. Only a path containing "kbus" costs more than a scan: it is made
/// absolute (from the working directory, or `dir`) and normalised (`//`,
/// `.`, `..`) before it is classified.
pub(crate) fn ours_at(dir: c_int, path: *const c_char) -> Option<Path> {
    let mut buf = [0u8; PATH_BUF];
    let bytes = read_path(path, &mut buf)?;
    if !bytes.windows(4).any(|w| w == b"kbus") {
        return None;
    }
    if (bytes.starts_with(b"/dev/kbus") || bytes.starts_with(b"/proc/kbus/"))
        && let Some(p) = classify(bytes)
    {
        return Some(p);
    }
    let as_directory = bytes.ends_with(b"/") || bytes.ends_with(b"/.");
    let mut full = if bytes.starts_with(b"/") {
        Vec::new()
    } else {
        base_dir(dir)?
    };
    full.push(b'/');
    full.extend_from_slice(bytes);
    match classify(&normalise(&full))? {
        Path::Device(_) if as_directory => Some(Path::DeviceAsDirectory),
        p => Some(p),
    }
}

const PATH_BUF: usize = 4096;

/// The C string at `p`, read without trusting the pointer (a bad one is the
/// real call's `EFAULT`, not our crash) and without allocating: `None` if it
/// cannot be read or is longer than `PATH_MAX`.
fn read_path(p: *const c_char, buf: &mut [u8; PATH_BUF]) -> Option<&[u8]> {
    let (mut at, mut got) = (p as usize, 0);
    loop {
        // Never across a page: the rest of this one is mapped if its first
        // byte is.
        let n = (PATH_BUF - at % PATH_BUF).min(PATH_BUF - got);
        if n == 0 {
            return None;
        }
        ProcessMemory::read_into(at as u64, &mut buf[got..got + n]).ok()?;
        if let Some(z) = buf[got..got + n].iter().position(|&c| c == 0) {
            return Some(&buf[..got + z]);
        }
        got += n;
        at += n;
    }
}

/// The directory a relative path starts from.
fn base_dir(dir: c_int) -> Option<Vec<u8>> {
    if dir == libc::AT_FDCWD {
        return std::env::current_dir()
            .ok()
            .map(|p| p.into_os_string().into_encoded_bytes());
    }
    std::fs::read_link(format!("/proc/self/fd/{dir}"))
        .ok()
        .map(|p| p.into_os_string().into_encoded_bytes())
}

/// `a//b/./c/../d` → `/a/b/d` (lexically, as for device paths).
fn normalise(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&c| c == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out
}

/// Is `path` the empty string (for `AT_EMPTY_PATH`)?
pub(crate) fn empty(path: *const c_char) -> bool {
    let mut first = [1u8];
    ProcessMemory::read_into(path as u64, &mut first).is_ok() && first[0] == 0
}

/// Errors that mean "no daemon answers": the device does not exist.
pub(crate) fn no_device(e: Errno) -> Errno {
    match e {
        Errno::ECONNREFUSED | Errno::ECONNRESET | Errno::ETIMEDOUT | Errno::ESHUTDOWN => {
            Errno::ENOENT
        }
        e => e,
    }
}

fn open_device(n: u32, flags: c_int) -> Result<c_int, Errno> {
    let mode = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => Mode::ReadOnly,
        libc::O_WRONLY => Mode::WriteOnly,
        _ => Mode::ReadWrite,
    };
    let (bus, device) = Table::with(|t| -> Result<_, Errno> {
        let bus = t.bus(n).map_err(no_device)?;
        Ok((bus, t.device(n)))
    })?;
    let fd = inside(|| -> Result<c_int, Errno> {
        bus.info().map_err(no_device)?;
        let ksock = Ksock::open(&bus, device, mode).map_err(no_device)?;
        Table::with(|t| {
            let fd = t.insert(ksock, n)?;
            if let Some(e) = t.get(fd) {
                e.nonblock.store(
                    flags & libc::O_NONBLOCK != 0,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
            Ok(fd)
        })
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
    done(contained(|| match path {
        Path::Device(_) if flags & libc::O_DIRECTORY != 0 => Err(Errno::ENOTDIR),
        Path::DeviceAsDirectory => Err(Errno::ENOTDIR),
        Path::Device(n) => open_device(n, flags),
        p => open_proc(p, flags),
    }))
}

/// Defines glibc's `$name`: for one of our paths (`$path` relative to
/// directory fd `$dir`), `$ours` with the path as `$found`; for any other,
/// glibc's own function with the same arguments.
macro_rules! path_hook {
    ($name:ident, $sym:path, ($($p:ident: $t:ty),*) -> $r:ty, ($dir:expr, $path:ident), |$found:ident| $ours:expr) => {
        /// # Safety
        /// glibc's function of this name: `path` is a C string.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($p: $t),*) -> $r {
            match ours_at($dir, $path) {
                Some($found) => $ours,
                None => call_real!($sym, fn($($t),*) -> $r, $($p),*),
            }
        }
    };
}
pub(crate) use path_hook;

path_hook!(open, real::OPEN, (path: *const c_char, flags: c_int, mode: mode_t) -> c_int,
    (libc::AT_FDCWD, path), |p| open_ours(p, flags));
path_hook!(open64, real::OPEN64, (path: *const c_char, flags: c_int, mode: mode_t) -> c_int,
    (libc::AT_FDCWD, path), |p| open_ours(p, flags));
path_hook!(openat, real::OPENAT, (dir: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int,
    (dir, path), |p| open_ours(p, flags));
path_hook!(openat64, real::OPENAT64, (dir: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int,
    (dir, path), |p| open_ours(p, flags));
// The fortified forms (`_FORTIFY_SOURCE`).
path_hook!(__open_2, real::OPEN_2, (path: *const c_char, flags: c_int) -> c_int,
    (libc::AT_FDCWD, path), |p| open_ours(p, flags));
path_hook!(__open64_2, real::OPEN64_2, (path: *const c_char, flags: c_int) -> c_int,
    (libc::AT_FDCWD, path), |p| open_ours(p, flags));
path_hook!(__openat_2, real::OPENAT_2, (dir: c_int, path: *const c_char, flags: c_int) -> c_int,
    (dir, path), |p| open_ours(p, flags));
path_hook!(__openat64_2, real::OPENAT64_2, (dir: c_int, path: *const c_char, flags: c_int) -> c_int,
    (dir, path), |p| open_ours(p, flags));

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
    // A Ksock's stream gets a `dup` of it, so that glibc, which closes the
    // stream's fd past our `close`, closes that copy and never the
    // endpoint's own socket (our `fclose` releases the Ksock first).
    let stream_fd = if matches!(p, Path::Device(_)) {
        // SAFETY: `fd` is the Ksock just opened; our `dup` files the copy.
        let copy = unsafe { super::fds::dup(fd) };
        // SAFETY: our `close` of the original: the copy keeps the Ksock.
        unsafe { super::fds::close(fd) };
        if copy < 0 {
            return std::ptr::null_mut();
        }
        copy
    } else {
        fd
    };
    // SAFETY: `stream_fd` is ours; `mode` is the caller's C string.
    let f = unsafe { libc::fdopen(stream_fd, mode) };
    if f.is_null() {
        // SAFETY: closing (through our hook) the fd nothing else will use.
        unsafe { super::fds::close(stream_fd) };
    }
    f
}

/// # Safety
/// glibc's `fclose`. A Ksock's stream (see `fopen`) releases the Ksock
/// here: glibc then closes the stream's fd without going through `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fclose(stream: *mut FILE) -> c_int {
    if table::any_ksocks() && !stream.is_null() {
        // SAFETY: the caller's open stream, as fclose requires.
        let fd = unsafe { libc::fileno(stream) };
        if table::is_ksock(fd) {
            super::fds::release(fd);
        }
    }
    call_real!(real::FCLOSE, fn(*mut FILE) -> c_int, stream)
}

path_hook!(fopen, real::FOPEN, (path: *const c_char, mode: *const c_char) -> *mut FILE,
    (libc::AT_FDCWD, path), |p| fopen_ours(p, mode));
path_hook!(fopen64, real::FOPEN64, (path: *const c_char, mode: *const c_char) -> *mut FILE,
    (libc::AT_FDCWD, path), |p| fopen_ours(p, mode));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths() {
        assert_eq!(classify(b"/dev/kbus0"), Some(Path::Device(0)));
        assert_eq!(classify(b"/dev/kbus12"), Some(Path::Device(12)));
        assert_eq!(classify(b"/dev/kbus01"), None);
        assert_eq!(classify(b"/dev/kbus"), None);
        assert_eq!(classify(b"/dev/kbus0x"), None);
        assert_eq!(classify(b"/dev/kbus99999999999"), None);
        assert_eq!(classify(b"/proc/kbus/bindings"), Some(Path::Bindings));
        assert_eq!(normalise(b"/dev//./kbus3"), b"/dev/kbus3");
        assert_eq!(normalise(b"/tmp/../dev/kbus1/"), b"/dev/kbus1");
    }
}
