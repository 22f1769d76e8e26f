//! Statistics: what an operator needs to see who fills whom.

use std::sync::Arc;

use crate::{BusId, EndpointId, MessageId};

/// Counters and levels of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// The endpoint.
    pub id: EndpointId,
    /// Owner's process id (as established by the bus).
    pub pid: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Messages waiting in the queue.
    pub queued: u32,
    /// Replier bind events set aside for this endpoint (waiting for room).
    pub set_aside: u32,
    /// The queue limit (queued messages plus reserved reply slots).
    pub queue_limit: u32,
    /// Messages this endpoint lost because its queue was full.
    pub lost: u64,
    /// Messages sent successfully.
    pub sent: u64,
    /// Messages taken from the queue.
    pub received: u64,
    /// Requests sent whose reply has not arrived yet (each reserves a queue slot).
    pub outstanding_requests: u32,
    /// Requests this endpoint took as replier and has not answered yet.
    pub owed_replies: u32,
    /// Bindings held.
    pub bindings: u32,
    /// "Only once" is on.
    pub only_once: bool,
    /// The id of the send waiting for room (`ALL_OR_WAIT`), if any.
    pub pending_send: Option<MessageId>,
    /// Bytes (name plus data) of the queued messages.
    pub queued_bytes: u64,
    /// Handles held.
    pub handles: u32,
    /// Live nodes owned.
    pub nodes: u32,
    /// The id of the last message this endpoint sent (or, in KBUS
    /// compatibility, tried to send); `{0,0}` before the first.
    pub last_sent: MessageId,
    /// KBUS compatibility is on ([`crate::OpCode::SetKbusCompat`]).
    pub kbus_compat: bool,
}

/// How many bindings one [`crate::OpCode::ListBindings`] returns at most
/// (so one answer stays small whatever the bus holds).
pub const LIST_BINDINGS_PAGE: usize = 256;

/// One binding, as [`crate::OpCode::ListBindings`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingInfo {
    /// The binding's id (increasing in bind order; the cursor of the next
    /// page).
    pub id: u64,
    /// The endpoint that bound.
    pub endpoint: EndpointId,
    /// Its owner's process id.
    pub pid: u32,
    /// Its owner's user id.
    pub uid: u32,
    /// Replier (true) or listener (false).
    pub replier: bool,
    /// The name or pattern as bound.
    pub name: std::sync::Arc<str>,
}

/// A bus's settings, as [`crate::OpCode::BusInfo`] reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusInfo {
    /// The bus.
    pub bus: BusId,
    /// Buses in the kernel (ids `0..buses`).
    pub buses: u32,
    /// Maximum message size (name plus data bytes; KBUS-compatible
    /// endpoints measure KBUS's entire form).
    pub max_message_size: u32,
    /// The largest maximum message size the bus may be set to.
    pub absolute_max_message_size: u32,
    /// Replier bind events are on.
    pub replier_bind_events: bool,
    /// Connections the host serves (a daemon's clients; 0 in-process).
    pub connections: u32,
    /// File descriptors the host holds outside the queues (a daemon's
    /// unclaimed and unsent fds; 0 in-process).
    pub fds_held: u64,
}

/// What the host (the daemon, or nothing in-process) says about itself in
/// [`BusInfo`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Connections served.
    pub connections: u32,
    /// File descriptors held outside the queues.
    pub fds_held: u64,
}

/// A count per synthetic message name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameCount {
    /// The name (`$.KBUS.Replier.GoneAway`, ...).
    pub name: Arc<str>,
    /// How many.
    pub count: u64,
}

/// A count per errno.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrnoCount {
    /// The errno number.
    pub errno: i32,
    /// How many.
    pub count: u64,
}

/// A bus's counters since it was created (they only grow).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusCounters {
    /// Messages sent (accepted by the bus; a pending `ALL_OR_WAIT` send
    /// counts when it is delivered).
    pub sent: u64,
    /// Copies queued for receivers (monitors and synthetic messages
    /// included).
    pub delivered: u64,
    /// Copies lost: a listener's (or monitor's) queue was full.
    pub lost: u64,
    /// Synthetic messages made by the bus, by name.
    pub synthetic: Vec<NameCount>,
    /// Sends refused, by errno (`EBUSY`, `EDQUOT`, `EADDRNOTAVAIL`, ...).
    pub refused: Vec<ErrnoCount>,
}

/// Counters of one bus, with every endpoint's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// The bus.
    pub bus: BusId,
    /// Open endpoints.
    pub endpoints: u32,
    /// Bindings (listener and replier).
    pub bindings: u32,
    /// Replier bindings.
    pub replier_bindings: u32,
    /// The serial the next message will get.
    pub next_serial: u32,
    /// Maximum message size (name plus data bytes).
    pub max_message_size: u32,
    /// Replier bind events are on.
    pub replier_bind_events: bool,
    /// Unbind events waiting in the set-aside list.
    pub set_aside: u32,
    /// Each open endpoint, by id.
    pub endpoint_stats: Vec<EndpointStats>,
    /// The bus's counters.
    pub counters: BusCounters,
}

/// Limits on what one sending user may charge to one receiving user,
/// bus-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Messages queued for the user's endpoints.
    pub messages: u32,
    /// Bytes (name plus data) of those messages.
    pub bytes: u64,
    /// Handles held by the user's endpoints.
    pub handles: u32,
    /// File descriptors carried by messages queued for the user's endpoints.
    pub fds: u32,
}

impl Quota {
    /// No limits: the bus does no quota accounting at all (the default of
    /// an in-process kernel, where there is one user).
    pub const UNLIMITED: Self = Self {
        messages: u32::MAX,
        bytes: u64::MAX,
        handles: u32::MAX,
        fds: u32::MAX,
    };
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            messages: 65_536,
            bytes: 256 << 20,
            handles: 65_536,
            fds: 4_096,
        }
    }
}

/// What one sending user has charged to one receiving user ("who fills
/// whom"). The quota applies to each such pair, so a user flooding another
/// exhausts only its own share of that user's resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserUsage {
    /// The receiving user.
    pub uid: u32,
    /// The user whose sends charged it.
    pub sender_uid: u32,
    /// Messages queued for it.
    pub messages: u32,
    /// Their bytes.
    pub bytes: u64,
    /// Handles it holds.
    pub handles: u32,
    /// File descriptors in its queued messages.
    pub fds: u32,
}

/// The bus's quota and every user's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaStats {
    /// The limits, per receiving user.
    pub quota: Quota,
    /// Every (receiving user, sending user) pair with something charged,
    /// by uid then sender uid.
    pub users: Vec<UserUsage>,
}
