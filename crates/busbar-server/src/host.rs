//! The server's kernel host: time is whatever the driver last said (`now`
//! of each `handle_*` call), the alarm is reported through
//! [`crate::Server::poll_timeout`], wake-ups are collected for the session
//! to turn into parked-wait answers or `Wake` frames. Logs go to a sink the
//! driver chooses.

use std::collections::HashMap;
use std::fmt;

use busbar_kernel::{BusId, EndpointId, Host, HostToken, Level, Nanos};

/// Where the kernel's and the session's log lines go.
pub type LogSink = Box<dyn FnMut(Level, fmt::Arguments<'_>) + Send>;

pub(crate) struct ServerHost {
    pub now: Nanos,
    pub alarm: Option<Nanos>,
    /// Endpoints that got something since the session last looked.
    pub woken: Vec<(BusId, EndpointId)>,
    /// The readiness level of every endpoint, as last reported.
    pub levels: HashMap<(BusId, EndpointId), bool, foldhash::fast::RandomState>,
    pub entropy: u64,
    pub log: LogSink,
    /// Connections and fds held, for `BusInfo` (kept by the session).
    pub stats: busbar_kernel::HostStats,
}

impl fmt::Debug for ServerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHost")
            .field("now", &self.now)
            .field("alarm", &self.alarm)
            .finish_non_exhaustive()
    }
}

impl ServerHost {
    pub(crate) fn readable(&self, bus: BusId, ep: EndpointId) -> bool {
        self.levels.get(&(bus, ep)).copied().unwrap_or(false)
    }
}

impl Host for ServerHost {
    fn now(&mut self) -> Nanos {
        self.now
    }

    fn set_alarm(&mut self, at: Option<Nanos>) {
        self.alarm = at;
    }

    fn wake(&mut self, bus: BusId, endpoint: EndpointId, _: HostToken, readable: bool) {
        self.levels.insert((bus, endpoint), readable);
        if readable {
            self.woken.push((bus, endpoint));
        }
    }

    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        (self.log)(level, message);
    }

    fn stats(&self) -> busbar_kernel::HostStats {
        self.stats
    }

    fn entropy(&mut self) -> u64 {
        // A fresh seed per call, still a pure function of the driver's seed.
        self.entropy = self
            .entropy
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.entropy
    }
}
