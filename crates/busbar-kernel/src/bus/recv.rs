//! Receiving: taking messages off an endpoint's queue, and its readiness
//! (queued messages, set-aside events or a finished pending send), re-checked
//! after each take and reported to the host on a change. A request taken by
//! its replier becomes owed. recv: O(1), plus the set-aside list while events
//! wait there; recv_batch stops at `max` messages or [`RECV_BATCH_BYTES`];
//! take_reply: O(queue).

use crate::binding::BindingId;
use crate::endpoint::Endpoint;
use crate::{EndpointId, Errno, Host, Message, MessageId};

use super::quota::{Usage, size_of_message, uncharge};
use super::{Bus, RECV_BATCH_BYTES};

impl Bus {
    pub(super) fn update_readiness<H: Host>(&mut self, host: &mut H, id: EndpointId) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            let now = ep.is_readable();
            if ep.readable != now {
                ep.readable = now;
                host.wake(self.id, id, ep.host_token, now);
            }
        }
    }

    pub(crate) fn recv<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<Option<Message>, Errno> {
        let ep = self.endpoints.get_mut(&id).ok_or(Errno::ENOENT)?;
        let q = match ep.queue.pop_front() {
            // The common case, with the endpoint in hand: no set-aside
            // events (else `taken` does the whole bookkeeping).
            Some(q) if ep.set_aside == 0 => {
                took(ep, &mut self.usage, &q.msg, q.cause);
                let now = ep.is_readable();
                if ep.readable != now {
                    ep.readable = now;
                    host.wake(self.id, id, ep.host_token, now);
                }
                return Ok(Some(q.msg));
            }
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
        self.taken(host, id, &q.msg, q.cause);
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
                    // Handles travel as 8 bytes each: they count too.
                    bytes += size_of_message(&m) + 8 * m.handles.len() as u64;
                    out.push(m);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Bookkeeping after `msg` left `id`'s queue: a replier's request
    /// becomes owed; a set-aside event may move in; readiness is updated.
    fn taken<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        msg: &Message,
        cause: Option<BindingId>,
    ) {
        let bus = self.id;
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        took(ep, &mut self.usage, msg, cause);
        if ep.set_aside > 0 {
            self.feed_set_aside(host, id, false);
            self.update_readiness(host, id);
            return;
        }
        let now = ep.is_readable();
        if ep.readable != now {
            ep.readable = now;
            host.wake(bus, id, ep.host_token, now);
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
                self.taken(host, id, &q.msg, q.cause);
                Ok(Some(q.msg))
            }
            None if ep.outstanding.contains(&request) => Ok(None),
            None => Err(Errno::EINVAL),
        }
    }
}

/// What taking `msg` off `ep`'s queue changes in the endpoint: a replier's
/// request becomes owed; the counters and the quota are refunded.
fn took(ep: &mut Endpoint, usage: &mut Usage, msg: &Message, cause: Option<BindingId>) {
    if msg.wants_us_to_reply() {
        ep.owed.insert((msg.id, msg.from));
    }
    ep.received += 1;
    uncharge(usage, ep, msg, cause);
}
