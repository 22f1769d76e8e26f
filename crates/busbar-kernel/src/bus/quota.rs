//! Quota accounting per (receiving user, sending user) pair: queued messages,
//! bytes, fds and held handles. Kept only while a quota is set (switching one
//! on recounts every queue and handle table); the bus's own messages are never
//! charged; an endpoint's `queued_bytes` is kept either way. check_quota:
//! O(recipients × receiving users), plus O(recipients × (recipients + carried
//! handles)) when the message carries handles.

use std::collections::HashMap;
use std::mem;

use crate::binding::{BindingId, MONITOR_COPY};
use crate::endpoint::Endpoint;
use crate::node::NodeId;
use crate::{EndpointId, Errno, Hasher, Host, Message, Outgoing, Quota, QuotaStats, UserUsage};

use super::Bus;
use super::route::{Planned, Role};

/// What each receiving user has charged, by uid.
/// What each (receiving user, sending user) pair has charged. Kept only
/// while a quota is set (`on`): with the unlimited quota the hot path does
/// no accounting at all, and setting a quota recounts from the queues.
#[derive(Debug)]
pub(super) struct Usage {
    pub(super) on: bool,
    pub(super) map: HashMap<(u32, u32), UserUsage, Hasher>,
}

/// Bytes a message is charged for.
pub(super) fn size_of_message(m: &Message) -> u64 {
    (m.name.len() + m.data.len()) as u64
}

/// File descriptors a message carries.
pub(super) fn fd_count(m: &Message) -> u32 {
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
#[inline]
pub(super) fn charge(usage: &mut Usage, ep: &mut Endpoint, m: &Message, cause: Option<BindingId>) {
    let size = size_of_message(m);
    ep.queued_bytes += size;
    if cause == Some(MONITOR_COPY) {
        ep.monitor_fds += u64::from(fd_count(m));
    } else if !m.is_synthetic() {
        let fds = fd_count(m);
        with_usage(usage, ep.creds.uid, m.creds.uid, |u| {
            u.messages += 1;
            u.bytes += size;
            u.fds += fds;
        });
    }
}

/// Refunds a message that left its receiver's queue.
#[inline]
pub(super) fn uncharge(
    usage: &mut Usage,
    ep: &mut Endpoint,
    m: &Message,
    cause: Option<BindingId>,
) {
    let size = size_of_message(m);
    ep.queued_bytes -= size;
    if cause == Some(MONITOR_COPY) {
        ep.monitor_fds -= u64::from(fd_count(m));
    } else if !m.is_synthetic() {
        let fds = fd_count(m);
        with_usage(usage, ep.creds.uid, m.creds.uid, |u| {
            u.messages -= 1;
            u.bytes -= size;
            u.fds -= fds;
        });
    }
}

/// Charges (`+1`) or refunds (`-1`) one handle held by `uid`, on `by`'s account.
pub(super) fn charge_handle(usage: &mut Usage, uid: u32, by: u32, delta: i32) {
    with_usage(usage, uid, by, |u| {
        u.handles = u.handles.saturating_add_signed(delta)
    });
}

impl Bus {
    /// Would the planned copies keep every receiving user within its quota?
    /// `EDQUOT` if not (the whole send fails).
    /// `by` is the sending user: each copy is charged on its account.
    pub(super) fn check_quota(
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
        let mut seen: std::collections::HashSet<EndpointId, Hasher> =
            std::collections::HashSet::with_hasher(self.hasher.clone());
        for p in plan.iter().filter(|p| p.role != Role::Lost) {
            let new_handles = if carried.is_empty() || !seen.insert(p.ep) {
                0
            } else {
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
            let charged = |q: &&crate::endpoint::Queued| {
                !q.msg.is_synthetic() && q.cause != Some(MONITOR_COPY)
            };
            for q in ep.queue.iter().filter(charged) {
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
}
