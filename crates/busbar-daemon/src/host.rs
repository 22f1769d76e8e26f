//! The daemon's host: real monotonic time, the alarm as the reactor's epoll
//! timeout, wake-ups collected for the reactor to turn into `Wake` frames,
//! logs through `tracing`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher as _, RandomState};
use std::time::Instant;

use busbar_kernel::{BusId, EndpointId, Host, Level, Nanos};

#[derive(Debug)]
pub(crate) struct DaemonHost {
    pub epoch: Instant,
    pub alarm: Option<Nanos>,
    /// Endpoints that got something since the reactor last looked.
    pub woken: Vec<(BusId, EndpointId)>,
    /// The readiness level of every endpoint, as last reported.
    pub levels: HashMap<(BusId, EndpointId), bool, foldhash::fast::RandomState>,
}

impl DaemonHost {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            alarm: None,
            woken: Vec::new(),
            levels: HashMap::default(),
        }
    }

    pub(crate) fn now_ns(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    pub(crate) fn readable(&self, bus: BusId, ep: EndpointId) -> bool {
        self.levels.get(&(bus, ep)).copied().unwrap_or(false)
    }
}

impl Host for DaemonHost {
    fn now(&mut self) -> Nanos {
        self.now_ns()
    }

    fn set_alarm(&mut self, at: Option<Nanos>) {
        self.alarm = at;
    }

    fn wake(&mut self, bus: BusId, endpoint: EndpointId, readable: bool) {
        self.levels.insert((bus, endpoint), readable);
        if readable {
            self.woken.push((bus, endpoint));
        }
    }

    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        match level {
            Level::Error => tracing::error!(target: "busbar::kernel", "{message}"),
            Level::Warn => tracing::warn!(target: "busbar::kernel", "{message}"),
            Level::Info => tracing::info!(target: "busbar::kernel", "{message}"),
            Level::Debug => tracing::debug!(target: "busbar::kernel", "{message}"),
        }
    }

    fn entropy(&mut self) -> u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(self.epoch.elapsed().as_nanos());
        h.finish()
    }
}
