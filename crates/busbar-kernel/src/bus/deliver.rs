//! Delivery: queuing every planned copy of a message, each with what is
//! particular to its receiver (its role's flags, its own handles to carried
//! nodes, its loss report), and waking the receivers.
//!
//! A message is moved as few times as it can be on this path (the last copy
//! is the original; small fields are written into the queued copy): copying
//! a message just written, in wider pieces than it was written in, stalls
//! the CPU (see BENCHMARKS.md, in-process). deliver: O(planned copies ×
//! carried handles + monitors).

use std::mem;

use crate::binding::BindingId;
use crate::endpoint::{Endpoint, Queued};
use crate::node::NodeId;
use crate::{BusId, EndpointId, Flags, HandleId, Host, Message};

use super::Bus;
use super::quota::{Usage, charge};
use super::route::{Planned, Role};

impl Bus {
    /// Queues every planned copy of `base` (and clears the scratch
    /// counters); each receiver gets its own handles to the `carried` nodes.
    pub(super) fn deliver<H: Host>(
        &mut self,
        host: &mut H,
        base: Message,
        plan: &[Planned],
        urgent: bool,
        carried: &[NodeId],
    ) {
        // A message to nodes (marked by `route`) reaches only their
        // owners: no monitor copy.
        if base.destination == HandleId::INVALID && !self.monitors.is_empty() {
            self.copy_to_monitors(host, &base);
        }
        // Every copy but the last is a clone; the last is the original
        // (moved as few times as can be: each move of a message just
        // written costs more than its size suggests).
        let Some((last, others)) = plan.split_last() else {
            return;
        };
        for p in others {
            if self.take_planned(p) {
                self.deliver_copy(host, p, base.clone(), urgent, carried);
            }
        }
        if self.take_planned(last) {
            self.deliver_copy(host, last, base, urgent, carried);
        }
    }

    /// Clears `p`'s scratch counters; true if its copy is to be queued,
    /// false if it is lost (counted here) or its endpoint has gone.
    #[inline]
    fn take_planned(&mut self, p: &Planned) -> bool {
        let Some(ep) = self.endpoints.get_mut(&p.ep) else {
            return false;
        };
        ep.planned = 0;
        ep.copies = 0;
        if p.role == Role::Lost {
            ep.lost_unreported += 1;
            ep.lost_total += 1;
            return false;
        }
        true
    }

    /// Queues one planned copy `m`, with what is particular to its receiver.
    #[inline]
    fn deliver_copy<H: Host>(
        &mut self,
        host: &mut H,
        p: &Planned,
        mut m: Message,
        urgent: bool,
        carried: &[NodeId],
    ) {
        let bus = self.id;
        {
            let Some(ep) = self.endpoints.get_mut(&p.ep) else {
                return;
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
        }
        if !carried.is_empty() {
            let by = m.creds.uid;
            m.handles = carried
                .iter()
                .map(|&n| self.install_handle(p.ep, n, by))
                .collect();
        }
        if let Some(ep) = self.endpoints.get_mut(&p.ep) {
            push_into(ep, &mut self.usage, host, (bus, p.ep), m, p.cause, urgent);
        }
    }

    pub(super) fn push<H: Host>(
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
}

/// Queues `msg` on `ep` (front if urgent), attaching its unreported losses,
/// and wakes its waiter.
pub(super) fn push_into<H: Host>(
    ep: &mut Endpoint,
    usage: &mut Usage,
    host: &mut H,
    (bus, id): (BusId, EndpointId),
    msg: Message,
    cause: Option<BindingId>,
    urgent: bool,
) {
    ep.delivered += 1;
    charge(usage, ep, &msg, cause);
    let q = Queued { msg, cause };
    // The loss report is written in place, once queued (not into the
    // message on its way there: see `deliver`).
    let lost = mem::take(&mut ep.lost_unreported);
    let queued = if urgent {
        ep.queue.push_front(q);
        ep.queue.front_mut()
    } else {
        ep.queue.push_back(q);
        ep.queue.back_mut()
    };
    if let Some(q) = queued {
        q.msg.lost = lost;
    }
    ep.readable = true;
    host.wake(bus, id, ep.host_token, true);
}
