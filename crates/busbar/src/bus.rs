//! [`Bus`]: a handle on one bus, however it is reached.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use busbar_kernel::{
    BindingInfo, BusId, BusInfo, BusStats, EndpointId, Errno, KernelConfig, Operations, Quota,
    QuotaStats,
};

use crate::Endpoint;
use crate::local::LocalKernel;
use crate::remote::RemoteConnector;
use crate::transport::{Connector, ViaConnector};
pub use busbar_sys::default_socket_path;

/// A handle on one bus. Cheap to clone; every clone reaches the same bus.
///
/// Make one with [`Bus::in_process`] (the bus kernel linked into this
/// program). Everything else in the API is the same whichever way the bus is
/// reached, so a program changes transport by changing that one line.
#[derive(Clone)]
pub struct Bus {
    connector: Arc<dyn Connector>,
    id: BusId,
    /// Something that must live as long as any handle on this bus (a test's
    /// private daemon).
    keepalive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// A new private in-process kernel with one bus (bus 0), default limits.
    pub fn in_process() -> Self {
        Self::in_process_with(KernelConfig::default()).expect("default config is valid")
    }

    /// A new private in-process kernel with the given limits; the handle is
    /// on bus 0 (`config.buses` buses exist, `EINVAL` if the limits are
    /// inconsistent).
    pub fn in_process_with(config: KernelConfig) -> Result<Self, Errno> {
        Ok(Self {
            connector: Arc::new(LocalKernel::new(config)?),
            id: BusId(0),
            keepalive: None,
        })
    }

    fn calls(&self) -> ViaConnector<'_> {
        ViaConnector(&*self.connector)
    }

    /// Bus 0 of the daemon listening at `path` (see `busbar daemon`).
    /// `ENOENT` if there is no socket there, `ECONNREFUSED` if nothing
    /// answers on it.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, Errno> {
        Ok(Self {
            connector: Arc::new(RemoteConnector::connect(path.as_ref())?),
            id: BusId(0),
            keepalive: None,
        })
    }

    /// Bus 0 of the daemon at the default socket: `$BUSBAR_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/busbar/bus.sock`, else `/tmp/busbar-<uid>/bus.sock`.
    pub fn connect_default() -> Result<Self, Errno> {
        Self::connect(default_socket_path())
    }

    /// Keeps `guard` alive as long as any handle on this bus or its
    /// endpoints exists (for tests that run a private daemon per bus).
    #[doc(hidden)]
    pub fn with_keepalive(mut self, guard: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.keepalive = Some(guard);
        self
    }

    /// This bus's id.
    pub fn id(&self) -> BusId {
        self.id
    }

    /// A handle on another bus of the same kernel (errors surface when it is
    /// used: `ENOENT` if there is no such bus).
    pub fn bus(&self, id: BusId) -> Self {
        Self {
            connector: self.connector.clone(),
            id,
            keepalive: self.keepalive.clone(),
        }
    }

    /// Creates a new bus in the same kernel.
    pub fn create_bus(&self) -> Result<Self, Errno> {
        let id = self.calls().create_bus(self.id, EndpointId::BUS, ())?;
        Ok(self.bus(id))
    }

    /// Opens a new endpoint on this bus.
    pub fn open(&self) -> Result<Endpoint, Errno> {
        let link = self.connector.open(self.id)?;
        Ok(Endpoint::new(self.clone(), link))
    }

    /// Sets the bus's maximum message size (name plus data bytes, at least
    /// [`busbar_kernel::MIN_MAX_MESSAGE_SIZE`]); returns the previous value.
    pub fn set_max_message_size(&self, bytes: u32) -> Result<u32, Errno> {
        self.calls()
            .set_max_message_size(self.id, EndpointId::BUS, bytes)
    }

    /// The endpoint a request to `name` would reach now (wildcards resolved).
    pub fn find_replier(&self, name: &str) -> Result<Option<EndpointId>, Errno> {
        self.calls()
            .find_replier(self.id, EndpointId::BUS, name.into())
    }

    /// Sets the bus's quota per receiving user: what the messages queued for
    /// one user's endpoints (and the handles they hold) may add up to.
    /// Sends that would go over fail whole with `EDQUOT`. Returns the
    /// previous quota.
    pub fn set_quota(&self, quota: Quota) -> Result<Quota, Errno> {
        self.calls().set_quota(self.id, EndpointId::BUS, quota)
    }

    /// The bus's quota and what each receiving user has charged.
    pub fn quota_stats(&self) -> Result<QuotaStats, Errno> {
        self.calls().quota_stats(self.id, EndpointId::BUS, ())
    }

    /// Every binding on the bus, oldest first, with its endpoint's owner
    /// (asked for [`busbar_kernel::LIST_BINDINGS_PAGE`] at a time: on a
    /// busy bus the list is a sequence of snapshots, not one).
    pub fn list_bindings(&self) -> Result<Vec<BindingInfo>, Errno> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |b: &BindingInfo| b.id);
            let page = self
                .calls()
                .list_bindings(self.id, EndpointId::BUS, after)?;
            let done = page.len() < busbar_kernel::LIST_BINDINGS_PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// The replier bound to exactly this pattern string, without wildcard
    /// resolution (KBUS's `REPLIER` query); [`Self::find_replier`] says who
    /// a request would reach.
    pub fn pattern_replier(&self, pattern: &str) -> Result<Option<EndpointId>, Errno> {
        self.calls()
            .pattern_replier(self.id, EndpointId::BUS, pattern.into())
    }

    /// The bus's settings and the number of buses (`ENOENT` if this bus
    /// does not exist). Cheap: no per-endpoint data.
    pub fn info(&self) -> Result<BusInfo, Errno> {
        self.calls().bus_info(self.id, EndpointId::BUS, ())
    }

    /// Statistics of the bus and every endpoint on it.
    pub fn stats(&self) -> Result<BusStats, Errno> {
        self.calls().bus_stats(self.id, EndpointId::BUS, ())
    }
}
