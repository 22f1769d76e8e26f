//! [`Bus`]: a handle on one bus, however it is reached.

use std::fmt;
use std::sync::Arc;

use busbar_kernel::{BusId, BusStats, EndpointId, Errno, KernelConfig, Operations};

use crate::Endpoint;
use crate::local::LocalKernel;
use crate::transport::{Connector, ViaConnector};

/// A handle on one bus. Cheap to clone; every clone reaches the same bus.
///
/// Make one with [`Bus::in_process`] (the bus kernel linked into this
/// program). Everything else in the API is the same whichever way the bus is
/// reached, so a program changes transport by changing that one line.
#[derive(Clone)]
pub struct Bus {
    connector: Arc<dyn Connector>,
    id: BusId,
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
    pub fn in_process() -> Bus {
        Self::in_process_with(KernelConfig::default()).expect("default config is valid")
    }

    /// A new private in-process kernel with the given limits; the handle is
    /// on bus 0 (`config.buses` buses exist, `EINVAL` if the limits are
    /// inconsistent).
    pub fn in_process_with(config: KernelConfig) -> Result<Bus, Errno> {
        Ok(Bus {
            connector: Arc::new(LocalKernel::new(config)?),
            id: BusId(0),
        })
    }

    fn calls(&self) -> ViaConnector<'_> {
        ViaConnector(&*self.connector)
    }

    /// This bus's id.
    pub fn id(&self) -> BusId {
        self.id
    }

    /// A handle on another bus of the same kernel (errors surface when it is
    /// used: `ENOENT` if there is no such bus).
    pub fn bus(&self, id: BusId) -> Bus {
        Bus {
            connector: self.connector.clone(),
            id,
        }
    }

    /// Creates a new bus in the same kernel.
    pub fn create_bus(&self) -> Result<Bus, Errno> {
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

    /// Statistics of the bus and every endpoint on it.
    pub fn stats(&self) -> Result<BusStats, Errno> {
        self.calls().bus_stats(self.id, EndpointId::BUS, ())
    }
}
