//! `Bus`: a bus in-process or through a daemon; opens endpoints.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use busbar::Bus;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::endpoint::PyEndpoint;
use crate::errors::OrRaise;
use crate::message::id_tuple;

/// A bus: in-process (`Bus.in_process()`) or one bus of a busbar daemon
/// (`Bus.connect(path=None)`).
#[pyclass(module = "busbar._busbar", name = "Bus", frozen)]
pub(crate) struct PyBus {
    bus: Bus,
}

#[pymethods]
impl PyBus {
    /// A new in-process bus (no daemon needed).
    #[staticmethod]
    fn in_process() -> Self {
        Self {
            bus: Bus::in_process(),
        }
    }

    /// Connects to a busbar daemon at `path`, or the default socket
    /// ($BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock,
    /// /tmp/busbar-<uid>/bus.sock). Blocks for the handshake.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn connect(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        let bus = py
            .detach(|| match path {
                Some(p) => Bus::connect(p),
                None => Bus::connect_default(),
            })
            .or_raise()?;
        Ok(Self { bus })
    }

    /// This bus's id.
    #[getter]
    fn id(&self) -> u32 {
        self.bus.id().0
    }

    /// Another bus of the same kernel or daemon (errors surface on use).
    fn bus(&self, id: u32) -> Self {
        Self {
            bus: self.bus.bus(busbar::BusId(id)),
        }
    }

    /// Creates a new bus in the same kernel (privileged through a daemon).
    fn create_bus(&self, py: Python<'_>) -> PyResult<Self> {
        let bus = py.detach(|| self.bus.create_bus()).or_raise()?;
        Ok(Self { bus })
    }

    /// Opens an endpoint on this bus.
    fn open(&self, py: Python<'_>) -> PyResult<PyEndpoint> {
        let ep = py.detach(|| self.bus.open()).or_raise()?;
        Ok(PyEndpoint {
            ep: Mutex::new(Some(Arc::new(ep))),
        })
    }

    /// The endpoint a request to `name` would reach now, or None.
    fn find_replier(&self, name: &str) -> PyResult<Option<u32>> {
        Ok(self.bus.find_replier(name).or_raise()?.map(|e| e.0))
    }

    /// Every binding on the bus, oldest first, as `Binding`s.
    fn names(&self, py: Python<'_>) -> PyResult<Vec<PyBinding>> {
        let list = py.detach(|| self.bus.list_bindings()).or_raise()?;
        Ok(list
            .into_iter()
            .map(|b| PyBinding {
                id: b.id,
                endpoint: b.endpoint.0,
                pid: b.pid,
                uid: b.uid,
                replier: b.replier,
                name: b.name.to_string(),
            })
            .collect())
    }

    /// Sets the maximum message size (name plus data bytes); returns the
    /// previous one.
    fn set_max_message_size(&self, size: u32) -> PyResult<u32> {
        self.bus.set_max_message_size(size).or_raise()
    }

    /// The bus's statistics, as a dict: one dict per endpoint under
    /// "endpoints", and the bus's counters under "counters" (sent,
    /// delivered, lost, synthetic by name, refused by errno name).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py.detach(|| self.bus.stats()).or_raise()?;
        let d = PyDict::new(py);
        d.set_item("bus", s.bus.0)?;
        d.set_item("endpoint_count", s.endpoints)?;
        d.set_item("bindings", s.bindings)?;
        d.set_item("replier_bindings", s.replier_bindings)?;
        d.set_item("next_serial", s.next_serial)?;
        d.set_item("max_message_size", s.max_message_size)?;
        d.set_item("replier_bind_events", s.replier_bind_events)?;
        let eps = s
            .endpoint_stats
            .iter()
            .map(|e| endpoint_stats(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("endpoints", eps)?;
        let c = &s.counters;
        let counters = PyDict::new(py);
        counters.set_item("sent", c.sent)?;
        counters.set_item("delivered", c.delivered)?;
        counters.set_item("lost", c.lost)?;
        let synthetic = PyDict::new(py);
        for n in &c.synthetic {
            synthetic.set_item(&*n.name, n.count)?;
        }
        counters.set_item("synthetic", synthetic)?;
        let refused = PyDict::new(py);
        for e in &c.refused {
            let name = busbar::Errno::from_number(e.errno)
                .map_or_else(|| e.errno.to_string(), |x| x.name().to_string());
            refused.set_item(name, e.count)?;
        }
        counters.set_item("refused", refused)?;
        d.set_item("counters", counters)?;
        Ok(d)
    }
}

pub(crate) fn endpoint_stats<'py>(
    py: Python<'py>,
    s: &busbar::EndpointStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", s.id.0)?;
    d.set_item("pid", s.pid)?;
    d.set_item("uid", s.uid)?;
    d.set_item("queued", s.queued)?;
    d.set_item("queue_limit", s.queue_limit)?;
    d.set_item("lost", s.lost)?;
    d.set_item("sent", s.sent)?;
    d.set_item("received", s.received)?;
    d.set_item("outstanding_requests", s.outstanding_requests)?;
    d.set_item("owed_replies", s.owed_replies)?;
    d.set_item("bindings", s.bindings)?;
    d.set_item("only_once", s.only_once)?;
    d.set_item("pending_send", s.pending_send.map(id_tuple))?;
    d.set_item("handles", s.handles)?;
    d.set_item("nodes", s.nodes)?;
    d.set_item("last_sent", id_tuple(s.last_sent))?;
    Ok(d)
}

/// One binding on a bus: who listens to, or replies for, which name.
#[pyclass(module = "busbar._busbar", name = "Binding", frozen, get_all)]
pub(crate) struct PyBinding {
    /// The binding's id (bindings are listed in id order, oldest first).
    id: u64,
    /// The endpoint that holds it.
    endpoint: u32,
    /// The pid of the process that opened the endpoint.
    pid: u32,
    /// The uid of the process that opened the endpoint.
    uid: u32,
    /// A replier binding (else a listener).
    replier: bool,
    /// The name or pattern.
    name: String,
}

#[pymethods]
impl PyBinding {
    fn __repr__(&self) -> String {
        format!(
            "Binding(id={}, endpoint={}, pid={}, uid={}, replier={}, name={:?})",
            self.id,
            self.endpoint,
            self.pid,
            self.uid,
            if self.replier { "True" } else { "False" },
            self.name
        )
    }
}
