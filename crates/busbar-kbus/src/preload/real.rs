//! glibc's own entry points, found with `dlsym(RTLD_NEXT)` when the library
//! loads (so no hook ever resolves a symbol later, e.g. in a `vfork`
//! child).

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One glibc symbol, resolved once.
#[derive(Debug)]
pub(crate) struct Sym {
    name: &'static CStr,
    addr: AtomicUsize,
}

impl Sym {
    const fn new(name: &'static CStr) -> Self {
        Self {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The symbol's address (0 if glibc has none by that name).
    pub(crate) fn addr(&self) -> usize {
        let a = self.addr.load(Ordering::Acquire);
        if a != 0 {
            return a;
        }
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no
        // preconditions; it returns NULL when the symbol is missing.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) } as usize;
        self.addr.store(p, Ordering::Release);
        p
    }
}

/// Calls glibc's `$sym` as `fn($t...) -> $r`; a missing symbol fails with
/// `ENOSYS`.
macro_rules! call_real {
    ($sym:path, fn($($t:ty),* $(,)?) -> $r:ty, $($arg:expr),* $(,)?) => {{
        let a = $sym.addr();
        if a == 0 {
            $crate::preload::fail(busbar::Errno::ENOSYS) as $r
        } else {
            // SAFETY: `a` is glibc's definition of this very symbol, whose C
            // prototype is the one written here.
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(a) };
            // SAFETY: the arguments are the caller's, passed on unchanged.
            unsafe { f($($arg),*) }
        }
    }};
}
pub(crate) use call_real;

macro_rules! syms {
    ($($name:ident = $c:literal;)*) => {
        $( pub(crate) static $name: Sym = Sym::new($c); )*
        /// Resolves every symbol now.
        pub(crate) fn resolve_all() {
            $( $name.addr(); )*
        }
    };
}

syms! {
    OPEN = c"open";
    OPEN64 = c"open64";
    OPENAT = c"openat";
    OPENAT64 = c"openat64";
    OPEN_2 = c"__open_2";
    OPEN64_2 = c"__open64_2";
    OPENAT_2 = c"__openat_2";
    OPENAT64_2 = c"__openat64_2";
    FOPEN = c"fopen";
    FOPEN64 = c"fopen64";
    FCLOSE = c"fclose";
    STAT = c"stat";
    STAT64 = c"stat64";
    LSTAT = c"lstat";
    LSTAT64 = c"lstat64";
    FSTATAT = c"fstatat";
    FSTAT = c"fstat";
    FSTAT64 = c"fstat64";
    XSTAT = c"__xstat";
    XSTAT64 = c"__xstat64";
    LXSTAT = c"__lxstat";
    LXSTAT64 = c"__lxstat64";
    FXSTAT = c"__fxstat";
    FXSTAT64 = c"__fxstat64";
    FXSTATAT = c"__fxstatat";
    FXSTATAT64 = c"__fxstatat64";
    FSTATAT64 = c"fstatat64";
    STATX = c"statx";
    ACCESS = c"access";
    FACCESSAT = c"faccessat";
    READ = c"read";
    READ_CHK = c"__read_chk";
    READV = c"readv";
    WRITE = c"write";
    WRITEV = c"writev";
    IOCTL = c"ioctl";
    CLOSE = c"close";
    CLOSE_RANGE = c"close_range";
    DUP = c"dup";
    DUP2 = c"dup2";
    DUP3 = c"dup3";
    FCNTL = c"fcntl";
    FCNTL64 = c"fcntl64";
    POLL = c"poll";
    POLL_CHK = c"__poll_chk";
    PPOLL = c"ppoll";
    SELECT = c"select";
    PSELECT = c"pselect";
    EPOLL_CTL = c"epoll_ctl";
    EPOLL_WAIT = c"epoll_wait";
    EPOLL_PWAIT = c"epoll_pwait";
}

extern "C" fn on_load() {
    resolve_all();
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;
