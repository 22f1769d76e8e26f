//! One bus: endpoints, bindings, the serial counter, routing and delivery.
//!
//! Every operation either fails with no observable effect or completes
//! entirely; a send is planned (every recipient checked) before any copy is
//! queued, so delivery of one send is atomic.
//!
//! This file owns the [`Bus`] state, endpoint ids (never reused) and the
//! bus's serials (never 0), and opening (O(1)) and closing an endpoint (its
//! queue, bindings, handles and owed replies, plus one bind event per replier
//! binding). Each concern adds its own `impl Bus` in a submodule: `route`
//! (sending: checks and plans), `deliver` (queuing the planned copies),
//! `recv`, `pending` (`ALL_OR_WAIT`), `bind_events` (bindings), `caps`
//! (nodes and handles), `quota`, `synth` (the bus's own messages), `monitor`
//! and `stats` (settings and queries); `endpoints` is the table of
//! endpoints by id.

mod bind_events;
mod caps;
mod counters;
mod deliver;
mod endpoints;
mod monitor;
mod pending;

use pending::PendingIndex;
mod quota;
mod recv;
mod route;
mod stats;
mod synth;

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem;

use crate::binding::BindingIndex;
use crate::endpoint::{Endpoint, SendState};
use crate::message::synthetic;
use crate::node::{Node, NodeId};
use crate::{
    BusId, Credentials, EndpointId, Errno, Hasher, Host, Level, Message, MessageId, Quota,
};

use quota::{Usage, uncharge};
use route::Planned;

/// A `RecvBatch` stops taking messages once it holds this many bytes (it
/// always takes at least one).
pub const RECV_BATCH_BYTES: u64 = 64 << 20;

/// The smallest maximum message size a bus accepts.
pub const MIN_MAX_MESSAGE_SIZE: u32 = 100;

/// Settings a bus starts with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BusConfig {
    pub default_queue_limit: u32,
    pub max_message_size: u32,
    pub absolute_max_message_size: u32,
    pub set_aside_limit: usize,
    pub quota: Quota,
}

#[derive(Debug)]
pub(crate) struct Bus {
    id: BusId,
    hasher: Hasher,
    config: BusConfig,
    endpoints: endpoints::EndpointTable,
    next_endpoint: u32,
    next_serial: u32,
    index: BindingIndex,
    max_message_size: u32,
    bind_events: bool,
    /// Replier unbind events that did not fit, oldest first.
    set_aside: VecDeque<(EndpointId, Message)>,
    /// The set-aside list overflowed; nothing more is kept until it empties.
    tragic: bool,
    /// Endpoints already given an `UnbindEventsLost` since the list went tragic.
    tragic_told: HashSet<EndpointId, Hasher>,
    /// The one `UnbindEventsLost` of this overflow (every listener gets a
    /// copy of the same message, as with KBUS).
    tragic_lost: Option<Message>,
    /// Endpoints that monitor the bus, in the order they asked.
    monitors: Vec<EndpointId>,
    /// Nodes, live or destroyed but still held.
    nodes: HashMap<NodeId, Node, Hasher>,
    next_node: NodeId,
    /// The quota per receiving user, and what each user has charged.
    quota: Quota,
    usage: Usage,
    /// Sends, refusals, synthetic messages (metrics).
    counters: counters::Counters,
    /// Scratch for the quota check: per receiving user, messages, bytes, handles.
    quota_scratch: Vec<(u32, u32, u64, u32)>,
    /// Pending sends, indexed (see `pending`).
    pending: PendingIndex,
    /// The endpoint whose full queue made the last route fail `EAGAIN`.
    blocker: Option<EndpointId>,
    /// Endpoints that got room through another endpoint's operation (a
    /// withdrawn release notice): their waiting sends are retried after it.
    room_freed: Vec<EndpointId>,
    /// The replier (request) or requester (reply) the last route found.
    peer: Option<EndpointId>,
    // Scratch buffers reused by every send.
    plan: Vec<Planned>,
    /// The last message name found valid: a send with the same name (the
    /// same `Arc`, or equal bytes: senders repeat their names) skips the
    /// byte-by-byte check.
    checked_name: Option<std::sync::Arc<str>>,
}

impl Bus {
    pub(crate) fn new(id: BusId, config: BusConfig, hasher: Hasher) -> Self {
        let nodes = HashMap::with_hasher(hasher.clone());
        let usage = Usage {
            on: config.quota != Quota::UNLIMITED,
            map: HashMap::with_hasher(hasher.clone()),
        };
        Self {
            id,
            index: BindingIndex::new(&hasher),
            endpoints: endpoints::EndpointTable::new(hasher.clone()),
            tragic_told: HashSet::with_hasher(hasher.clone()),
            hasher,
            config,
            next_endpoint: 1,
            next_serial: 1,
            max_message_size: config.max_message_size,
            bind_events: false,
            set_aside: VecDeque::new(),
            tragic: false,
            tragic_lost: None,
            pending: PendingIndex::default(),
            blocker: None,
            room_freed: Vec::new(),
            peer: None,
            monitors: Vec::new(),
            nodes,
            next_node: 1,
            quota: config.quota,
            usage,
            counters: counters::Counters::default(),
            quota_scratch: Vec::new(),
            plan: Vec::new(),
            checked_name: None,
        }
    }

    #[inline]
    fn ep(&self, id: EndpointId) -> Result<&Endpoint, Errno> {
        self.endpoints.get(&id).ok_or(Errno::ENOENT)
    }

    #[inline]
    fn ep_mut(&mut self, id: EndpointId) -> Result<&mut Endpoint, Errno> {
        self.endpoints.get_mut(&id).ok_or(Errno::ENOENT)
    }

    pub(crate) fn set_host_token(
        &mut self,
        id: EndpointId,
        token: crate::HostToken,
    ) -> Result<(), Errno> {
        self.ep_mut(id)?.host_token = token;
        Ok(())
    }

    fn take_serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial = match s.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        s
    }

    fn fresh_id(&mut self) -> MessageId {
        MessageId {
            network: 0,
            serial: self.take_serial(),
        }
    }

    pub(crate) fn open<H: Host>(
        &mut self,
        host: &mut H,
        creds: Credentials,
    ) -> Result<EndpointId, Errno> {
        // Ids are not reused until 2^32 - 1 endpoints have been opened on
        // this bus; then the counter wraps, skipping ids still open (there
        // are fewer than 2^32 of them, so this ends).
        let mut n = self.next_endpoint;
        while n == 0 || self.endpoints.contains_key(&EndpointId(n)) {
            n = n.wrapping_add(1);
        }
        let id = EndpointId(n);
        self.next_endpoint = n.wrapping_add(1);
        let ep = Endpoint::new(creds, self.config.default_queue_limit, &self.hasher);
        self.endpoints.insert(id, ep);
        host.log(
            Level::Debug,
            format_args!(
                "bus {} endpoint {id} open (pid {} uid {})",
                self.id, creds.pid, creds.uid
            ),
        );
        Ok(id)
    }

    /// Closes an endpoint in KBUS's order: pending send dropped, outstanding
    /// requests forgotten, queue drained (unread requests answered
    /// `GoneAway`), bindings removed (replier unbinds reported), set-aside
    /// events dropped, owed requests answered `Ignored`.
    pub(crate) fn close<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<(), Errno> {
        let mut ep = self.endpoints.remove(&id).ok_or(Errno::ENOENT)?;
        self.counters.closed_delivered += ep.delivered;
        self.counters.closed_lost += ep.lost_total;
        if ep.monitor {
            self.monitors.retain(|&m| m != id);
        }
        // 1 + 2: the pending send and the reservations go with the endpoint.
        if let SendState::Pending(p) = &ep.send {
            self.pending.remove(id, p);
        }
        // 3: drain the queue.
        for q in mem::take(&mut ep.queue) {
            uncharge(&mut self.usage, &mut ep, &q.msg, q.cause);
            if q.msg.wants_us_to_reply() {
                self.synthetic_reply(host, synthetic::GONE_AWAY, id, q.msg.from, q.msg.id);
            }
        }
        // 4: remove bindings, newest first (in one pass over each name's
        // listener list: closing N bindings of one name is O(N), not O(N²)).
        let newest_first: Vec<_> = ep.bindings.iter().rev().copied().collect();
        for b in self.index.remove_many(&newest_first) {
            if b.replier && self.bind_events {
                self.bind_event_on_close(host, id, &b.pattern);
            }
        }
        // Its nodes are destroyed (holders told), its handles dropped
        // (owners left alone with their node told).
        self.close_handles(host, &ep, id);
        // 5: set-aside events addressed to it.
        if ep.set_aside > 0 {
            self.drop_set_aside(id);
        }
        // 6: owed requests, in id order.
        let mut owed: Vec<_> = ep.owed.drain().collect();
        owed.sort_unstable();
        for (req, requester) in owed {
            self.synthetic_reply(host, synthetic::IGNORED, id, requester, req);
        }
        // Pending sends that waited for it, or were addressed through it,
        // now go elsewhere or fail.
        self.retry_related_to(host, id);
        host.log(
            Level::Debug,
            format_args!("bus {} endpoint {id} closed", self.id),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoHost;
    impl Host for NoHost {
        fn now(&mut self) -> crate::Nanos {
            0
        }
        fn set_alarm(&mut self, _: Option<crate::Nanos>) {}
        fn wake(&mut self, _: BusId, _: EndpointId, _: crate::HostToken, _: bool) {}
        fn log(&mut self, _: Level, _: core::fmt::Arguments<'_>) {}
        fn entropy(&mut self) -> u64 {
            1
        }
    }

    /// After 2^32 - 1 opens the ids wrap, skipping 0 and ids still open,
    /// instead of failing every open forever.
    #[test]
    fn endpoint_ids_wrap_skipping_open_ones() {
        let cfg = BusConfig {
            default_queue_limit: 10,
            max_message_size: 1000,
            absolute_max_message_size: 1000,
            set_aside_limit: 10,
            quota: Quota::UNLIMITED,
        };
        let mut bus = Bus::new(BusId(0), cfg, Hasher::with_seed(1));
        let h = &mut NoHost;
        let first = bus.open(h, Credentials::default()).unwrap();
        assert_eq!(first, EndpointId(1));
        bus.next_endpoint = u32::MAX;
        assert_eq!(
            bus.open(h, Credentials::default()),
            Ok(EndpointId(u32::MAX))
        );
        assert_eq!(bus.open(h, Credentials::default()), Ok(EndpointId(2)));
        bus.close(h, first, ()).unwrap();
        bus.next_endpoint = u32::MAX;
        assert_eq!(bus.open(h, Credentials::default()), Ok(EndpointId(1)));
    }
}
