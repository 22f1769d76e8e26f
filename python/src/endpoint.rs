//! `Endpoint`: bind, send, receive; every blocking call releases the GIL.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use busbar::{Endpoint, Errno, HandleId, OrigFrom, Outgoing};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::bus::endpoint_stats;
use crate::errors::{OrRaise, err, timeout, wait_sliced};
use crate::message::{Data, PyMessage, id_of, id_tuple};

/// An endpoint: bind names, send, receive. Close it with `close()` (or use
/// it as a context manager in Python).
#[pyclass(module = "busbar._busbar", name = "Endpoint", frozen)]
pub(crate) struct PyEndpoint {
    /// The endpoint, shared with the calls running on it (none of which
    /// holds this lock while it waits: a thread holding the GIL must never
    /// wait for one that needs it back).
    pub(crate) ep: Mutex<Option<Arc<Endpoint>>>,
}

impl PyEndpoint {
    /// The open endpoint (`BusbarError` EBADF once closed).
    fn get(&self) -> PyResult<Arc<Endpoint>> {
        let g = self.ep.lock().unwrap_or_else(|e| e.into_inner());
        g.clone().ok_or_else(|| err(Errno::EBADF))
    }

    /// Runs `f` on the open endpoint with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Endpoint) -> Result<T, Errno> + Send,
    ) -> PyResult<T> {
        let ep = self.get()?;
        py.detach(|| f(&ep)).or_raise()
    }
}

/// An fd to pass: an `int`, or any object with `fileno()` (a file, a
/// socket). The bus sends a copy; the caller keeps (and closes) its own.
struct FdArg(i32);

impl<'a, 'py> FromPyObject<'a, 'py> for FdArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(fd) = obj.extract::<i32>() {
            return Ok(Self(fd));
        }
        match obj.call_method0("fileno") {
            Ok(fd) => Ok(Self(fd.extract()?)),
            Err(_) => Err(PyTypeError::new_err(
                "fds takes ints or objects with fileno() (files, sockets)",
            )),
        }
    }
}

/// One message of `send_batch`: `(name, data)` or `(name, data, flags)`.
struct BatchItem(String, Data, u32);

impl<'a, 'py> FromPyObject<'a, 'py> for BatchItem {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok((name, data)) = obj.extract::<(String, Data)>() {
            return Ok(Self(name, data, 0));
        }
        let (name, data, flags) = obj.extract::<(String, Data, u32)>().map_err(|_| {
            PyTypeError::new_err("send_batch takes (name, data) or (name, data, flags) tuples")
        })?;
        Ok(Self(name, data, flags))
    }
}

/// The message to send, from the keyword arguments of `send`.
#[allow(clippy::too_many_arguments)]
fn outgoing(
    name: &str,
    data: Data,
    flags: u32,
    to: u32,
    in_reply_to: Option<(u32, u32)>,
    handles: Vec<u64>,
    to_handles: Vec<u64>,
    fds: Vec<FdArg>,
    orig_from: Option<(u32, u32)>,
    final_to: Option<(u32, u32)>,
) -> PyResult<Outgoing> {
    let mut m = if to_handles.is_empty() {
        Outgoing::announcement(name, data.0)
    } else {
        Outgoing::to_handles(to_handles.into_iter().map(HandleId).collect(), name, data.0)
    };
    m.flags = busbar::Flags(flags);
    m.to = busbar::EndpointId(to);
    m.in_reply_to = in_reply_to.map(id_of).unwrap_or_default();
    if let Some((network, local)) = orig_from {
        m.orig_from = OrigFrom { network, local };
    }
    if let Some((network, local)) = final_to {
        m.final_to = OrigFrom { network, local };
    }
    if !handles.is_empty() {
        m = m.carrying(handles.into_iter().map(HandleId).collect());
    }
    if !fds.is_empty() {
        let owned = fds
            .into_iter()
            .map(|FdArg(fd)| {
                if fd < 0 {
                    return Err(err(Errno::EBADF));
                }
                // A copy of the caller's fd (it keeps its own), which must
                // be open before it is borrowed.
                let open = std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok();
                if !open {
                    return Err(err(Errno::EBADF));
                }
                // SAFETY: `fd` is open (checked above) for the call; we
                // only duplicate it.
                let b = unsafe { BorrowedFd::borrow_raw(fd) };
                b.try_clone_to_owned().map_err(|_| err(Errno::EBADF))
            })
            .collect::<PyResult<Vec<_>>>()?;
        m = m.with_fds(owned);
    }
    Ok(m)
}

#[pymethods]
impl PyEndpoint {
    /// The endpoint's id.
    #[getter]
    fn id(&self) -> PyResult<u32> {
        Ok(self.get()?.id().0)
    }

    /// Binds a name or pattern (`$.a.*`, `$.a.%`) as a listener, or as the
    /// replier.
    #[pyo3(signature = (name, replier = false))]
    fn bind(&self, py: Python<'_>, name: &str, replier: bool) -> PyResult<()> {
        self.with(py, |e| {
            if replier {
                e.bind_replier(name)
            } else {
                e.bind(name)
            }
        })
    }

    /// Removes the most recent such binding.
    #[pyo3(signature = (name, replier = false))]
    fn unbind(&self, py: Python<'_>, name: &str, replier: bool) -> PyResult<()> {
        self.with(py, |e| {
            if replier {
                e.unbind_replier(name)
            } else {
                e.unbind(name)
            }
        })
    }

    /// Sends a message; returns its id `(network, serial)`.
    #[pyo3(signature = (name, data = Data(Vec::new()), *, flags = 0, to = 0, in_reply_to = None, handles = Vec::new(), to_handles = Vec::new(), fds = Vec::new(), orig_from = None, final_to = None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        name: &str,
        data: Data,
        flags: u32,
        to: u32,
        in_reply_to: Option<(u32, u32)>,
        handles: Vec<u64>,
        to_handles: Vec<u64>,
        fds: Vec<FdArg>,
        orig_from: Option<(u32, u32)>,
        final_to: Option<(u32, u32)>,
    ) -> PyResult<(u32, u32)> {
        let m = outgoing(
            name,
            data,
            flags,
            to,
            in_reply_to,
            handles,
            to_handles,
            fds,
            orig_from,
            final_to,
        )?;
        self.with(py, |e| e.send(m)).map(id_tuple)
    }

    /// Sends with `ALL_OR_WAIT`, waiting (up to `timeout` seconds; None:
    /// forever) while it is pending for room in every recipient's queue;
    /// returns its id. On timeout, or Ctrl-C, the send is discarded
    /// (`BusTimeoutError`, `KeyboardInterrupt`) unless it finished meanwhile.
    #[pyo3(signature = (name, data = Data(Vec::new()), *, flags = 0, timeout = None))]
    fn send_wait(
        &self,
        py: Python<'_>,
        name: &str,
        data: Data,
        flags: u32,
        timeout: Option<f64>,
    ) -> PyResult<(u32, u32)> {
        let t = self::timeout(timeout)?;
        let m = Outgoing::announcement(name, data.0)
            .with_flags(busbar::Flags(flags | busbar::Flags::ALL_OR_WAIT.0));
        let ep = self.get()?;
        match py.detach(|| ep.send(m)) {
            Err(Errno::EAGAIN) => {}
            other => return other.map(id_tuple).or_raise(),
        }
        let outcome = match wait_sliced(
            py,
            t,
            || !self.closed(),
            |slice| ep.wait_send_outcome(Some(slice)),
        ) {
            Ok(Some(o)) => o,
            stopped => {
                // Timed out, interrupted or failed: give the send up, unless
                // it finished meanwhile.
                let why = || stopped.err().unwrap_or_else(|| err(Errno::ETIMEDOUT));
                if py.detach(|| ep.discard_send()).or_raise()? {
                    return Err(why());
                }
                match py.detach(|| ep.take_send_outcome()).or_raise()? {
                    Some(o) => o,
                    None => return Err(why()),
                }
            }
        };
        outcome.result.map(|()| id_tuple(outcome.id)).or_raise()
    }

    /// Sends several announcements in order as one bus operation (one round
    /// trip through a daemon): `messages` holds `(name, data)` or
    /// `(name, data, flags)` tuples. Returns one result per message, as
    /// `send` would have: its id, or the `BusbarError` it met (returned, not
    /// raised, so the caller sees which went through). Raises only when the
    /// call itself fails (a closed endpoint, a lost daemon, bad arguments).
    fn send_batch(&self, py: Python<'_>, messages: Vec<BatchItem>) -> PyResult<Vec<Py<PyAny>>> {
        let batch = messages
            .into_iter()
            .map(|BatchItem(name, data, flags)| {
                Outgoing::announcement(&name, data.0).with_flags(busbar::Flags(flags))
            })
            .collect();
        let results = self.with(py, |e| e.send_batch(batch))?;
        results
            .into_iter()
            .map(|r| match r {
                Ok(id) => Ok(id_tuple(id).into_pyobject(py)?.into_any().unbind()),
                Err(e) => Ok(err(e).into_value(py).into_any()),
            })
            .collect()
    }

    /// Sends an announcement; returns its id.
    #[pyo3(signature = (name, data = Data(Vec::new())))]
    fn announce(&self, py: Python<'_>, name: &str, data: Data) -> PyResult<(u32, u32)> {
        self.with(py, |e| e.announce(name, data.0)).map(id_tuple)
    }

    /// Sends a request; returns its id (wait for the reply with
    /// `wait_reply`).
    #[pyo3(signature = (name, data = Data(Vec::new())))]
    fn request(&self, py: Python<'_>, name: &str, data: Data) -> PyResult<(u32, u32)> {
        self.with(py, |e| e.request(name, data.0)).map(id_tuple)
    }

    /// Replies to a request this endpoint received as its replier.
    #[pyo3(signature = (request, data = Data(Vec::new())))]
    fn reply(&self, py: Python<'_>, request: &PyMessage, data: Data) -> PyResult<(u32, u32)> {
        let r = request.msg.clone();
        self.with(py, |e| e.reply(&r, data.0)).map(id_tuple)
    }

    /// Sends a stateful request to the replier endpoint of `earlier` (a
    /// reply, or a stateful request).
    #[pyo3(signature = (earlier, name, data = Data(Vec::new())))]
    fn stateful_request(
        &self,
        py: Python<'_>,
        earlier: &PyMessage,
        name: &str,
        data: Data,
    ) -> PyResult<(u32, u32)> {
        if !(earlier.msg.is_reply() || earlier.msg.is_stateful_request()) {
            return Err(PyValueError::new_err(
                "a stateful request follows a reply or a stateful request",
            ));
        }
        let m = Outgoing::stateful_request(&earlier.msg, name, data.0);
        self.with(py, |e| e.send(m)).map(id_tuple)
    }

    /// Sends a request and waits up to `timeout` seconds for its reply
    /// (possibly synthetic: `msg.is_synthetic`). Raises `BusTimeoutError`
    /// on timeout (the reply then arrives in the ordinary queue).
    #[pyo3(signature = (name, data = Data(Vec::new()), timeout = None))]
    fn call(
        &self,
        py: Python<'_>,
        name: &str,
        data: Data,
        timeout: Option<f64>,
    ) -> PyResult<PyMessage> {
        let id = self.request(py, name, data)?;
        self.wait_reply(py, id, timeout)
    }

    /// Waits up to `timeout` seconds for the reply to our request `id`,
    /// leaving other messages queued.
    #[pyo3(signature = (id, timeout = None))]
    fn wait_reply(
        &self,
        py: Python<'_>,
        id: (u32, u32),
        timeout: Option<f64>,
    ) -> PyResult<PyMessage> {
        let t = self::timeout(timeout)?;
        let ep = self.get()?;
        let got = wait_sliced(
            py,
            t,
            || !self.closed(),
            |slice| match ep.wait_reply(id_of(id), Some(slice)) {
                Ok(m) => Ok(Some(m)),
                Err(Errno::ETIMEDOUT) => Ok(None),
                Err(e) => Err(e),
            },
        )?;
        got.map(PyMessage::new).ok_or_else(|| err(Errno::ETIMEDOUT))
    }

    /// The reply to our request `id` if it has arrived, else None.
    fn take_reply(&self, py: Python<'_>, id: (u32, u32)) -> PyResult<Option<PyMessage>> {
        Ok(self
            .with(py, |e| e.take_reply(id_of(id)))?
            .map(PyMessage::new))
    }

    /// The next message, waiting up to `timeout` seconds (None: forever);
    /// None on timeout.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyMessage>> {
        let t = self::timeout(timeout)?;
        let ep = self.get()?;
        Ok(wait_sliced(
            py,
            t,
            || !self.closed(),
            |slice| ep.recv_timeout(Some(slice)),
        )?
        .map(PyMessage::new))
    }

    /// Takes up to `max` queued messages at once (in queue order, without
    /// waiting; an empty list if none): one bus operation however many it
    /// returns, the way to drain a busy queue.
    #[pyo3(signature = (max = 64))]
    fn try_recv_batch(&self, py: Python<'_>, max: u32) -> PyResult<Vec<PyMessage>> {
        Ok(self
            .with(py, |e| e.try_recv_batch(max))?
            .into_iter()
            .map(PyMessage::new)
            .collect())
    }

    /// Up to `max` messages, waiting up to `timeout` seconds (None: forever)
    /// for the first; an empty list on timeout.
    #[pyo3(signature = (max = 64, timeout = None))]
    fn recv_batch(
        &self,
        py: Python<'_>,
        max: u32,
        timeout: Option<f64>,
    ) -> PyResult<Vec<PyMessage>> {
        let t = self::timeout(timeout)?;
        let ep = self.get()?;
        let got = wait_sliced(
            py,
            t,
            || !self.closed(),
            |slice| {
                let v = ep.recv_batch_timeout(max, Some(slice))?;
                Ok((!v.is_empty()).then_some(v))
            },
        )?;
        Ok(got
            .unwrap_or_default()
            .into_iter()
            .map(PyMessage::new)
            .collect())
    }

    /// The next message if one is queued, else None.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<PyMessage>> {
        Ok(self.with(py, |e| e.try_recv())?.map(PyMessage::new))
    }

    /// An fd that `select`/`poll`/asyncio see readable while the endpoint
    /// has something to take. It belongs to the endpoint.
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.get()?.readiness_fd().or_raise()?.as_raw_fd())
    }

    /// Drops the pending (ALL_OR_WAIT) send; True if there was one.
    fn discard_send(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |e| e.discard_send())
    }

    /// How the pending send ended, if it has: `(id, errno)` (errno 0:
    /// delivered), else None.
    fn take_send_outcome(&self, py: Python<'_>) -> PyResult<Option<((u32, u32), i32)>> {
        Ok(self
            .with(py, |e| e.take_send_outcome())?
            .map(|o| (id_tuple(o.id), o.result.err().map_or(0, |e| e.number()))))
    }

    /// Sets the queue limit; returns the previous one.
    fn set_queue_limit(&self, py: Python<'_>, limit: u32) -> PyResult<u32> {
        self.with(py, |e| e.set_queue_limit(limit))
    }

    /// Turns "only once" on or off; returns the previous value.
    fn set_only_once(&self, py: Python<'_>, on: bool) -> PyResult<bool> {
        self.with(py, |e| e.set_only_once(on))
    }

    /// Turns the bus's replier bind events on or off; returns the previous value.
    fn set_replier_bind_events(&self, py: Python<'_>, on: bool) -> PyResult<bool> {
        self.with(py, |e| e.set_replier_bind_events(on))
    }

    /// Turns monitoring on or off; returns the previous value.
    fn set_monitor(&self, py: Python<'_>, on: bool) -> PyResult<bool> {
        self.with(py, |e| e.set_monitor(on))
    }

    /// This endpoint's counters, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with(py, |e| e.stats())?;
        endpoint_stats(py, &s)
    }

    /// Creates a node owned by this endpoint; returns our handle to it.
    fn create_node(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |e| e.create_node()).map(|h| h.0)
    }

    /// Drops one reference to one of our handles.
    fn release_handle(&self, py: Python<'_>, handle: u64) -> PyResult<()> {
        self.with(py, |e| e.release_handle(HandleId(handle)))
    }

    /// Destroys nodes we own, atomically.
    fn destroy_nodes(&self, py: Python<'_>, handles: Vec<u64>) -> PyResult<()> {
        let hs: Vec<HandleId> = handles.into_iter().map(HandleId).collect();
        self.with(py, |e| e.destroy_nodes(&hs))
    }

    /// Closes the endpoint (the bus answers what it owed). Idempotent. A
    /// call still running on it in another thread finishes first (the
    /// endpoint closes when it returns).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let ep = self.ep.lock().unwrap_or_else(|e| e.into_inner()).take();
        match ep.map(Arc::try_unwrap) {
            Some(Ok(e)) => py.detach(|| e.close()).or_raise(),
            // In use elsewhere: closed when that use ends (on drop).
            Some(Err(_)) | None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes the endpoint (exceptions propagate).
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message, waiting for it; the iteration stops when the
    /// endpoint is closed (here or from another thread).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyMessage>> {
        loop {
            match self.recv(py, None) {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => {}
                Err(e) if self.closed() => {
                    let _ = e;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Has it been closed?
    #[getter]
    fn closed(&self) -> bool {
        self.ep.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}
