//! Host operations: the only way the kernel reaches its environment (the LKL
//! idea). A host supplies monotonic time, one alarm, wake-ups, logging and
//! entropy; the kernel never blocks, sleeps, spawns or makes a syscall.
//!
//! Contract:
//! - [`Host::now`] is monotonic (never goes backwards) and in nanoseconds.
//! - [`Host::set_alarm`] keeps at most one alarm; each call replaces the
//!   previous one (`None` disarms it). When the alarm time is reached the host
//!   calls [`crate::Kernel::handle_alarm`] (promptly, or at the latest on the
//!   next call into the kernel).
//! - [`Host::wake`] is called, with the bus lock held, whenever something a
//!   waiter on that endpoint may be waiting for happened (a message was
//!   queued, a pending send finished) with `readable == true`, and whenever the
//!   endpoint stopped being readable (`readable == false`). It must not call
//!   back into the kernel. It carries the endpoint's [`HostToken`], if the
//!   host gave it one.
//! - [`Host::log`] must not call back into the kernel.

use core::fmt;

use crate::{BusId, EndpointId};

/// Monotonic time in nanoseconds since a host-chosen epoch.
pub type Nanos = u64;

/// A value a host attaches to an endpoint
/// ([`crate::Kernel::set_host_token`]) and gets back with each of that
/// endpoint's wake-ups: e.g. the index of its waiter in the host's own table,
/// so a wake-up needs no lookup. [`HostToken::NONE`] until set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostToken(pub u64);

impl HostToken {
    /// No token set.
    pub const NONE: Self = Self(u64::MAX);
}

impl Default for HostToken {
    fn default() -> Self {
        Self::NONE
    }
}

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something is broken.
    Error,
    /// Something is suspicious.
    Warn,
    /// Lifecycle events.
    Info,
    /// Per-operation detail.
    Debug,
}

/// The operations a kernel needs from whoever hosts it.
pub trait Host {
    /// Monotonic time now.
    fn now(&mut self) -> Nanos;
    /// Arms the one alarm at `at`, replacing any earlier one; `None` disarms.
    fn set_alarm(&mut self, at: Option<Nanos>);
    /// Something happened on `endpoint` (whose token is `token`) that its
    /// waiter may want to see; `readable` is whether it now has something
    /// to take (a message or a send outcome).
    fn wake(&mut self, bus: BusId, endpoint: EndpointId, token: HostToken, readable: bool);
    /// A log line.
    fn log(&mut self, level: Level, message: fmt::Arguments<'_>);
    /// 64 random bits (seeds the kernel's hash tables).
    fn entropy(&mut self) -> u64;
    /// What the host says about itself in `BusInfo` (a daemon: its
    /// connections and the fds it holds). Nothing by default.
    fn stats(&self) -> crate::HostStats {
        crate::HostStats::default()
    }
}
