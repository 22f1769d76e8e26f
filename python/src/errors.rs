//! Errors: busbar's errnos as Python exceptions (all `OSError`s), and the
//! sliced, signal-checking wait every blocking call uses.

use std::time::{Duration, Instant};

use busbar::Errno;
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _busbar,
    BusbarError,
    PyOSError,
    "A busbar operation failed: `errno` is the Linux errno number (as busbar's Rust Errno), `strerror` what it means."
);
create_exception!(
    _busbar,
    NoReplierError,
    BusbarError,
    "EADDRNOTAVAIL: no replier is bound to the name (or the requester has gone)."
);
create_exception!(
    _busbar,
    AddressInUseError,
    BusbarError,
    "EADDRINUSE: the name already has a replier."
);
create_exception!(
    _busbar,
    QueueFullError,
    BusbarError,
    "EBUSY: a recipient's queue is full (or EAGAIN: the send is pending)."
);
create_exception!(
    _busbar,
    InvalidNameError,
    BusbarError,
    "EBADMSG or ENAMETOOLONG: not a valid message name or pattern."
);
create_exception!(
    _busbar,
    NotAllowedError,
    BusbarError,
    "ECONNREFUSED or EPERM: this endpoint may not do that (answer that request, use that power)."
);
create_exception!(
    _busbar,
    BusTimeoutError,
    BusbarError,
    "ETIMEDOUT: nothing came in time."
);
create_exception!(
    _busbar,
    ConnectionLostError,
    BusbarError,
    "ECONNRESET, ESHUTDOWN or ECONNREFUSED from the daemon: it is gone."
);

/// The exception for an errno: a subclass of `BusbarError` (itself an
/// `OSError`) with `errno` and `strerror` set.
pub(crate) fn err(e: Errno) -> PyErr {
    let args = (e.number(), format!("{}: {}", e.name(), e.strerror()));
    match e {
        Errno::EADDRNOTAVAIL => NoReplierError::new_err(args),
        Errno::EADDRINUSE => AddressInUseError::new_err(args),
        Errno::EBUSY | Errno::EAGAIN => QueueFullError::new_err(args),
        Errno::EBADMSG | Errno::ENAMETOOLONG => InvalidNameError::new_err(args),
        Errno::ECONNREFUSED | Errno::EPERM => NotAllowedError::new_err(args),
        Errno::ETIMEDOUT => BusTimeoutError::new_err(args),
        Errno::ECONNRESET | Errno::ESHUTDOWN => ConnectionLostError::new_err(args),
        _ => BusbarError::new_err(args),
    }
}

pub(crate) trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Errno> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(err)
    }
}

/// A timeout in seconds: None, `inf` or anything past 10^18 s waits forever; a negative number or
/// NaN is a `ValueError`.
pub(crate) fn timeout(secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        // Longer than a Duration holds (`inf` too): forever.
        Some(s) if s > 1e18 => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "timeout must be a number of seconds >= 0, or None to wait forever (got {s})"
            ))
        }),
    }
}

/// Waits by slices of at most 100 ms with the GIL released, checking
/// between slices for signals (Ctrl-C raises `KeyboardInterrupt`) and that
/// the endpoint is still open (`close()` from another thread ends the wait
/// with `EBADF`): `step(slice)` returns `Some` when done; `None` once
/// `total` has passed.
pub(crate) fn wait_sliced<T: Send>(
    py: Python<'_>,
    total: Option<Duration>,
    still_open: impl Fn() -> bool,
    mut step: impl FnMut(Duration) -> Result<Option<T>, Errno> + Send,
) -> PyResult<Option<T>> {
    const SLICE: Duration = Duration::from_millis(100);
    let deadline = total.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let slice = left.map_or(SLICE, |l| l.min(SLICE));
        if let Some(v) = py.detach(|| step(slice)).or_raise()? {
            return Ok(Some(v));
        }
        if left.is_some_and(|l| l <= slice) {
            return Ok(None);
        }
        py.check_signals()?;
        if !still_open() {
            return Err(err(Errno::EBADF));
        }
    }
}
