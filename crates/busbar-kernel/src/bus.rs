//! One bus: endpoints, bindings, the serial counter, routing and delivery.
//!
//! Every operation either fails with no observable effect or completes
//! entirely; a send is planned (every recipient checked) before any copy is
//! queued, so delivery of one send is atomic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem;
use std::sync::Arc;

use bytes::Bytes;

use crate::binding::{Binding, BindingId, BindingIndex, Target};
use crate::endpoint::{Endpoint, Pending, Queued, SendState};
use crate::message::synthetic;
use crate::name::{PatternKind, check_message_name, parse_pattern, pattern_matches};
use crate::node::{HandleRef, Node, NodeId};
use crate::{
    BindArgs, BusId, BusStats, Credentials, EndpointId, EndpointStats, Errno, Flags, HandleId,
    Hasher, Header, Host, Level, Message, MessageId, Nanos, Outgoing, Quota, QuotaStats,
    ReplierBindEvent, SendArgs, SendOutcome, UserUsage,
};

/// What each receiving user has charged, by uid.
/// What each (receiving user, sending user) pair has charged. Kept only
/// while a quota is set (`on`): with the unlimited quota the hot path does
/// no accounting at all, and setting a quota recounts from the queues.
#[derive(Debug)]
struct Usage {
    on: bool,
    map: HashMap<(u32, u32), UserUsage, Hasher>,
}

/// Bytes a message is charged for.
fn size_of_message(m: &Message) -> u64 {
    (m.name.len() + m.data.len()) as u64
}

/// File descriptors a message carries.
fn fd_count(m: &Message) -> u32 {
    m.fds.as_ref().map_or(0, |a| a.count)
}

/// Applies `f` to what `by` has charged to `uid`. Entries stay when they
/// drop to zero (there are few user pairs, and a message per message would
/// otherwise insert and remove one): `quota_stats` leaves them out.
#[inline]
fn with_usage(usage: &mut Usage, uid: u32, by: u32, f: impl FnOnce(&mut UserUsage)) {
    if !usage.on {
        return;
    }
    if let Some(u) = usage.map.get_mut(&(uid, by)) {
        return f(u);
    }
    f(usage.map.entry((uid, by)).or_insert(UserUsage {
        uid,
        sender_uid: by,
        ..Default::default()
    }));
}

fn is_empty_usage(u: &UserUsage) -> bool {
    (u.messages, u.bytes, u.handles, u.fds) == (0, 0, 0, 0)
}

/// Charges a queued message to its receiver's user, on its sender's
/// account (the bus's own messages are not charged: they must always fit).
fn charge(usage: &mut Usage, ep: &mut Endpoint, m: &Message) {
    let size = size_of_message(m);
    ep.queued_bytes += size;
    if !m.is_synthetic() {
        let fds = fd_count(m);
        with_usage(usage, ep.creds.uid, m.creds.uid, |u| {
            u.messages += 1;
            u.bytes += size;
            u.fds += fds;
        });
    }
}

/// Refunds a message that left its receiver's queue.
fn uncharge(usage: &mut Usage, ep: &mut Endpoint, m: &Message) {
    let size = size_of_message(m);
    ep.queued_bytes -= size;
    if !m.is_synthetic() {
        let fds = fd_count(m);
        with_usage(usage, ep.creds.uid, m.creds.uid, |u| {
            u.messages -= 1;
            u.bytes -= size;
            u.fds -= fds;
        });
    }
}

/// Charges (`+1`) or refunds (`-1`) one handle held by `uid`, on `by`'s account.
fn charge_handle(usage: &mut Usage, uid: u32, by: u32, delta: i32) {
    with_usage(usage, uid, by, |u| {
        u.handles = u.handles.saturating_add_signed(delta)
    });
}

/// A `RecvBatch` stops taking messages once it holds this many bytes (it
/// always takes at least one).
pub const RECV_BATCH_BYTES: u64 = 64 << 20;

/// The smallest maximum message size a bus accepts.
pub const MIN_MAX_MESSAGE_SIZE: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The requester's copy of a reply (uses its reserved slot).
    Requester,
    /// The replier's copy of a request (`WANT_YOU_TO_REPLY`).
    Replier,
    /// A listener's copy.
    Listener,
    /// A listener copy that did not fit: counted as lost.
    Lost,
    /// The owner's copy of a message sent to one of its nodes.
    Node(NodeId),
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    ep: EndpointId,
    role: Role,
    cause: Option<BindingId>,
    /// The receiving endpoint's user (charged for the copy).
    uid: u32,
}

/// What to do when a listener's queue is full.
#[derive(Clone, Copy, Debug)]
enum WhenFull {
    /// Skip it, counting the loss.
    Skip,
    /// Fail the whole send with this error.
    Fail(Errno),
}

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
    endpoints: HashMap<EndpointId, Endpoint, Hasher>,
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
    /// Endpoints that monitor the bus, in the order they asked.
    monitors: Vec<EndpointId>,
    /// Nodes, live or destroyed but still held.
    nodes: HashMap<NodeId, Node, Hasher>,
    next_node: NodeId,
    /// The quota per receiving user, and what each user has charged.
    quota: Quota,
    usage: Usage,
    /// Scratch for the quota check: per receiving user, messages, bytes, handles.
    quota_scratch: Vec<(u32, u32, u64, u32)>,
    /// Endpoints with a pending send, in the order they went pending.
    pending: VecDeque<EndpointId>,
    // Scratch buffers reused by every send.
    plan: Vec<Planned>,
    matched: Vec<Target>,
}

fn bus_creds() -> Credentials {
    Credentials::default()
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
            endpoints: HashMap::with_hasher(hasher.clone()),
            tragic_told: HashSet::with_hasher(hasher.clone()),
            hasher,
            config,
            next_endpoint: 1,
            next_serial: 1,
            max_message_size: config.max_message_size,
            bind_events: false,
            set_aside: VecDeque::new(),
            tragic: false,
            pending: VecDeque::new(),
            monitors: Vec::new(),
            nodes,
            next_node: 1,
            quota: config.quota,
            usage,
            quota_scratch: Vec::new(),
            plan: Vec::new(),
            matched: Vec::new(),
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

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    // ----- endpoints -------------------------------------------------------

    pub(crate) fn open<H: Host>(
        &mut self,
        host: &mut H,
        creds: Credentials,
    ) -> Result<EndpointId, Errno> {
        let id = EndpointId(self.next_endpoint);
        self.next_endpoint = self.next_endpoint.checked_add(1).ok_or(Errno::ENOMEM)?;
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
        if ep.monitor {
            self.monitors.retain(|&m| m != id);
        }
        // 1 + 2: the pending send and the reservations go with the endpoint.
        if matches!(ep.send, SendState::Pending(_)) {
            self.pending.retain(|&e| e != id);
        }
        // 3: drain the queue.
        for q in mem::take(&mut ep.queue) {
            uncharge(&mut self.usage, &mut ep, &q.msg);
            if q.msg.wants_us_to_reply() {
                self.synthetic_reply(host, synthetic::GONE_AWAY, id, q.msg.from, q.msg.id);
            }
        }
        // 4: remove bindings, newest first.
        for &bid in ep.bindings.iter().rev() {
            if let Some(b) = self.index.remove(bid)
                && b.replier
                && self.bind_events
            {
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
        host.log(
            Level::Debug,
            format_args!("bus {} endpoint {id} closed", self.id),
        );
        Ok(())
    }

    // ----- bindings --------------------------------------------------------

    pub(crate) fn bind<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        args: BindArgs,
    ) -> Result<(), Errno> {
        self.ep(id)?;
        let p = parse_pattern(&args.name)?;
        let (kind, prefix) = (p.kind, p.prefix);
        if args.replier {
            if &*args.name == synthetic::REPLIER_BIND_EVENT {
                return Err(Errno::EBADMSG);
            }
            if self.index.replier_for_pattern(kind, prefix).is_some() {
                return Err(Errno::EADDRINUSE);
            }
            if self.bind_events {
                self.broadcast_bind_event(host, true, id, &args.name)?;
            }
        }
        let prefix: Arc<str> = if kind == PatternKind::Exact {
            args.name.clone()
        } else {
            Arc::from(prefix)
        };
        let bid = self.index.insert(Binding {
            endpoint: id,
            pattern: args.name.clone(),
            prefix,
            kind,
            replier: args.replier,
        });
        self.ep_mut(id)?.bindings.push(bid);
        host.log(
            Level::Debug,
            format_args!(
                "bus {} endpoint {id} bound {} as {}",
                self.id,
                args.name,
                if args.replier { "replier" } else { "listener" }
            ),
        );
        Ok(())
    }

    pub(crate) fn unbind<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        args: BindArgs,
    ) -> Result<(), Errno> {
        let ep = self.ep(id)?;
        parse_pattern(&args.name)?;
        let pos = ep
            .bindings
            .iter()
            .rposition(|&bid| {
                self.index
                    .get(bid)
                    .is_some_and(|b| b.replier == args.replier && b.pattern == args.name)
            })
            .ok_or(Errno::EINVAL)?;
        if args.replier && self.bind_events {
            self.broadcast_bind_event(host, false, id, &args.name)?;
        }
        let ep = self.ep_mut(id)?;
        let bid = ep.bindings.remove(pos);
        self.index.remove(bid);
        self.remove_caused_by(host, id, bid);
        if !args.replier && pattern_matches(&args.name, synthetic::REPLIER_BIND_EVENT) {
            let still = self.ep(id)?.bindings.iter().any(|&b| {
                self.index.get(b).is_some_and(|b| {
                    !b.replier && pattern_matches(&b.pattern, synthetic::REPLIER_BIND_EVENT)
                })
            });
            if !still {
                self.drop_set_aside(id);
            }
        }
        self.feed_set_aside(host, id, false);
        self.update_readiness(host, id);
        host.log(
            Level::Debug,
            format_args!("bus {} endpoint {id} unbound {}", self.id, args.name),
        );
        Ok(())
    }

    /// Removes the queued messages `bid` put in `id`'s queue; unread requests
    /// among them are answered `$.KBUS.Replier.Unbound`.
    fn remove_caused_by<H: Host>(&mut self, host: &mut H, id: EndpointId, bid: BindingId) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if !ep.queue.iter().any(|q| q.cause == Some(bid)) {
            return;
        }
        let mut removed = Vec::new();
        let old = mem::take(&mut ep.queue);
        for q in old {
            if q.cause == Some(bid) {
                // A loss report must not vanish with the message carrying it.
                ep.lost_unreported += q.msg.lost;
                uncharge(&mut self.usage, ep, &q.msg);
                removed.push(q.msg);
            } else {
                ep.queue.push_back(q);
            }
        }
        for m in removed {
            if m.wants_us_to_reply() {
                self.synthetic_reply(host, synthetic::UNBOUND, id, m.from, m.id);
            }
        }
    }

    // ----- replier bind events --------------------------------------------

    fn bind_event_message(&mut self, is_bind: bool, binder: EndpointId, pattern: &str) -> Message {
        let data = ReplierBindEvent {
            is_bind,
            binder,
            name: pattern.to_owned(),
        }
        .encode();
        self.synthetic_message(synthetic::REPLIER_BIND_EVENT, data, Flags::ALL_OR_FAIL)
    }

    fn synthetic_message(&mut self, name: &str, data: Bytes, flags: Flags) -> Message {
        self.synthetic(
            name,
            data,
            flags,
            MessageId::NONE,
            EndpointId::BUS,
            EndpointId::BUS,
        )
    }

    fn synthetic(
        &mut self,
        name: &str,
        data: Bytes,
        flags: Flags,
        in_reply_to: MessageId,
        to: EndpointId,
        from: EndpointId,
    ) -> Message {
        let header = Header {
            id: self.fresh_id(),
            in_reply_to,
            to,
            from,
            orig_from: Default::default(),
            final_to: Default::default(),
            name: Arc::from(name),
            data,
            creds: bus_creds(),
            fds: None,
        };
        Message::new(header, flags.with(Flags::SYNTHETIC))
    }

    /// Sends a bind event to its listeners, all or nothing: `EAGAIN` if any is full.
    fn broadcast_bind_event<H: Host>(
        &mut self,
        host: &mut H,
        is_bind: bool,
        binder: EndpointId,
        pattern: &str,
    ) -> Result<(), Errno> {
        let mut plan = mem::take(&mut self.plan);
        plan.clear();
        let r = self.plan_listeners(
            synthetic::REPLIER_BIND_EVENT,
            WhenFull::Fail(Errno::EAGAIN),
            &mut plan,
        );
        self.reset_plan(&plan);
        if r.is_ok() && !plan.is_empty() {
            let msg = self.bind_event_message(is_bind, binder, pattern);
            self.deliver(host, msg, &plan, false, &[]);
        }
        self.plan = plan;
        r
    }

    /// A replier unbind during close cannot fail: copies that do not fit go
    /// to the set-aside list (bounded; on overflow `UnbindEventsLost`).
    fn bind_event_on_close<H: Host>(&mut self, host: &mut H, binder: EndpointId, pattern: &str) {
        let mut plan = mem::take(&mut self.plan);
        plan.clear();
        let _ = self.plan_listeners(synthetic::REPLIER_BIND_EVENT, WhenFull::Skip, &mut plan);
        self.reset_plan(&plan);
        if !plan.is_empty() {
            let msg = self.bind_event_message(false, binder, pattern);
            self.copy_to_monitors(host, &msg);
            for p in &plan {
                let Some(ep) = self.endpoints.get_mut(&p.ep) else {
                    continue;
                };
                // Keep each listener's events in order: once one is set aside,
                // later ones queue behind it.
                if p.role == Role::Listener && ep.set_aside == 0 {
                    self.push(host, p.ep, msg.clone(), p.cause, false);
                } else {
                    self.set_aside_push(host, p.ep, msg.clone());
                }
            }
        }
        self.plan = plan;
    }

    fn set_aside_push<H: Host>(&mut self, host: &mut H, id: EndpointId, msg: Message) {
        if !self.tragic && self.set_aside.len() < self.config.set_aside_limit {
            self.set_aside.push_back((id, msg));
        } else {
            self.tragic = true;
            if !self.tragic_told.insert(id) {
                return;
            }
            let lost =
                self.synthetic_message(synthetic::UNBIND_EVENTS_LOST, Bytes::new(), Flags::empty());
            self.set_aside.push_back((id, lost));
        }
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.set_aside += 1;
            if !ep.readable {
                ep.readable = true;
                host.wake(self.id, id, true);
            }
        }
    }

    /// Moves the oldest set-aside event for `id` into its queue, if it has
    /// room (or unconditionally with `force`, used when the queue is empty).
    fn feed_set_aside<H: Host>(&mut self, host: &mut H, id: EndpointId, force: bool) {
        let Some(ep) = self.endpoints.get(&id) else {
            return;
        };
        if ep.set_aside == 0 || !(force || ep.has_room()) {
            return;
        }
        let Some(pos) = self.set_aside.iter().position(|(e, _)| *e == id) else {
            return;
        };
        let (_, msg) = self.set_aside.remove(pos).expect("position is in range");
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.set_aside -= 1;
        }
        self.push(host, id, msg, None, false);
        self.set_aside_emptied();
    }

    fn drop_set_aside(&mut self, id: EndpointId) {
        self.set_aside.retain(|(e, _)| *e != id);
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.set_aside = 0;
        }
        self.set_aside_emptied();
    }

    fn set_aside_emptied(&mut self) {
        if self.set_aside.is_empty() {
            self.tragic = false;
            self.tragic_told.clear();
        }
    }

    // ----- sending ----------------------------------------------------------

    fn validate(&self, msg: &Outgoing) -> Result<(), Errno> {
        if msg.flags.contains(Flags::ALL_OR_WAIT) && msg.flags.contains(Flags::ALL_OR_FAIL) {
            return Err(Errno::EINVAL);
        }
        if msg.is_request() && msg.is_reply() {
            return Err(Errno::EINVAL);
        }
        check_message_name(&msg.name)?;
        if msg.name.len() + msg.data.len() > self.max_message_size as usize {
            return Err(Errno::EMSGSIZE);
        }
        if msg
            .attached_fds()
            .is_some_and(|a| a.count > crate::MAX_FDS_PER_MESSAGE)
        {
            return Err(Errno::ETOOMANYREFS);
        }
        if !msg.destinations().is_empty() {
            // A message to nodes is a one-way multicast, not a request or reply.
            if msg.is_request() || msg.is_reply() {
                return Err(Errno::EINVAL);
            }
            let mut seen = msg.destinations().to_vec();
            seen.sort_unstable();
            if seen.windows(2).any(|w| w[0] == w[1]) {
                return Err(Errno::EINVAL);
            }
        }
        Ok(())
    }

    /// The nodes behind `handles` in `ep`'s table (`ENOENT` for a handle it
    /// does not hold).
    fn nodes_of(&self, ep: &Endpoint, handles: &[HandleId]) -> Result<Vec<NodeId>, Errno> {
        handles
            .iter()
            .map(|h| ep.handles.get(h).map(|r| r.node).ok_or(Errno::ENOENT))
            .collect()
    }

    pub(crate) fn send<H: Host>(
        &mut self,
        host: &mut H,
        from: EndpointId,
        args: SendArgs,
    ) -> Result<MessageId, Errno> {
        let SendArgs {
            message: mut msg,
            deadline,
        } = args;
        let sender = self.ep(from)?;
        if matches!(sender.send, SendState::Pending(_)) {
            return Err(Errno::EALREADY);
        }
        self.validate(&msg)?;
        if !msg.destinations().is_empty() {
            self.nodes_of(sender, msg.destinations())?;
        }
        if !msg.carried().is_empty() {
            self.nodes_of(sender, msg.carried())?;
        }
        msg.flags = msg
            .flags
            .without(Flags::SYNTHETIC.with(Flags::WANT_YOU_TO_REPLY));
        if msg.is_request() && !sender.has_room() {
            return Err(Errno::ENOLCK);
        }
        let creds = sender.creds;
        let local = msg.id.network == 0;
        let id = if local {
            MessageId {
                network: 0,
                serial: self.next_serial,
            }
        } else {
            msg.id
        };
        match self.route(host, from, creds, &msg, id, false) {
            Ok(()) => {
                if local {
                    self.take_serial();
                }
                let sender = self.ep_mut(from)?;
                sender.sent += 1;
                sender.send = SendState::Idle;
                Ok(id)
            }
            Err(Errno::EAGAIN) if msg.flags.contains(Flags::ALL_OR_WAIT) => {
                if local {
                    self.take_serial();
                }
                let request = msg.is_request();
                let sender = self.ep_mut(from)?;
                if request {
                    sender.outstanding.insert(id);
                }
                sender.send = SendState::Pending(Pending { msg, id, deadline });
                self.pending.push_back(from);
                Err(Errno::EAGAIN)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn send_batch<H: Host>(
        &mut self,
        host: &mut H,
        from: EndpointId,
        batch: Vec<SendArgs>,
    ) -> Result<Vec<crate::SendResult>, Errno> {
        self.ep(from)?;
        Ok(batch
            .into_iter()
            .map(|args| self.send(host, from, args))
            .collect())
    }

    /// Plans every copy of `msg`, then delivers them all, or fails with no effect.
    fn route<H: Host>(
        &mut self,
        host: &mut H,
        from: EndpointId,
        creds: Credentials,
        msg: &Outgoing,
        id: MessageId,
        retry: bool,
    ) -> Result<(), Errno> {
        let mut plan = mem::take(&mut self.plan);
        plan.clear();
        // A new request's reply slot counts as used while its copies are planned.
        let reserve = msg.is_request() && !retry;
        if reserve && let Some(s) = self.endpoints.get_mut(&from) {
            s.planned += 1;
        }
        let mut r = self.plan_send(from, msg, &mut plan);
        if r.is_ok() && !plan.is_empty() && self.usage.on {
            r = self.check_quota(from, creds.uid, msg, &plan);
        }
        if reserve && let Some(s) = self.endpoints.get_mut(&from) {
            s.planned = 0;
            s.copies = 0;
        }
        match r {
            Ok(()) => {
                if (msg.is_request() || msg.is_reply())
                    && let Some(s) = self.endpoints.get_mut(&from)
                {
                    if msg.is_request() {
                        s.outstanding.insert(id);
                    } else {
                        s.owed.remove(&msg.in_reply_to);
                    }
                }
                let header = Header {
                    id,
                    in_reply_to: msg.in_reply_to,
                    to: msg.to,
                    from,
                    orig_from: msg.orig_from,
                    final_to: msg.final_to,
                    name: msg.name.clone(),
                    data: msg.data.clone(),
                    creds,
                    fds: msg.attached_fds().cloned(),
                };
                let base = Message::new(header, msg.flags);
                let carried = match self.endpoints.get(&from) {
                    Some(s) if !msg.carried().is_empty() => self.nodes_of(s, msg.carried())?,
                    _ => Vec::new(),
                };
                self.deliver(
                    host,
                    base,
                    &plan,
                    msg.flags.contains(Flags::URGENT),
                    &carried,
                );
            }
            Err(_) => self.reset_plan(&plan),
        }
        self.plan = plan;
        r
    }

    fn plan_send(
        &mut self,
        from: EndpointId,
        msg: &Outgoing,
        plan: &mut Vec<Planned>,
    ) -> Result<(), Errno> {
        let when_full = if msg.flags.contains(Flags::ALL_OR_WAIT) {
            WhenFull::Fail(Errno::EAGAIN)
        } else if msg.flags.contains(Flags::ALL_OR_FAIL) {
            WhenFull::Fail(Errno::EBUSY)
        } else {
            WhenFull::Skip
        };
        if !msg.destinations().is_empty() {
            let nodes = self.nodes_of(self.ep(from)?, msg.destinations())?;
            for node in nodes {
                // A destroyed node: the copy is discarded.
                let Some(owner) = self.nodes.get(&node).filter(|n| n.live).map(|n| n.owner) else {
                    continue;
                };
                let Some(ep) = self.endpoints.get_mut(&owner) else {
                    continue;
                };
                plan_required(plan, ep, owner, Role::Node(node), None, msg.flags)?;
            }
            return Ok(());
        }
        if msg.is_reply() {
            let requester = match self.ep(from)?.owed.get(&msg.in_reply_to) {
                Some(&r) if r == msg.to => r,
                _ => return Err(Errno::ECONNREFUSED),
            };
            let Some(ep) = self.endpoints.get_mut(&requester) else {
                // The requester has gone: no reply can ever reach it, so the
                // debt is cancelled (see docs/semantics.md).
                self.ep_mut(from)?.owed.remove(&msg.in_reply_to);
                return Err(Errno::EADDRNOTAVAIL);
            };
            debug_assert!(ep.outstanding.contains(&msg.in_reply_to));
            ep.copies += 1;
            plan.push(Planned {
                ep: requester,
                role: Role::Requester,
                cause: None,
                uid: ep.creds.uid,
            });
        } else if msg.is_request() {
            let (bid, replier) = self.index.replier(&msg.name).ok_or(Errno::EADDRNOTAVAIL)?;
            if msg.to != EndpointId::BUS && msg.to != replier {
                return Err(Errno::EPIPE);
            }
            let ep = self
                .endpoints
                .get_mut(&replier)
                .expect("bound endpoints exist");
            plan_required(plan, ep, replier, Role::Replier, Some(bid), msg.flags)?;
        }
        self.plan_listeners(&msg.name, when_full, plan)
    }

    /// Would the planned copies keep every receiving user within its quota?
    /// `EDQUOT` if not (the whole send fails).
    /// `by` is the sending user: each copy is charged on its account.
    fn check_quota(
        &mut self,
        from: EndpointId,
        by: u32,
        msg: &Outgoing,
        plan: &[Planned],
    ) -> Result<(), Errno> {
        let size = (msg.name.len() + msg.data.len()) as u64;
        let fds = msg.attached_fds().map_or(0, |a| u64::from(a.count));
        let carried = match self.endpoints.get(&from) {
            Some(s) if !msg.carried().is_empty() => self.nodes_of(s, msg.carried())?,
            _ => Vec::new(),
        };
        // Per receiving user: messages, bytes, new handles (scratch reused
        // across sends: no allocation on the hot path).
        let mut add = mem::take(&mut self.quota_scratch);
        add.clear();
        let mut seen: Vec<EndpointId> = Vec::new();
        for p in plan.iter().filter(|p| p.role != Role::Lost) {
            let new_handles = if carried.is_empty() || seen.contains(&p.ep) {
                0
            } else {
                seen.push(p.ep);
                let Some(ep) = self.endpoints.get(&p.ep) else {
                    continue;
                };
                let mut nodes: Vec<NodeId> = carried
                    .iter()
                    .copied()
                    .filter(|n| {
                        !ep.by_node.contains_key(n) && self.nodes.get(n).is_some_and(|n| n.live)
                    })
                    .collect();
                nodes.sort_unstable();
                nodes.dedup();
                nodes.len() as u32
            };
            let uid = p.uid;
            match add.iter_mut().find(|a| a.0 == uid) {
                Some(a) => {
                    a.1 += 1;
                    a.2 += size;
                    a.3 += new_handles;
                }
                None => add.push((uid, 1, size, new_handles)),
            }
        }
        let q = self.quota;
        let over = add.iter().any(|&(uid, msgs, bytes, handles)| {
            let u = self.usage.map.get(&(uid, by)).copied().unwrap_or_default();
            u64::from(u.messages) + u64::from(msgs) > u64::from(q.messages)
                || u.bytes + bytes > q.bytes
                || u64::from(u.handles) + u64::from(handles) > u64::from(q.handles)
                || u64::from(u.fds) + u64::from(msgs) * fds > u64::from(q.fds)
        });
        self.quota_scratch = add;
        if over { Err(Errno::EDQUOT) } else { Ok(()) }
    }

    /// Plans a copy for every listener binding matching `name` ("only once"
    /// endpoints get at most one copy of the message). On failure the plan
    /// still names every endpoint whose scratch counters were touched.
    fn plan_listeners(
        &mut self,
        name: &str,
        when_full: WhenFull,
        plan: &mut Vec<Planned>,
    ) -> Result<(), Errno> {
        let mut matched = mem::take(&mut self.matched);
        matched.clear();
        self.index.listeners(name, &mut matched);
        let mut r = Ok(());
        for &(bid, target) in &matched {
            let Some(ep) = self.endpoints.get_mut(&target) else {
                continue;
            };
            if ep.only_once && ep.copies > 0 {
                continue;
            }
            ep.copies += 1;
            let role = if ep.has_room() {
                ep.planned += 1;
                Role::Listener
            } else if let WhenFull::Fail(e) = when_full {
                r = Err(e);
                Role::Lost
            } else {
                Role::Lost
            };
            plan.push(Planned {
                ep: target,
                role,
                cause: Some(bid),
                uid: ep.creds.uid,
            });
            if r.is_err() {
                break;
            }
        }
        self.matched = matched;
        r
    }

    /// Clears the scratch counters of every endpoint in a plan that will not
    /// be delivered (delivery clears them itself).
    fn reset_plan(&mut self, plan: &[Planned]) {
        for p in plan {
            if let Some(ep) = self.endpoints.get_mut(&p.ep) {
                ep.planned = 0;
                ep.copies = 0;
            }
        }
    }

    /// Queues every planned copy of `base` (and clears the scratch
    /// counters); each receiver gets its own handles to the `carried` nodes.
    fn deliver<H: Host>(
        &mut self,
        host: &mut H,
        base: Message,
        plan: &[Planned],
        urgent: bool,
        carried: &[NodeId],
    ) {
        self.copy_to_monitors(host, &base);
        let bus = self.id;
        let mut base = Some(base);
        let last = plan.len().saturating_sub(1);
        for (i, p) in plan.iter().enumerate() {
            let Some(ep) = self.endpoints.get_mut(&p.ep) else {
                continue;
            };
            ep.planned = 0;
            ep.copies = 0;
            if p.role == Role::Lost {
                ep.lost_unreported += 1;
                ep.lost_total += 1;
                continue;
            }
            let mut m = if i == last {
                base.take().expect("the last copy takes the original")
            } else {
                base.clone().expect("copies before the last clone it")
            };
            match p.role {
                Role::Requester => {
                    ep.outstanding.remove(&m.in_reply_to);
                }
                Role::Replier => m.flags = m.flags.with(Flags::WANT_YOU_TO_REPLY),
                Role::Node(node) => {
                    m.destination = ep.by_node.get(&node).copied().unwrap_or(HandleId::INVALID);
                }
                Role::Listener | Role::Lost => {}
            }
            if !carried.is_empty() {
                let by = m.creds.uid;
                m.handles = carried
                    .iter()
                    .map(|&n| self.install_handle(p.ep, n, by))
                    .collect();
            }
            let Some(ep) = self.endpoints.get_mut(&p.ep) else {
                continue;
            };
            push_into(ep, &mut self.usage, host, (bus, p.ep), m, p.cause, urgent);
        }
    }

    // ----- nodes and handles ----------------------------------------------

    /// Gives `id` a reference to `node` (a new handle or one more reference
    /// on its existing one). A destroyed node gives `HandleId::INVALID`.
    fn install_handle(&mut self, id: EndpointId, node: NodeId, by: u32) -> HandleId {
        let Some(n) = self.nodes.get_mut(&node).filter(|n| n.live) else {
            return HandleId::INVALID;
        };
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return HandleId::INVALID;
        };
        if let Some(&h) = ep.by_node.get(&node) {
            if let Some(r) = ep.handles.get_mut(&h) {
                r.refs += 1;
            }
            return h;
        }
        let h = HandleId(ep.next_handle);
        ep.next_handle += 1;
        ep.handles.insert(h, HandleRef { node, refs: 1, by });
        ep.by_node.insert(node, h);
        charge_handle(&mut self.usage, ep.creds.uid, by, 1);
        n.holders.push(id);
        // Someone else holds it again: withdraw an unread release notice.
        if id != n.owner
            && let Some(notice) = n.release_notice.take()
        {
            let owner = n.owner;
            if let Some(o) = self.endpoints.get_mut(&owner)
                && let Some(pos) = o.queue.iter().position(|q| q.msg.id == notice)
            {
                let q = o.queue.remove(pos).expect("position is in range");
                uncharge(&mut self.usage, o, &q.msg);
            }
        }
        h
    }

    pub(crate) fn create_node<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<HandleId, Errno> {
        let uid = self.ep(id)?.creds.uid;
        let held = self.usage.map.get(&(uid, uid)).map_or(0, |u| u.handles);
        if held >= self.quota.handles {
            return Err(Errno::EDQUOT);
        }
        let node = self.next_node;
        self.next_node += 1;
        self.nodes.insert(
            node,
            Node {
                owner: id,
                live: true,
                holders: Vec::new(),
                release_notice: None,
            },
        );
        Ok(self.install_handle(id, node, uid))
    }

    pub(crate) fn release_handle<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        h: HandleId,
    ) -> Result<(), Errno> {
        let ep = self.ep(id)?;
        let r = *ep.handles.get(&h).ok_or(Errno::ENOENT)?;
        let pinned = self
            .nodes
            .get(&r.node)
            .is_some_and(|n| n.live && n.owner == id);
        if pinned && r.refs == 1 {
            // The owner keeps its own handle while the node lives.
            return Err(Errno::EBUSY);
        }
        self.drop_handle(host, id, h);
        Ok(())
    }

    /// Drops one reference of `id`'s handle `h`; the last one removes the
    /// handle (see [`Bus::holder_gone`]).
    fn drop_handle<H: Host>(&mut self, host: &mut H, id: EndpointId, h: HandleId) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        let Some(r) = ep.handles.get_mut(&h) else {
            return;
        };
        r.refs -= 1;
        if r.refs > 0 {
            return;
        }
        let (node, by) = (r.node, r.by);
        ep.handles.remove(&h);
        ep.by_node.remove(&node);
        charge_handle(&mut self.usage, ep.creds.uid, by, -1);
        self.holder_gone(host, node, id);
    }

    /// `id` no longer holds a handle to `node`: forget a node nobody holds,
    /// and tell a live node's owner when it is the only holder left.
    fn holder_gone<H: Host>(&mut self, host: &mut H, node: NodeId, id: EndpointId) {
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        n.holders.retain(|&e| e != id);
        if n.holders.is_empty() {
            self.nodes.remove(&node);
            return;
        }
        if !(n.live && id != n.owner && n.holders == [n.owner] && n.release_notice.is_none()) {
            return;
        }
        let owner = n.owner;
        let notice = self.node_notice(host, synthetic::NODE_RELEASED, node, owner, EndpointId::BUS);
        if let Some(n) = self.nodes.get_mut(&node) {
            n.release_notice = notice;
        }
    }

    /// Queues a node notice (`name`) for `to`, naming its handle to `node`
    /// (if it still has one); returns the notice's id.
    fn node_notice<H: Host>(
        &mut self,
        host: &mut H,
        name: &'static str,
        node: NodeId,
        to: EndpointId,
        from: EndpointId,
    ) -> Option<MessageId> {
        let dest = self.endpoints.get(&to)?.by_node.get(&node).copied()?;
        let mut msg = self.synthetic(
            name,
            Bytes::new(),
            Flags::empty(),
            MessageId::NONE,
            to,
            from,
        );
        msg.destination = dest;
        let id = msg.id;
        self.copy_to_monitors(host, &msg);
        self.push(host, to, msg, None, false);
        Some(id)
    }

    pub(crate) fn destroy_nodes<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        hs: Vec<HandleId>,
    ) -> Result<(), Errno> {
        let ep = self.ep(id)?;
        let nodes = self.nodes_of(ep, &hs)?;
        let mut sorted = nodes.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(Errno::EINVAL);
        }
        for node in &nodes {
            match self.nodes.get(node) {
                Some(n) if n.owner != id => return Err(Errno::EPERM),
                Some(n) if !n.live => return Err(Errno::EINVAL),
                Some(_) => {}
                None => return Err(Errno::ENOENT),
            }
        }
        for node in nodes {
            self.destroy_node(host, node);
        }
        Ok(())
    }

    /// Marks `node` destroyed and tells every holder (after every message
    /// already queued for it). Notices always fit: like a synthetic reply
    /// they may take a queue past its limit.
    fn destroy_node<H: Host>(&mut self, host: &mut H, node: NodeId) {
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        n.live = false;
        let owner = n.owner;
        let holders = n.holders.clone();
        for holder in holders {
            self.node_notice(host, synthetic::NODE_DESTROYED, node, holder, owner);
        }
    }

    /// At close: destroy the endpoint's nodes, then drop its handles.
    fn close_handles<H: Host>(&mut self, host: &mut H, ep: &Endpoint, id: EndpointId) {
        let mut owned: Vec<NodeId> = ep
            .by_node
            .keys()
            .copied()
            .filter(|n| self.nodes.get(n).is_some_and(|n| n.live && n.owner == id))
            .collect();
        owned.sort_unstable();
        for node in owned {
            self.destroy_node(host, node);
        }
        let mut held: Vec<(HandleId, NodeId, u32)> =
            ep.handles.iter().map(|(&h, r)| (h, r.node, r.by)).collect();
        held.sort_unstable();
        for (_, node, by) in held {
            charge_handle(&mut self.usage, ep.creds.uid, by, -1);
            self.holder_gone(host, node, id);
        }
    }

    /// Gives every monitor its copy of `msg` (or counts it lost if full).
    fn copy_to_monitors<H: Host>(&mut self, host: &mut H, msg: &Message) {
        if self.monitors.is_empty() {
            return;
        }
        let bus = self.id;
        for &id in &self.monitors {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            if ep.has_room() {
                let mut m = msg.clone();
                m.flags = m.flags.without(Flags::WANT_YOU_TO_REPLY);
                push_into(ep, &mut self.usage, host, (bus, id), m, None, false);
            } else {
                ep.lost_unreported += 1;
                ep.lost_total += 1;
            }
        }
    }

    pub(crate) fn set_monitor<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        on: bool,
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        let was = mem::replace(&mut ep.monitor, on);
        if on && !was {
            self.monitors.push(id);
        } else if !on && was {
            self.monitors.retain(|&m| m != id);
        }
        Ok(was)
    }

    fn push<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        msg: Message,
        cause: Option<BindingId>,
        urgent: bool,
    ) {
        let bus = self.id;
        if let Some(ep) = self.endpoints.get_mut(&id) {
            push_into(ep, &mut self.usage, host, (bus, id), msg, cause, urgent);
        }
    }

    /// Queues a synthetic reply for `requester`'s request, using the slot the
    /// request reserved. Does nothing if the requester no longer awaits it.
    fn synthetic_reply<H: Host>(
        &mut self,
        host: &mut H,
        name: &'static str,
        from: EndpointId,
        requester: EndpointId,
        request: MessageId,
    ) {
        let Some(r) = self.endpoints.get_mut(&requester) else {
            return;
        };
        if !r.outstanding.remove(&request) {
            return;
        }
        let msg = self.synthetic(name, Bytes::new(), Flags::empty(), request, requester, from);
        self.copy_to_monitors(host, &msg);
        host.log(
            Level::Debug,
            format_args!(
                "bus {} {name} to endpoint {requester} for request {request}",
                self.id
            ),
        );
        self.push(host, requester, msg, None, false);
    }

    // ----- receiving -------------------------------------------------------

    fn update_readiness<H: Host>(&mut self, host: &mut H, id: EndpointId) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            let now = ep.is_readable();
            if ep.readable != now {
                ep.readable = now;
                host.wake(self.id, id, now);
            }
        }
    }

    pub(crate) fn recv<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<Option<Message>, Errno> {
        let ep = self.ep_mut(id)?;
        let q = match ep.queue.pop_front() {
            Some(q) => q,
            None if ep.set_aside > 0 => {
                self.feed_set_aside(host, id, true);
                match self.ep_mut(id)?.queue.pop_front() {
                    Some(q) => q,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        };
        self.taken(host, id, &q.msg);
        Ok(Some(q.msg))
    }

    pub(crate) fn recv_batch<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        max: u32,
    ) -> Result<Vec<Message>, Errno> {
        if max == 0 {
            return Err(Errno::EINVAL);
        }
        let ep = self.ep(id)?;
        let n = (max as usize).min(ep.queue.len() + ep.set_aside as usize);
        let mut out = Vec::with_capacity(n);
        let mut bytes = 0;
        // Stop once the batch holds `RECV_BATCH_BYTES` (a daemon response
        // frame stays far below its 4 GiB length field).
        while out.len() < max as usize && bytes < RECV_BATCH_BYTES {
            match self.recv(host, id, ())? {
                Some(m) => {
                    bytes += size_of_message(&m);
                    out.push(m);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Bookkeeping after `msg` left `id`'s queue: a replier's request
    /// becomes owed; a set-aside event may move in; readiness is updated.
    fn taken<H: Host>(&mut self, host: &mut H, id: EndpointId, msg: &Message) {
        let bus = self.id;
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if msg.wants_us_to_reply() {
            ep.owed.insert(msg.id, msg.from);
        }
        ep.received += 1;
        uncharge(&mut self.usage, ep, msg);
        if ep.set_aside > 0 {
            self.feed_set_aside(host, id, false);
            self.update_readiness(host, id);
            return;
        }
        let now = ep.is_readable();
        if ep.readable != now {
            ep.readable = now;
            host.wake(bus, id, now);
        }
    }

    pub(crate) fn take_reply<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        request: MessageId,
    ) -> Result<Option<Message>, Errno> {
        if request.is_none() {
            return Err(Errno::EINVAL);
        }
        let ep = self.ep_mut(id)?;
        let pos = ep
            .queue
            .iter()
            .position(|q| q.cause.is_none() && q.msg.in_reply_to == request && q.msg.to == id);
        match pos {
            Some(pos) => {
                let q = ep.queue.remove(pos).expect("position is in range");
                self.taken(host, id, &q.msg);
                Ok(Some(q.msg))
            }
            None if ep.outstanding.contains(&request) => Ok(None),
            None => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn discard_send<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        let SendState::Pending(p) = mem::take(&mut ep.send) else {
            // Idle or Done: put back what was there.
            return Ok(false);
        };
        ep.outstanding.remove(&p.id);
        self.pending.retain(|&e| e != id);
        self.update_readiness(host, id);
        Ok(true)
    }

    pub(crate) fn take_send_outcome<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<Option<SendOutcome>, Errno> {
        let ep = self.ep_mut(id)?;
        let out = match mem::take(&mut ep.send) {
            SendState::Done(o) => Some(o),
            other => {
                ep.send = other;
                None
            }
        };
        self.update_readiness(host, id);
        Ok(out)
    }

    /// Retries every pending send, oldest first. Called after every
    /// operation while any send is pending, so no chance of room is missed.
    pub(crate) fn retry_pending<H: Host>(&mut self, host: &mut H) {
        for _ in 0..self.pending.len() {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            let SendState::Pending(p) = mem::take(&mut ep.send) else {
                continue;
            };
            let creds = ep.creds;
            match self.route(host, id, creds, &p.msg, p.id, true) {
                Ok(()) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.sent += 1;
                    }
                    self.finish_send(
                        host,
                        id,
                        SendOutcome {
                            id: p.id,
                            result: Ok(()),
                        },
                    );
                }
                Err(Errno::EAGAIN) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.send = SendState::Pending(p);
                    }
                    self.pending.push_back(id);
                }
                Err(e) => self.fail_pending(host, id, p, e),
            }
        }
    }

    fn fail_pending<H: Host>(&mut self, host: &mut H, id: EndpointId, p: Pending, e: Errno) {
        if p.msg.is_request() {
            let name = if e == Errno::EADDRNOTAVAIL {
                synthetic::DISAPPEARED
            } else {
                synthetic::ERROR_SENDING
            };
            self.synthetic_reply(host, name, EndpointId::BUS, id, p.id);
        }
        self.finish_send(
            host,
            id,
            SendOutcome {
                id: p.id,
                result: Err(e),
            },
        );
    }

    fn finish_send<H: Host>(&mut self, host: &mut H, id: EndpointId, outcome: SendOutcome) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.send = SendState::Done(outcome);
            ep.readable = true;
            host.wake(self.id, id, true);
        }
    }

    /// The earliest deadline of a pending send.
    pub(crate) fn next_deadline(&self) -> Option<Nanos> {
        self.pending
            .iter()
            .filter_map(|id| match &self.endpoints.get(id)?.send {
                SendState::Pending(p) => p.deadline,
                _ => None,
            })
            .min()
    }

    /// Ends pending sends whose deadline has passed (outcome `ETIMEDOUT`;
    /// the message was never sent, so it gets no reply).
    pub(crate) fn expire<H: Host>(&mut self, host: &mut H, now: Nanos) {
        for _ in 0..self.pending.len() {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            match mem::take(&mut ep.send) {
                SendState::Pending(p) if p.deadline.is_some_and(|d| d <= now) => {
                    ep.outstanding.remove(&p.id);
                    self.finish_send(
                        host,
                        id,
                        SendOutcome {
                            id: p.id,
                            result: Err(Errno::ETIMEDOUT),
                        },
                    );
                }
                other => {
                    ep.send = other;
                    self.pending.push_back(id);
                }
            }
        }
    }

    // ----- settings and queries -------------------------------------------

    pub(crate) fn set_queue_limit<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        limit: u32,
    ) -> Result<u32, Errno> {
        if limit == 0 {
            return Err(Errno::EINVAL);
        }
        let ep = self.ep_mut(id)?;
        Ok(mem::replace(&mut ep.limit, limit))
    }

    pub(crate) fn set_only_once<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        on: bool,
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        Ok(mem::replace(&mut ep.only_once, on))
    }

    pub(crate) fn set_replier_bind_events<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        on: bool,
    ) -> Result<bool, Errno> {
        let ep = self.ep(id)?;
        if on {
            let n = self.index.replier_count();
            if ep.used() + n > ep.limit as usize {
                return Err(Errno::EBUSY);
            }
            let mut existing: Vec<(EndpointId, Arc<str>)> = self
                .index
                .replier_bindings()
                .map(|b| (b.endpoint, b.pattern.clone()))
                .collect();
            existing.sort();
            for (binder, pattern) in existing {
                let msg = self.bind_event_message(true, binder, &pattern);
                self.push(host, id, msg, None, false);
            }
        }
        Ok(mem::replace(&mut self.bind_events, on))
    }

    pub(crate) fn set_max_message_size<H: Host>(
        &mut self,
        _: &mut H,
        size: u32,
    ) -> Result<u32, Errno> {
        if !(MIN_MAX_MESSAGE_SIZE..=self.config.absolute_max_message_size).contains(&size) {
            return Err(Errno::EINVAL);
        }
        Ok(mem::replace(&mut self.max_message_size, size))
    }

    pub(crate) fn set_quota<H: Host>(&mut self, _: &mut H, quota: Quota) -> Result<Quota, Errno> {
        let on = quota != Quota::UNLIMITED;
        if on && !self.usage.on {
            self.recount_usage();
        }
        self.usage.on = on;
        if !on {
            self.usage.map.clear();
        }
        Ok(mem::replace(&mut self.quota, quota))
    }

    /// Rebuilds every user pair's charges from the queues and handle tables
    /// (when a quota is switched on after running without one).
    fn recount_usage(&mut self) {
        let mut u = Usage {
            on: true,
            map: HashMap::with_hasher(self.hasher.clone()),
        };
        for ep in self.endpoints.values() {
            let uid = ep.creds.uid;
            for q in ep.queue.iter().filter(|q| !q.msg.is_synthetic()) {
                let (size, fds) = (size_of_message(&q.msg), fd_count(&q.msg));
                with_usage(&mut u, uid, q.msg.creds.uid, |x| {
                    x.messages += 1;
                    x.bytes += size;
                    x.fds += fds;
                });
            }
            for r in ep.handles.values() {
                with_usage(&mut u, uid, r.by, |x| x.handles += 1);
            }
        }
        self.usage = u;
    }

    pub(crate) fn quota_stats<H: Host>(&mut self, _: &mut H, _: ()) -> Result<QuotaStats, Errno> {
        let mut users: Vec<UserUsage> = self
            .usage
            .map
            .values()
            .copied()
            .filter(|u| !is_empty_usage(u))
            .collect();
        users.sort_unstable_by_key(|u| (u.uid, u.sender_uid));
        Ok(QuotaStats {
            quota: self.quota,
            users,
        })
    }

    pub(crate) fn find_replier<H: Host>(
        &mut self,
        _: &mut H,
        name: Arc<str>,
    ) -> Result<Option<EndpointId>, Errno> {
        check_message_name(&name)?;
        Ok(self.index.replier(&name).map(|(_, ep)| ep))
    }

    pub(crate) fn endpoint_stats<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<EndpointStats, Errno> {
        self.stats_of(id).ok_or(Errno::ENOENT)
    }

    fn stats_of(&self, id: EndpointId) -> Option<EndpointStats> {
        let ep = self.endpoints.get(&id)?;
        Some(EndpointStats {
            id,
            pid: ep.creds.pid,
            uid: ep.creds.uid,
            queued: ep.queue.len() as u32,
            set_aside: ep.set_aside,
            queue_limit: ep.limit,
            lost: ep.lost_total,
            sent: ep.sent,
            received: ep.received,
            outstanding_requests: ep.outstanding.len() as u32,
            owed_replies: ep.owed.len() as u32,
            bindings: ep.bindings.len() as u32,
            only_once: ep.only_once,
            pending_send: ep.pending_id(),
            queued_bytes: ep.queued_bytes,
            handles: ep.handles.len() as u32,
            nodes: ep
                .by_node
                .keys()
                .filter(|n| self.nodes.get(n).is_some_and(|n| n.live && n.owner == id))
                .count() as u32,
        })
    }

    pub(crate) fn bus_stats<H: Host>(&mut self, _: &mut H, _: ()) -> Result<BusStats, Errno> {
        let mut ids: Vec<EndpointId> = self.endpoints.keys().copied().collect();
        ids.sort_unstable();
        Ok(BusStats {
            bus: self.id,
            endpoints: self.endpoints.len() as u32,
            bindings: self.index.len() as u32,
            replier_bindings: self.index.replier_count() as u32,
            next_serial: self.next_serial,
            max_message_size: self.max_message_size,
            replier_bind_events: self.bind_events,
            set_aside: self.set_aside.len() as u32,
            endpoint_stats: ids.into_iter().filter_map(|id| self.stats_of(id)).collect(),
        })
    }
}

/// Plans a copy that must be delivered (a replier's, a node owner's): a
/// full queue fails the whole send, `EAGAIN` (pending) with `ALL_OR_WAIT`,
/// `EBUSY` otherwise.
fn plan_required(
    plan: &mut Vec<Planned>,
    ep: &mut Endpoint,
    id: EndpointId,
    role: Role,
    cause: Option<BindingId>,
    flags: Flags,
) -> Result<(), Errno> {
    if !ep.has_room() {
        return Err(if flags.contains(Flags::ALL_OR_WAIT) {
            Errno::EAGAIN
        } else {
            Errno::EBUSY
        });
    }
    ep.planned += 1;
    ep.copies += 1;
    plan.push(Planned {
        ep: id,
        role,
        cause,
        uid: ep.creds.uid,
    });
    Ok(())
}

/// Queues `msg` on `ep` (front if urgent), attaching its unreported losses,
/// and wakes its waiter.
fn push_into<H: Host>(
    ep: &mut Endpoint,
    usage: &mut Usage,
    host: &mut H,
    (bus, id): (BusId, EndpointId),
    mut msg: Message,
    cause: Option<BindingId>,
    urgent: bool,
) {
    msg.lost = mem::take(&mut ep.lost_unreported);
    charge(usage, ep, &msg);
    let q = Queued { msg, cause };
    if urgent {
        ep.queue.push_front(q);
    } else {
        ep.queue.push_back(q);
    }
    ep.readable = true;
    host.wake(bus, id, true);
}
