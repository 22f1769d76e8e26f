//! Errors across the boundary: negative errno values, their texts, and the
//! guard that keeps a Rust panic from unwinding into C.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

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

/// Texts of every errno busbar uses, made once (C strings that live for
/// the whole program).
fn texts() -> &'static HashMap<i32, (CString, CString)> {
    static TEXTS: OnceLock<HashMap<i32, (CString, CString)>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        (1..200)
            .filter_map(Errno::from_number)
            .map(|e| {
                let c = |s: &str| CString::new(s).unwrap_or_default();
                (e.number(), (c(e.strerror()), c(e.name())))
            })
            .collect()
    })
}

/// What an error means, as a sentence (static storage; never NULL).
/// `err` may be negative (as functions return it) or positive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_strerror(err: c_int) -> *const c_char {
    match texts().get(&err.saturating_abs()) {
        Some((text, _)) => text.as_ptr(),
        None => c"unknown error".as_ptr(),
    }
}

/// The errno's symbolic name, such as "EADDRNOTAVAIL" (static storage;
/// "EUNKNOWN" for a number busbar does not use).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_errno_name(err: c_int) -> *const c_char {
    match texts().get(&err.saturating_abs()) {
        Some((_, name)) => name.as_ptr(),
        None => c"EUNKNOWN".as_ptr(),
    }
}
