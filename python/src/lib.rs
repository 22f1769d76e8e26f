//! `busbar._busbar`: the native half of the Python package. It wraps the
//! Rust `busbar` crate directly; `busbar/__init__.py` adds the Pythonic
//! layer (flags, the asyncio endpoint). Every blocking call releases the
//! GIL and waits in slices of 100 ms, checking for signals between them,
//! so Ctrl-C interrupts it.

mod bus;
mod endpoint;
mod errors;
mod message;

use busbar::Errno;
use pyo3::prelude::*;

use errors::*;

/// What an errno means (busbar's sentence).
#[pyfunction]
fn strerror(errno: i32) -> String {
    Errno::from_number(errno.saturating_abs())
        .map_or_else(|| "unknown error".into(), |e| e.strerror().into())
}

#[pymodule]
fn _busbar(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<bus::PyBus>()?;
    m.add_class::<bus::PyBinding>()?;
    m.add_class::<endpoint::PyEndpoint>()?;
    m.add_class::<message::PyMessage>()?;
    m.add_function(wrap_pyfunction!(strerror, m)?)?;
    m.add("BusbarError", py.get_type::<BusbarError>())?;
    m.add("NoReplierError", py.get_type::<NoReplierError>())?;
    m.add("AddressInUseError", py.get_type::<AddressInUseError>())?;
    m.add("QueueFullError", py.get_type::<QueueFullError>())?;
    m.add("InvalidNameError", py.get_type::<InvalidNameError>())?;
    m.add("NotAllowedError", py.get_type::<NotAllowedError>())?;
    m.add("BusTimeoutError", py.get_type::<BusTimeoutError>())?;
    m.add("ConnectionLostError", py.get_type::<ConnectionLostError>())?;
    Ok(())
}
