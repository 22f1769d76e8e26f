//! One endpoint's state: its queue, its reservations and debts, its send state.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::binding::BindingId;
use crate::node::{HandleRef, NodeId};
use crate::{
    Credentials, EndpointId, HandleId, Hasher, HostToken, Message, MessageId, Nanos, Outgoing,
    SendOutcome,
};

/// A message in a queue, with the binding that put it there (`None` for
/// requester copies of replies, synthetic replies and bind-event dumps).
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub msg: Message,
    pub cause: Option<BindingId>,
}

/// A send waiting for room (`ALL_OR_WAIT` that got `EAGAIN`).
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub msg: Outgoing,
    pub id: MessageId,
    pub deadline: Option<Nanos>,
    /// Bus-wide order of going pending (oldest retried first).
    pub seq: u64,
    /// The endpoint whose full queue it waits for.
    pub blocked_on: EndpointId,
    /// A request's replier, a reply's requester (when known).
    pub peer: Option<EndpointId>,
    /// The sending user, charged for the payload while it waits.
    pub uid: u32,
}

/// Where an endpoint's send stands. Only one send can be pending at a time.
#[derive(Clone, Debug, Default)]
pub(crate) enum SendState {
    /// Nothing pending.
    #[default]
    Idle,
    /// A send waits for room; retried whenever room may have appeared.
    Pending(Pending),
    /// A pending send finished; the outcome waits to be taken.
    Done(SendOutcome),
}

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub creds: Credentials,
    /// Messages waiting to be received, front first.
    pub queue: VecDeque<Queued>,
    /// Limit on `queue.len() + outstanding.len()` (at least 1).
    pub limit: u32,
    pub only_once: bool,
    /// Gets a copy of everything queued on the bus.
    pub monitor: bool,
    /// Requests we sent whose reply has not been queued yet: each reserves a slot.
    pub outstanding: HashSet<MessageId, Hasher>,
    /// Requests we received as replier (and took) that we still owe a reply, by requester.
    /// Requests this endpoint must answer, by (request id, requester): two
    /// requesters can never share a debt, even with equal (forwarded) ids.
    pub owed: HashSet<(MessageId, EndpointId), Hasher>,
    /// Our bindings, oldest first.
    pub bindings: Vec<BindingId>,
    /// Copies lost since the last delivered message (reported on the next one).
    pub lost_unreported: u32,
    pub lost_total: u64,
    /// Copies queued for it, ever (the bus's `delivered` counter).
    pub delivered: u64,
    pub sent: u64,
    pub received: u64,
    /// Bind events set aside for us on the bus's list.
    pub set_aside: u32,
    pub send: SendState,
    /// Copies planned for us by the send being routed (scratch, 0 between sends).
    pub planned: u32,
    /// Copies planned for us by the send being routed, lost ones included
    /// (scratch, for "only once").
    pub copies: u32,
    /// The readiness last reported to the host.
    pub readable: bool,
    /// Our handles.
    pub handles: HashMap<HandleId, HandleRef, Hasher>,
    /// Our handle to each node we hold one to.
    pub by_node: HashMap<NodeId, HandleId, Hasher>,
    /// The next handle id (from 1, never reused).
    pub next_handle: u64,
    /// Bytes (name plus data) of the queued messages.
    pub queued_bytes: u64,
    /// Fds held by queued monitor copies (checked against the fd quota).
    pub monitor_fds: u64,
    /// The id of the last send (in KBUS compatibility, tried send).
    pub last_sent: MessageId,
    /// KBUS's observable rules apply to this endpoint's sends.
    pub kbus_compat: bool,
    /// What the host asked to get back with this endpoint's wake-ups.
    pub host_token: HostToken,
}

impl Endpoint {
    pub(crate) fn new(creds: Credentials, limit: u32, hasher: &Hasher) -> Self {
        Self {
            creds,
            queue: VecDeque::new(),
            limit,
            only_once: false,
            monitor: false,
            outstanding: HashSet::with_hasher(hasher.clone()),
            owed: HashSet::with_hasher(hasher.clone()),
            bindings: Vec::new(),
            lost_unreported: 0,
            lost_total: 0,
            delivered: 0,
            sent: 0,
            received: 0,
            set_aside: 0,
            send: SendState::Idle,
            planned: 0,
            copies: 0,
            readable: false,
            handles: HashMap::with_hasher(hasher.clone()),
            by_node: HashMap::with_hasher(hasher.clone()),
            next_handle: 1,
            queued_bytes: 0,
            monitor_fds: 0,
            last_sent: MessageId::default(),
            kbus_compat: false,
            host_token: HostToken::NONE,
        }
    }

    /// Slots in use: queued messages, reserved reply slots, planned copies.
    pub(crate) fn used(&self) -> usize {
        self.queue.len() + self.outstanding.len() + self.planned as usize
    }

    /// Is there room for one more message?
    pub(crate) fn has_room(&self) -> bool {
        self.used() < self.limit as usize
    }

    /// Should a waiter see this endpoint as readable?
    pub(crate) fn is_readable(&self) -> bool {
        !self.queue.is_empty() || self.set_aside > 0 || matches!(self.send, SendState::Done(_))
    }

    pub(crate) fn pending_id(&self) -> Option<MessageId> {
        match &self.send {
            SendState::Pending(p) => Some(p.id),
            _ => None,
        }
    }
}
