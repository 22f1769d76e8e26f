//! `ALL_OR_WAIT` sends that found a full queue: at most one per endpoint.
//! Each is indexed by what can change its fate, so nothing scans every
//! pending send:
//! - its blocker (the endpoint whose full queue it waits for): after an
//!   operation of E (the only way E's queue gets room), sends blocked on E
//!   are retried oldest first while E has room: O(log n + retries);
//! - its peer (a request's replier, a reply's requester): when the peer
//!   closes or unbinds, they are retried (they fail, or go elsewhere);
//! - a request's name: when a replier binds a pattern, pending requests to
//!   names it matches are retried (a stateful one now fails `EPIPE`):
//!   O(log n + names under the pattern's prefix);
//! - its deadline: next_deadline O(1), expire O(log n) per expired send.
//!
//! While it waits, its payload is charged to the sending user: one user's
//! pending sends together hold at most the quota's bytes and fds (a send
//! that would pass them fails `EDQUOT` instead of going pending).
//!
//! A finished send leaves its outcome to take and makes the endpoint
//! readable; a failed request gets a synthetic reply; an expired one
//! (`ETIMEDOUT`) was never sent and gets none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem;
use std::sync::Arc;

use crate::endpoint::{Pending, SendState};
use crate::message::synthetic;
use crate::name::PatternKind;
use crate::{EndpointId, Errno, Host, Nanos, SendOutcome};

use super::Bus;

type BySeq = BTreeMap<u64, EndpointId>;

/// Pending sends by blocker, by peer, by request name and by deadline.
#[derive(Debug, Default)]
pub(crate) struct PendingIndex {
    next_seq: u64,
    by_blocker: HashMap<EndpointId, BySeq, foldhash::fast::RandomState>,
    by_peer: HashMap<EndpointId, BySeq, foldhash::fast::RandomState>,
    requests_by_name: BTreeMap<(Arc<str>, u64), EndpointId>,
    deadlines: BTreeSet<(Nanos, u64, EndpointId)>,
    /// Payload bytes and fds held by each sending user's pending sends.
    held: HashMap<u32, (u64, u64), foldhash::fast::RandomState>,
    len: usize,
}

fn payload(msg: &crate::Outgoing) -> (u64, u64) {
    let bytes = (msg.name.len() + msg.data.len()) as u64;
    (bytes, msg.attached_fds().map_or(0, |a| u64::from(a.count)))
}

fn index_in(
    map: &mut HashMap<EndpointId, BySeq, foldhash::fast::RandomState>,
    key: EndpointId,
    seq: u64,
    sender: EndpointId,
) {
    map.entry(key).or_default().insert(seq, sender);
}

fn unindex_in(
    map: &mut HashMap<EndpointId, BySeq, foldhash::fast::RandomState>,
    key: EndpointId,
    seq: u64,
) {
    if let Some(m) = map.get_mut(&key) {
        m.remove(&seq);
        if m.is_empty() {
            map.remove(&key);
        }
    }
}

impl PendingIndex {
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Whether `uid` may have one more send pending with this payload: its
    /// pending sends together stay within the quota's bytes and fds.
    pub fn fits(&self, uid: u32, msg: &crate::Outgoing, quota: &crate::Quota) -> bool {
        let (bytes, fds) = payload(msg);
        let (b, f) = self.held.get(&uid).copied().unwrap_or_default();
        b + bytes <= quota.bytes && f + fds <= u64::from(quota.fds)
    }

    pub fn insert(&mut self, sender: EndpointId, p: &Pending) {
        let (bytes, fds) = payload(&p.msg);
        let h = self.held.entry(p.uid).or_default();
        h.0 += bytes;
        h.1 += fds;
        index_in(&mut self.by_blocker, p.blocked_on, p.seq, sender);
        if let Some(peer) = p.peer {
            index_in(&mut self.by_peer, peer, p.seq, sender);
        }
        if p.msg.is_request() {
            self.requests_by_name
                .insert((p.msg.name.clone(), p.seq), sender);
        }
        if let Some(d) = p.deadline {
            self.deadlines.insert((d, p.seq, sender));
        }
        self.len += 1;
    }

    pub fn remove(&mut self, sender: EndpointId, p: &Pending) {
        let (bytes, fds) = payload(&p.msg);
        if let Some(h) = self.held.get_mut(&p.uid) {
            h.0 -= bytes;
            h.1 -= fds;
            if *h == (0, 0) {
                self.held.remove(&p.uid);
            }
        }
        unindex_in(&mut self.by_blocker, p.blocked_on, p.seq);
        if let Some(peer) = p.peer {
            unindex_in(&mut self.by_peer, peer, p.seq);
        }
        if p.msg.is_request() {
            self.requests_by_name.remove(&(p.msg.name.clone(), p.seq));
        }
        if let Some(d) = p.deadline {
            self.deadlines.remove(&(d, p.seq, sender));
        }
        self.len -= 1;
    }

    /// The oldest send blocked on `blocker` that went pending after `seq`
    /// (a retried send keeps its `seq`, so a cursor passes it once).
    fn blocked_on_after(&self, blocker: EndpointId, seq: u64) -> Option<(u64, EndpointId)> {
        self.by_blocker
            .get(&blocker)?
            .range(seq + 1..)
            .next()
            .map(|(&s, &e)| (s, e))
    }

    /// Senders of pending requests to names matching a pattern, oldest first.
    fn requests_matching(&self, kind: PatternKind, prefix: &str) -> Vec<EndpointId> {
        let from: Arc<str> = Arc::from(prefix);
        let mut v: Vec<(u64, EndpointId)> = self
            .requests_by_name
            .range((from, 0)..)
            .take_while(|((name, _), _)| name.starts_with(prefix))
            .filter(|((name, _), _)| {
                let rest = &name[prefix.len()..];
                match kind {
                    PatternKind::Exact => rest.is_empty(),
                    PatternKind::OneWord => rest.starts_with('.') && !rest[1..].contains('.'),
                    PatternKind::AnyWords => rest.starts_with('.'),
                }
            })
            .map(|((_, seq), &sender)| (*seq, sender))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// Senders related to `ep` as blocker or peer, oldest first.
    fn related_to(&self, ep: EndpointId) -> Vec<EndpointId> {
        let mut v: Vec<(u64, EndpointId)> = [&self.by_blocker, &self.by_peer]
            .into_iter()
            .filter_map(|m| m.get(&ep))
            .flat_map(|m| m.iter().map(|(&s, &e)| (s, e)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(|(_, s)| s).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Bus {
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn discard_send<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        let p = match mem::take(&mut ep.send) {
            SendState::Pending(p) => p,
            other => {
                // Idle or Done: put back what was there.
                ep.send = other;
                return Ok(false);
            }
        };
        ep.outstanding.remove(&p.id);
        self.pending.remove(id, &p);
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

    /// After an operation of `endpoint`: retries the sends waiting for room
    /// there, and at endpoints the operation made room at in passing.
    pub(crate) fn retry_after_operation<H: Host>(&mut self, host: &mut H, endpoint: EndpointId) {
        if self.pending.is_empty() {
            self.room_freed.clear();
            return;
        }
        self.retry_blocked_on(host, endpoint);
        while let Some(ep) = self.room_freed.pop() {
            self.retry_blocked_on(host, ep);
        }
    }

    /// Retries the sends blocked on `blocker`, oldest first, while it has
    /// room. Called after every operation of `blocker`.
    /// Each is retried at most once per call (one that needs more room
    /// than there is waits again).
    pub(crate) fn retry_blocked_on<H: Host>(&mut self, host: &mut H, blocker: EndpointId) {
        let mut after = 0;
        while let Some((seq, sender)) = self.pending.blocked_on_after(blocker, after) {
            if self.endpoints.get(&blocker).is_some_and(|b| !b.has_room()) {
                return;
            }
            after = seq;
            self.retry_sender(host, sender);
        }
    }

    /// Retries every send that waits for `ep` or is addressed through it
    /// (`ep` closed or unbound).
    pub(crate) fn retry_related_to<H: Host>(&mut self, host: &mut H, ep: EndpointId) {
        if self.pending.is_empty() {
            return;
        }
        for sender in self.pending.related_to(ep) {
            self.retry_sender(host, sender);
        }
    }

    /// Retries pending requests to names a new replier pattern matches.
    pub(crate) fn retry_requests_matching<H: Host>(
        &mut self,
        host: &mut H,
        kind: PatternKind,
        prefix: &str,
    ) {
        if self.pending.is_empty() {
            return;
        }
        for sender in self.pending.requests_matching(kind, prefix) {
            self.retry_sender(host, sender);
        }
    }

    /// Routes one pending send again: delivered, still waiting (re-indexed
    /// by its new blocker), or failed.
    fn retry_sender<H: Host>(&mut self, host: &mut H, sender: EndpointId) {
        let Some(ep) = self.endpoints.get_mut(&sender) else {
            return;
        };
        let SendState::Pending(p) = mem::take(&mut ep.send) else {
            return;
        };
        let creds = ep.creds;
        self.pending.remove(sender, &p);
        let Pending { msg, .. } = p;
        match self.route(host, sender, creds, msg, p.id, true) {
            Ok(()) => {
                if let Some(ep) = self.endpoints.get_mut(&sender) {
                    ep.sent += 1;
                }
                let outcome = SendOutcome {
                    id: p.id,
                    result: Ok(()),
                };
                self.finish_send(host, sender, outcome);
            }
            Err((Errno::EAGAIN, msg)) => {
                let p = Pending {
                    msg,
                    blocked_on: self.blocker.unwrap_or(EndpointId::BUS),
                    peer: self.peer,
                    ..p
                };
                self.pending.insert(sender, &p);
                if let Some(ep) = self.endpoints.get_mut(&sender) {
                    ep.send = SendState::Pending(p);
                }
            }
            Err((e, msg)) => self.fail_pending(host, sender, Pending { msg, ..p }, e),
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
        match outcome.result {
            Ok(()) => self.counters.sent += 1,
            Err(e) => self.counters.refuse(e),
        }
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.send = SendState::Done(outcome);
            ep.readable = true;
            host.wake(self.id, id, ep.host_token, true);
        }
    }

    /// The earliest deadline of a pending send.
    pub(crate) fn next_deadline(&self) -> Option<Nanos> {
        self.pending.deadlines.first().map(|d| d.0)
    }

    /// Ends pending sends whose deadline has passed (outcome `ETIMEDOUT`;
    /// the message was never sent, so it gets no reply). A request's
    /// reserved reply slot is freed, so sends blocked on its sender retry.
    pub(crate) fn expire<H: Host>(&mut self, host: &mut H, now: Nanos) {
        while let Some(&(d, _, sender)) = self.pending.deadlines.first() {
            if d > now {
                break;
            }
            let Some(ep) = self.endpoints.get_mut(&sender) else {
                self.pending.deadlines.pop_first();
                continue;
            };
            let SendState::Pending(p) = mem::take(&mut ep.send) else {
                self.pending.deadlines.pop_first();
                continue;
            };
            ep.outstanding.remove(&p.id);
            self.pending.remove(sender, &p);
            let outcome = SendOutcome {
                id: p.id,
                result: Err(Errno::ETIMEDOUT),
            };
            self.finish_send(host, sender, outcome);
            self.retry_blocked_on(host, sender);
        }
    }
}
