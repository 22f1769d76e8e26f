//! The kernel: a set of buses driven through the operation table.

use crate::bus::{Bus, BusConfig, MIN_MAX_MESSAGE_SIZE};
use crate::{
    BusId, EndpointId, Errno, Host, HostToken, Level, Nanos, Operations, Request, Response,
};

/// Limits a kernel starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Buses created at start (ids 0..buses). More can be created later.
    pub buses: u32,
    /// Queue limit of a new endpoint (at least 1).
    pub default_queue_limit: u32,
    /// Maximum message size (name plus data bytes) of a new bus.
    pub max_message_size: u32,
    /// The largest maximum message size a bus may be set to.
    pub absolute_max_message_size: u32,
    /// Capacity of each bus's set-aside list for replier unbind events.
    pub set_aside_limit: usize,
    /// The most buses a kernel will hold.
    pub max_buses: u32,
    /// Each new bus's quota per (receiving user, sending user) pair.
    /// Default [`crate::Quota::UNLIMITED`]: no accounting (one user in
    /// process); the daemon sets [`crate::Quota::default`].
    pub quota: crate::Quota,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            buses: 1,
            default_queue_limit: 100,
            max_message_size: 64 << 20,
            absolute_max_message_size: 64 << 20,
            set_aside_limit: 1000,
            max_buses: 256,
            quota: crate::Quota::UNLIMITED,
        }
    }
}

impl KernelConfig {
    /// Checks the limits make sense (`EINVAL` otherwise).
    pub fn validate(&self) -> Result<(), Errno> {
        let ok = self.default_queue_limit >= 1
            && self.buses <= self.max_buses
            && self.max_message_size >= MIN_MAX_MESSAGE_SIZE
            && self.max_message_size <= self.absolute_max_message_size;
        if ok { Ok(()) } else { Err(Errno::EINVAL) }
    }
}

/// A bus kernel: sans-IO, deterministic given its host. Drive it with
/// [`Kernel::dispatch`] (or the typed calls of [`Operations`]) and, when the
/// host's alarm fires, [`Kernel::handle_alarm`].
#[derive(Debug)]
pub struct Kernel<H: Host> {
    host: H,
    config: KernelConfig,
    hasher: crate::Hasher,
    buses: Vec<Bus>,
    alarm: Option<Nanos>,
}

macro_rules! define_dispatch {
    ($( $(#[$doc:meta])* $code:literal => $name:ident($args:ty) -> $reply:ty, $scope:ident, $method:ident, [$($err:ident),*], [$($prop:ident),*]; )*) => {
        impl<H: Host> Kernel<H> {
            /// Performs one operation for `endpoint` on `bus` (the endpoint is
            /// ignored by kernel- and bus-scoped operations).
            pub fn dispatch(&mut self, bus: BusId, endpoint: EndpointId, request: Request) -> Result<Response, Errno> {
                match request {
                    $( Request::$name(args) => Operations::$method(self, bus, endpoint, args).map(Response::$name), )*
                }
            }
        }

        /// Every typed call runs its operation directly (no [`Request`] or
        /// [`Response`] is built): the same code [`Kernel::dispatch`] runs.
        impl<H: Host> Operations for Kernel<H> {
            fn call(
                &mut self,
                bus: BusId,
                endpoint: EndpointId,
                request: Request,
            ) -> Result<Response, Errno> {
                self.dispatch(bus, endpoint, request)
            }

            $(
                #[inline]
                fn $method(&mut self, bus: BusId, endpoint: EndpointId, args: $args) -> Result<$reply, Errno> {
                    let result = define_dispatch!(@call self, $scope, $method, bus, endpoint, args);
                    self.after_operation(bus, endpoint);
                    result
                }
            )*
        }
    };
    (@call $self:ident, kernel, $method:ident, $bus:ident, $ep:ident, $args:ident) => {
        { let _ = ($bus, $ep); $self.$method($args) }
    };
    (@call $self:ident, bus, bus_info, $bus:ident, $ep:ident, $args:ident) => {
        { let _ = $ep; let buses = $self.bus_count(); $self.with_bus($bus, |b, h| b.bus_info(h, buses, $args)) }
    };
    (@call $self:ident, bus, $method:ident, $bus:ident, $ep:ident, $args:ident) => {
        { let _ = $ep; $self.with_bus($bus, |b, h| b.$method(h, $args)) }
    };
    (@call $self:ident, endpoint, $method:ident, $bus:ident, $ep:ident, $args:ident) => {
        $self.with_bus($bus, |b, h| b.$method(h, $ep, $args))
    };
}

crate::operation_table!(define_dispatch);

impl<H: Host> Kernel<H> {
    /// A kernel with `config.buses` buses (ids from 0).
    pub fn new(mut host: H, config: KernelConfig) -> Result<Self, Errno> {
        config.validate()?;
        let hasher = crate::Hasher::with_seed(host.entropy());
        let mut k = Self {
            host,
            config,
            hasher,
            buses: Vec::new(),
            alarm: None,
        };
        for _ in 0..config.buses {
            k.create_bus(())?;
        }
        Ok(k)
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host, mutably.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// The limits this kernel was made with.
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    /// How many buses exist (ids `0..n`).
    pub fn bus_count(&self) -> u32 {
        self.buses.len() as u32
    }

    /// Gives `endpoint` a token that comes back with each of its wake-ups
    /// ([`Host::wake`]). `ENOENT` if there is no such endpoint.
    pub fn set_host_token(
        &mut self,
        bus: BusId,
        endpoint: EndpointId,
        token: HostToken,
    ) -> Result<(), Errno> {
        self.with_bus(bus, |b, _| b.set_host_token(endpoint, token))
    }

    /// The host's alarm fired: expire pending sends whose deadline passed.
    pub fn handle_alarm(&mut self) {
        let now = self.host.now();
        for b in &mut self.buses {
            b.expire(&mut self.host, now);
        }
        self.alarm = None;
        self.rearm();
    }

    fn with_bus<T>(
        &mut self,
        bus: BusId,
        f: impl FnOnce(&mut Bus, &mut H) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let b = self.buses.get_mut(bus.0 as usize).ok_or(Errno::ENOENT)?;
        f(b, &mut self.host)
    }

    /// Only an endpoint's own operations make room in its queue or change
    /// its bindings (besides a release notice withdrawn in passing, which
    /// the bus records), so only the sends waiting for those are retried.
    fn after_operation(&mut self, bus: BusId, endpoint: EndpointId) {
        if let Some(b) = self.buses.get_mut(bus.0 as usize) {
            let had_pending = b.has_pending();
            b.retry_after_operation(&mut self.host, endpoint);
            if had_pending || self.alarm.is_some() {
                self.rearm();
            }
        }
    }

    fn rearm(&mut self) {
        let next = self.buses.iter().filter_map(Bus::next_deadline).min();
        if next != self.alarm {
            self.alarm = next;
            self.host.set_alarm(next);
        }
    }

    fn create_bus(&mut self, _: ()) -> Result<BusId, Errno> {
        if self.buses.len() as u32 >= self.config.max_buses {
            return Err(Errno::ENOMEM);
        }
        let id = BusId(self.buses.len() as u32);
        let cfg = BusConfig {
            default_queue_limit: self.config.default_queue_limit,
            max_message_size: self.config.max_message_size,
            absolute_max_message_size: self.config.absolute_max_message_size,
            set_aside_limit: self.config.set_aside_limit,
            quota: self.config.quota,
        };
        self.buses.push(Bus::new(id, cfg, self.hasher.clone()));
        self.host.log(Level::Info, format_args!("bus {id} created"));
        Ok(id)
    }
}
