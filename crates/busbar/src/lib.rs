//! # busbar
//!
//! A message bus for Linux with kernel-grade guarantees: named messages
//! (`$.sensors.camera.frame`), any number of listeners, exactly one replier
//! per name, a reply that is guaranteed (the bus answers for a replier that
//! goes away), one total order that every receiver sees, and explicit, never
//! silent, behaviour when a queue is full.
//!
//! ```
//! use std::time::Duration;
//! use busbar::Bus;
//!
//! let bus = Bus::in_process();
//! let replier = bus.open()?;
//! replier.bind_replier("$.clock.time")?;
//! let listener = bus.open()?;
//! listener.bind("$.clock.*")?;
//!
//! let client = bus.open()?;
//! let request = client.request("$.clock.time", "what time is it?")?;
//!
//! let req = replier.recv()?;
//! assert!(req.wants_us_to_reply());
//! replier.reply(&req, "noon")?;
//!
//! let reply = client.wait_reply(request, Some(Duration::from_secs(5)))?;
//! assert_eq!(&reply.data[..], b"noon");
//! // The listener saw the request and then the reply, in bus order.
//! assert_eq!(listener.try_recv()?.unwrap().id, request);
//! assert_eq!(listener.try_recv()?.unwrap().in_reply_to, request);
//! # Ok::<(), busbar::Errno>(())
//! ```
//!
//! The rules are in `docs/semantics.md`; errors are [`Errno`] values with
//! stable numbers ([`Errno::number`]) and texts ([`Errno::strerror`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "async")]
pub mod async_endpoint;
mod bus;
mod endpoint;
mod local;
mod names;
mod payload;
mod remote;
mod transport;

#[cfg(feature = "tokio")]
pub use async_endpoint::TokioReactor;
#[cfg(feature = "async")]
pub use async_endpoint::{AsyncEndpoint, Messages, Reactor};
pub use bus::{Bus, default_socket_path};
pub use endpoint::{Endpoint, ServeError};
pub use payload::{
    DEFAULT_MEMFD_THRESHOLD, PayloadBuffer, is_sealed_memfd, memfd_threshold, set_memfd_threshold,
};

pub use busbar_kernel::name;
pub use busbar_kernel::{
    Attachment, BindingInfo, BusCounters, BusId, BusInfo, BusStats, Credentials, EndpointId,
    EndpointStats, Errno, ErrnoCount, Flags, HandleId, Header, KernelConfig, LIST_BINDINGS_PAGE,
    MAX_FDS_PER_MESSAGE, MAX_NAME_LEN, MIN_MAX_MESSAGE_SIZE, Message, MessageId, NameCount,
    OrigFrom, Outgoing, Quota, QuotaStats, ReplierBindEvent, SendOutcome, SendResult, UserUsage,
    kbus_entire_len, synthetic,
};
pub use bytes::Bytes;

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
