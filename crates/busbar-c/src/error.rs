//! Errors across the boundary: negative errno values, their texts, and the
//! guard that keeps a Rust panic from unwinding into C.

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use busbar::Errno;

/// Runs one API call: `Ok(v)` returns `v`, `Err(e)` returns `-e`, and a
/// panic (a bug in busbar) returns `-EIO` instead of unwinding into C.
pub(crate) fn guard(f: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => -e.number(),
        Err(_) => -Errno::EIO.number(),
    }
}

/// What an error means, as a sentence (static storage; never NULL).
/// `err` may be negative (as functions return it) or positive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_strerror(err: c_int) -> *const c_char {
    match Errno::from_number(err.saturating_abs()) {
        Some(e) => e.strerror_c().as_ptr(),
        None => c"unknown error".as_ptr(),
    }
}

/// The errno's symbolic name, such as "EADDRNOTAVAIL" (static storage;
/// "EUNKNOWN" for a number busbar does not use).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_errno_name(err: c_int) -> *const c_char {
    match Errno::from_number(err.saturating_abs()) {
        Some(e) => e.name_c().as_ptr(),
        None => c"EUNKNOWN".as_ptr(),
    }
}
