//! `Message`: a received message, read-only.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use busbar::{Errno, Message, MessageId};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict};

use crate::errors::err;

pub(crate) fn id_tuple(id: MessageId) -> (u32, u32) {
    (id.network, id.serial)
}

pub(crate) fn id_of(t: (u32, u32)) -> MessageId {
    MessageId {
        network: t.0,
        serial: t.1,
    }
}

/// A received message.
#[pyclass(module = "busbar._busbar", name = "Message", frozen)]
pub(crate) struct PyMessage {
    pub(crate) msg: Message,
    /// `data` as a Python object, made on first use.
    data: PyOnceLock<Py<PyBytes>>,
}

impl PyMessage {
    /// A copy of each fd the message carried (all or none).
    fn fd_copies(&self) -> PyResult<Vec<OwnedFd>> {
        self.msg
            .fds()
            .iter()
            .map(|f| f.try_clone().map_err(|_| err(Errno::EMFILE)))
            .collect()
    }

    pub(crate) fn new(msg: Message) -> Self {
        Self {
            msg,
            data: PyOnceLock::new(),
        }
    }
}

#[pymethods]
impl PyMessage {
    /// Its name.
    #[getter]
    fn name(&self) -> &str {
        &self.msg.name
    }

    /// Its data, as `bytes` (copied out of the message once, on first use;
    /// the same object after that).
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.data
            .get_or_init(py, || PyBytes::new(py, &self.msg.data).unbind())
            .bind(py)
            .clone()
    }

    /// Its id `(network, serial)`.
    #[getter]
    fn id(&self) -> (u32, u32) {
        id_tuple(self.msg.id)
    }

    /// For a reply: the request's id.
    #[getter]
    fn in_reply_to(&self) -> (u32, u32) {
        id_tuple(self.msg.in_reply_to)
    }

    /// The endpoint it was addressed to (0: none).
    #[getter]
    fn to(&self) -> u32 {
        self.msg.to.0
    }

    /// The endpoint that sent it (0: the bus).
    #[getter]
    fn from_(&self) -> u32 {
        self.msg.from.0
    }

    /// `(network, local)` of its original sender across bridges.
    #[getter]
    fn orig_from(&self) -> (u32, u32) {
        (self.msg.orig_from.network, self.msg.orig_from.local)
    }

    /// `(network, local)` of its final target across bridges.
    #[getter]
    fn final_to(&self) -> (u32, u32) {
        (self.msg.final_to.network, self.msg.final_to.local)
    }

    /// Its flags, as `busbar.Flags` (an `enum.IntFlag`).
    #[getter]
    fn flags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static FLAGS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let flags = FLAGS.get_or_try_init(py, || {
            py.import("busbar")?.getattr("Flags").map(Bound::unbind)
        })?;
        flags.bind(py).call1((self.msg.flags.0,))
    }

    /// `(pid, uid, gid)` of its sender, as the bus established them.
    #[getter]
    fn creds(&self) -> (u32, u32, u32) {
        (self.msg.creds.pid, self.msg.creds.uid, self.msg.creds.gid)
    }

    /// Messages this endpoint lost just before this one (queue full).
    #[getter]
    fn lost(&self) -> u32 {
        self.msg.lost
    }

    /// Made by the bus itself (`$.KBUS.Replier.GoneAway`, ...).
    #[getter]
    fn is_synthetic(&self) -> bool {
        self.msg.is_synthetic()
    }

    /// A request.
    #[getter]
    fn is_request(&self) -> bool {
        self.msg.is_request()
    }

    /// A reply.
    #[getter]
    fn is_reply(&self) -> bool {
        self.msg.is_reply()
    }

    /// A request this endpoint must answer.
    #[getter]
    fn wants_us_to_reply(&self) -> bool {
        self.msg.wants_us_to_reply()
    }

    /// The handles it carried (our ids for them).
    #[getter]
    fn handles(&self) -> Vec<u64> {
        self.msg.handles.iter().map(|h| h.0).collect()
    }

    /// For a message to one of our nodes: our handle to it (0 otherwise).
    #[getter]
    fn destination(&self) -> u64 {
        self.msg.destination.0
    }

    /// Copies of the fds it carried, as ints the caller owns (and closes).
    fn take_fds(&self) -> PyResult<Vec<i32>> {
        Ok(self
            .fd_copies()?
            .into_iter()
            .map(IntoRawFd::into_raw_fd)
            .collect())
    }

    /// Copies of the fds it carried, as file objects the caller owns
    /// (`open(fd, mode, **kwargs)` for each).
    #[pyo3(signature = (mode = "rb", **kwargs))]
    fn take_files<'py>(
        &self,
        py: Python<'py>,
        mode: &str,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let open = py.import("builtins")?.getattr("open")?;
        let mut files = Vec::new();
        // On an error, the copies not yet opened close as they drop.
        for fd in self.fd_copies()? {
            files.push(open.call((fd.as_raw_fd(), mode), kwargs)?);
            // The file object owns it now.
            let _ = fd.into_raw_fd();
        }
        Ok(files)
    }

    fn __repr__(&self) -> String {
        format!(
            "Message(name={:?}, id={:?}, from_={}, to={}, in_reply_to={:?}, flags={:#x}, data={} bytes)",
            &*self.msg.name,
            id_tuple(self.msg.id),
            self.msg.from.0,
            self.msg.to.0,
            id_tuple(self.msg.in_reply_to),
            self.msg.flags.0,
            self.msg.data.len()
        )
    }
}

/// Message data passed in from Python: `bytes` and `bytearray` are read in
/// place; any other object with the buffer protocol (`memoryview`,
/// `array.array`, numpy arrays, ...) goes through a `memoryview`. `str`,
/// `int` and everything else is a `TypeError` that says what was given.
pub(crate) struct Data(pub(crate) Vec<u8>);

impl<'a, 'py> FromPyObject<'a, 'py> for Data {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Self(b.as_bytes().to_vec()));
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            return Ok(Self(b.to_vec()));
        }
        let py = obj.py();
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((obj,))
            .map_err(|_| {
                let kind = obj
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string());
                PyTypeError::new_err(format!(
                    "message data must be bytes-like (bytes, bytearray, memoryview), not {kind}"
                ))
            })?;
        let bytes = view.call_method0("tobytes")?;
        Ok(Self(bytes.cast::<PyBytes>()?.as_bytes().to_vec()))
    }
}
