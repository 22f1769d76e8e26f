//! Sending: validating and planning one message (delivery: `deliver`).
//!
//! Every copy is planned (each recipient's room, then the quota) before any is
//! queued, so a send queues all its copies or none; a failed plan resets the
//! recipients' scratch counters (`planned`, `copies`: 0 between sends).
//! send: O(matching bindings + recipients × carried handles + monitors), the
//! binding lookup being a few hash probes per word of the name (see `binding`).

use std::mem;
use std::sync::Arc;

use crate::binding::BindingId;
use crate::endpoint::{Endpoint, Pending, SendState};
use crate::name::check_message_name;
use crate::node::NodeId;
use crate::{
    Credentials, EndpointId, Errno, Flags, HandleId, Header, Host, Message, MessageId, Outgoing,
    SendArgs,
};

use super::Bus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
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
pub(super) struct Planned {
    pub(super) ep: EndpointId,
    pub(super) role: Role,
    pub(super) cause: Option<BindingId>,
    /// The receiving endpoint's user (charged for the copy).
    pub(super) uid: u32,
}

/// What to do when a listener's queue is full.
#[derive(Clone, Copy, Debug)]
pub(super) enum WhenFull {
    /// Skip it, counting the loss.
    Skip,
    /// Fail the whole send with this error.
    Fail(Errno),
}

impl Bus {
    /// Is `name` the last name found valid? (Pointer first, then bytes.)
    fn name_checked(&self, name: &std::sync::Arc<str>) -> bool {
        self.checked_name
            .as_ref()
            .is_some_and(|c| std::sync::Arc::ptr_eq(c, name) || **c == **name)
    }

    /// Checks a message before anything is planned. `name_known` says the
    /// name was found valid before ([`Self::name_checked`]).
    #[inline]
    fn validate(&self, msg: &Outgoing, kbus_compat: bool, name_known: bool) -> Result<(), Errno> {
        if msg.flags.contains(Flags::ALL_OR_WAIT) && msg.flags.contains(Flags::ALL_OR_FAIL) {
            return Err(Errno::EINVAL);
        }
        if msg.is_request() && msg.is_reply() {
            return Err(Errno::EINVAL);
        }
        if !name_known {
            check_message_name(&msg.name)?;
        }
        let size = if kbus_compat {
            crate::kbus_entire_len(msg.name.len(), msg.data.len())
        } else {
            msg.name.len() + msg.data.len()
        };
        if size > self.max_message_size as usize {
            return Err(Errno::EMSGSIZE);
        }
        // Data in a memfd is a wire matter: transports take it out first.
        if msg.attached_fds().is_some_and(|a| a.data_in_last) {
            return Err(Errno::EINVAL);
        }
        if msg
            .attached_fds()
            .is_some_and(|a| a.count > crate::MAX_FDS_PER_MESSAGE)
            || msg.carried().len() > crate::MAX_HANDLES_PER_MESSAGE
            || msg.destinations().len() > crate::MAX_HANDLES_PER_MESSAGE
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

    /// Sends, counting the outcome (`sent`, or `refused` by errno; a send
    /// left pending counts when it ends).
    pub(crate) fn send<H: Host>(
        &mut self,
        host: &mut H,
        from: EndpointId,
        args: SendArgs,
    ) -> Result<MessageId, Errno> {
        let r = self.send_one(host, from, args);
        match r {
            Ok(_) => self.counters.sent += 1,
            Err(Errno::EAGAIN) => {}
            Err(e) => self.counters.refuse(e),
        }
        r
    }

    #[inline]
    fn send_one<H: Host>(
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
        let kbus_compat = sender.kbus_compat;
        let name_known = self.name_checked(&msg.name);
        self.validate(&msg, kbus_compat, name_known)?;
        if !msg.destinations().is_empty() {
            self.nodes_of(sender, msg.destinations())?;
        }
        if !msg.carried().is_empty() {
            self.nodes_of(sender, msg.carried())?;
        }
        // A forwarded message (a non-zero network: only privileged clients
        // may send one) keeps the SYNTHETIC its own bus set; KBUS cleared it
        // on everything, and so does a KBUS-compatible endpoint.
        let local = msg.id.network == 0;
        let bus_only = if local || kbus_compat {
            Flags::SYNTHETIC.with(Flags::WANT_YOU_TO_REPLY)
        } else {
            Flags::WANT_YOU_TO_REPLY
        };
        msg.flags = msg.flags.without(bus_only);
        if msg.is_request() && !sender.has_room() {
            return Err(Errno::ENOLCK);
        }
        let creds = sender.creds;
        if !name_known {
            self.checked_name = Some(msg.name.clone());
        }
        let id = if local {
            MessageId {
                network: 0,
                serial: self.next_serial,
            }
        } else {
            msg.id
        };
        let all_or_wait = msg.flags.contains(Flags::ALL_OR_WAIT);
        match self.route(host, from, creds, msg, id, false) {
            Ok(()) => {
                if local {
                    self.take_serial();
                }
                let sender = self.ep_mut(from)?;
                sender.sent += 1;
                sender.send = SendState::Idle;
                sender.last_sent = id;
                Ok(id)
            }
            Err((Errno::EAGAIN, msg)) if all_or_wait => {
                // The bus holds the payload while it waits: the sending
                // user is charged for it (quota bytes and fds).
                if !self.pending.fits(creds.uid, &msg, &self.quota) {
                    return Err(Errno::EDQUOT);
                }
                if local {
                    self.take_serial();
                }
                if msg.is_request() {
                    self.ep_mut(from)?.outstanding.insert(id);
                }
                let blocked_on = self.blocker.unwrap_or(EndpointId::BUS);
                let seq = self.pending.next_seq();
                let p = Pending {
                    msg,
                    id,
                    deadline,
                    seq,
                    blocked_on,
                    peer: self.peer,
                    uid: creds.uid,
                };
                self.pending.insert(from, &p);
                let sender = self.ep_mut(from)?;
                sender.send = SendState::Pending(p);
                sender.last_sent = id;
                Err(Errno::EAGAIN)
            }
            Err((e, _)) => {
                // KBUS numbers a send that fails after validation as if it
                // had gone (its serial is used up, LASTSENT names it).
                if kbus_compat {
                    if local {
                        self.take_serial();
                    }
                    self.ep_mut(from)?.last_sent = id;
                }
                Err(e)
            }
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

    /// Plans every copy of `msg`, then delivers them all (the copies share
    /// its name, data and fds, moved into their header), or fails with no
    /// effect and gives the message back.
    #[inline]
    pub(super) fn route<H: Host>(
        &mut self,
        host: &mut H,
        from: EndpointId,
        creds: Credentials,
        msg: Outgoing,
        id: MessageId,
        retry: bool,
    ) -> Result<(), (Errno, Outgoing)> {
        let mut plan = mem::take(&mut self.plan);
        plan.clear();
        // A new request's reply slot counts as used while its copies are planned.
        let reserve = msg.is_request() && !retry;
        if reserve && let Some(s) = self.endpoints.get_mut(&from) {
            s.planned += 1;
        }
        self.blocker = None;
        self.peer = None;
        let mut r = self.plan_send(from, &msg, &mut plan);
        if r.is_ok() && !plan.is_empty() && self.usage.on {
            r = self.check_quota(from, creds.uid, &msg, &plan);
        }
        // The carried nodes, resolved before anything changes (a retried
        // send's handles may have been released since it went pending).
        let mut carried = Vec::new();
        if r.is_ok()
            && !msg.carried().is_empty()
            && let Some(s) = self.endpoints.get(&from)
        {
            match self.nodes_of(s, msg.carried()) {
                Ok(nodes) => carried = nodes,
                Err(e) => r = Err(e),
            }
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
                        s.owed.remove(&(msg.in_reply_to, msg.to));
                    }
                }
                let to_nodes = !msg.destinations().is_empty();
                let header = Header {
                    id,
                    in_reply_to: msg.in_reply_to,
                    to: msg.to,
                    from,
                    orig_from: msg.orig_from,
                    final_to: msg.final_to,
                    fds: msg.caps.and_then(|c| c.fds),
                    name: msg.name,
                    data: msg.data,
                    creds,
                };
                let mut base = Message::new(header, msg.flags);
                if to_nodes {
                    // Marks a message to nodes until each owner's copy gets
                    // its own handle (below): monitors never see it.
                    base.destination = HandleId(u64::MAX);
                }
                self.deliver(
                    host,
                    base,
                    &plan,
                    msg.flags.contains(Flags::URGENT),
                    &carried,
                );
                self.plan = plan;
                Ok(())
            }
            Err(e) => {
                self.reset_plan(&plan);
                self.plan = plan;
                Err((e, msg))
            }
        }
    }

    #[inline]
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
                plan_required(plan, ep, owner, Role::Node(node), None, msg.flags)
                    .inspect_err(|_| self.blocker = Some(owner))?;
            }
            return Ok(());
        }
        if msg.is_reply() {
            let requester = msg.to;
            self.peer = Some(requester);
            let debt = (msg.in_reply_to, requester);
            let sender = self.ep(from)?;
            let owes = sender.owed.contains(&debt);
            // KBUS's rule, for a requester that asked for KBUS's rules:
            // anyone may answer a request it still awaits.
            // (A KBUS sender first learns whether the requester exists.)
            let kbus_stranger = !owes
                && match self.endpoints.get(&requester) {
                    None => sender.kbus_compat,
                    // A request still pending (ALL_OR_WAIT) has reached
                    // no replier yet: nobody may answer it.
                    Some(r) => {
                        r.kbus_compat
                            && r.outstanding.contains(&debt.0)
                            && r.pending_id() != Some(debt.0)
                    }
                };
            if !owes && !kbus_stranger {
                return Err(Errno::ECONNREFUSED);
            }
            let Some(ep) = self.endpoints.get_mut(&requester) else {
                // The requester has gone: no reply can ever reach it, so the
                // debt is cancelled (see docs/semantics.md).
                self.ep_mut(from)?.owed.remove(&debt);
                return Err(Errno::EADDRNOTAVAIL);
            };
            if !ep.outstanding.contains(&msg.in_reply_to) {
                // Answered already (by someone KBUS's rule let answer): the
                // debt is void.
                self.ep_mut(from)?.owed.remove(&debt);
                return Err(Errno::ECONNREFUSED);
            }
            ep.copies += 1;
            plan.push(Planned {
                ep: requester,
                role: Role::Requester,
                cause: None,
                uid: ep.creds.uid,
            });
        } else if msg.is_request() {
            let found = if self.ep(from)?.kbus_compat {
                self.index.replier_most_recent(&msg.name)
            } else {
                self.index.replier(&msg.name)
            };
            let (bid, replier) = found.ok_or(Errno::EADDRNOTAVAIL)?;
            self.peer = Some(replier);
            if msg.to != EndpointId::BUS && msg.to != replier {
                return Err(Errno::EPIPE);
            }
            let ep = self
                .endpoints
                .get_mut(&replier)
                .expect("bound endpoints exist");
            plan_required(plan, ep, replier, Role::Replier, Some(bid), msg.flags)
                .inspect_err(|_| self.blocker = Some(replier))?;
        }
        self.plan_listeners(&msg.name, when_full, plan)
    }

    /// Plans a copy for every listener binding matching `name` ("only once"
    /// endpoints get at most one copy of the message). On failure the plan
    /// still names every endpoint whose scratch counters were touched.
    #[inline]
    pub(super) fn plan_listeners(
        &mut self,
        name: &Arc<str>,
        when_full: WhenFull,
        plan: &mut Vec<Planned>,
    ) -> Result<(), Errno> {
        let mut r = Ok(());
        for &(bid, target) in self.index.listeners(name) {
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
                self.blocker = Some(target);
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
        r
    }

    /// Clears the scratch counters of every endpoint in a plan that will not
    /// be delivered (delivery clears them itself).
    pub(super) fn reset_plan(&mut self, plan: &[Planned]) {
        for p in plan {
            if let Some(ep) = self.endpoints.get_mut(&p.ep) {
                ep.planned = 0;
                ep.copies = 0;
            }
        }
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
