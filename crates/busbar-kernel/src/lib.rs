//! # busbar-kernel: the bus kernel
//!
//! A fully deterministic implementation of busbar's message model (KBUS's
//! named messages, listeners, repliers, the reply guarantee, one total order,
//! explicit full-queue behaviour). It contains no sockets, threads, clock or
//! syscalls and no global state: it is driven from outside, and reaches its
//! environment only through the [`Host`] trait (monotonic time, one alarm,
//! wake-ups, logging, entropy). Many kernels, each with many buses, can live
//! in one process.
//!
//! ## Layers
//!
//! - [`name`]: name and pattern grammar.
//! - `binding`: the binding index (routing without scanning bindings).
//! - `endpoint`: one endpoint's queue, reservations and debts.
//! - `bus`: routing, delivery, synthetic messages, close.
//! - [`ops`]: **the operation table**. Dispatch ([`Kernel::dispatch`]), the
//!   typed calls ([`Operations`]) and the wire codes ([`OpCode`]) all derive
//!   from it. The kernel implements each typed call directly (no
//!   [`Request`] or [`Response`] built): a host that links the kernel in
//!   calls `send` and `recv` that way.
//! - [`Kernel`]: buses plus a host. A host may give each endpoint a
//!   [`HostToken`], which comes back with the endpoint's wake-ups (so the
//!   host finds its waiter by index).
//!
//! ## Example
//!
//! ```
//! use busbar_kernel::*;
//!
//! # #[derive(Debug, Default)] struct NoHost;
//! # impl Host for NoHost {
//! #     fn now(&mut self) -> Nanos { 0 }
//! #     fn set_alarm(&mut self, _: Option<Nanos>) {}
//! #     fn wake(&mut self, _: BusId, _: EndpointId, _: HostToken, _: bool) {}
//! #     fn log(&mut self, _: Level, _: core::fmt::Arguments<'_>) {}
//! #     fn entropy(&mut self) -> u64 { 7 }
//! # }
//! let mut k = Kernel::new(NoHost, KernelConfig::default()).unwrap();
//! let bus = BusId(0);
//! let a = k.open(bus, EndpointId::BUS, Credentials::default()).unwrap();
//! let b = k.open(bus, EndpointId::BUS, Credentials::default()).unwrap();
//! k.bind(bus, b, BindArgs { name: "$.sensors.*".into(), replier: false }).unwrap();
//! let msg = Outgoing::announcement("$.sensors.camera", &b"frame"[..]);
//! let id = k.send(bus, a, SendArgs { message: msg, deadline: None }).unwrap();
//! let got = k.recv(bus, b, ()).unwrap().unwrap();
//! assert_eq!((got.id, &*got.name, got.from), (id, "$.sensors.camera", a));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binding;
mod bus;
mod endpoint;
mod errno;
mod host;
mod kernel;
mod message;
pub mod name;
mod node;
pub mod ops;
mod stats;

pub use bus::MIN_MAX_MESSAGE_SIZE;
pub use errno::Errno;
pub use host::{Host, HostToken, Level, Nanos};
pub use kernel::{Kernel, KernelConfig};
pub use message::{
    Attachment, BusId, Capabilities, Credentials, EndpointId, Flags, HandleId, Header,
    MAX_FDS_PER_MESSAGE, MAX_HANDLES_PER_MESSAGE, Message, MessageId, OrigFrom, Outgoing,
    ReplierBindEvent, kbus_entire_len, synthetic,
};
pub use name::MAX_NAME_LEN;
pub use ops::{
    BindArgs, OpCode, Operations, Request, Response, Scope, SendArgs, SendOutcome, SendResult,
};
pub use stats::{
    BindingInfo, BusCounters, BusInfo, BusStats, EndpointStats, ErrnoCount, HostStats,
    LIST_BINDINGS_PAGE, NameCount, Quota, QuotaStats, UserUsage,
};

/// The hasher of every table in the kernel, seeded from host entropy (so a
/// daemon's tables resist crafted names, and a simulation stays reproducible).
pub(crate) type Hasher = foldhash::fast::FixedState;
