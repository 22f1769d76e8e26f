//! Bindings and replier bind events. At most one replier per pattern; an
//! unbind removes the queued copies its binding caused (unread requests are
//! answered `Unbound`). With events on, a replier (un)bind reaches every
//! listener or fails `EAGAIN`; at close, copies that do not fit go, in order,
//! to a bounded set-aside list (on overflow: `UnbindEventsLost`). bind: O(1)
//! plus the event; unbind: O(endpoint's bindings + queue + set-aside list).

use std::mem;
use std::sync::Arc;

use bytes::Bytes;

use crate::binding::{Binding, BindingId};
use crate::message::synthetic;
use crate::name::{PatternKind, parse_pattern, pattern_matches};
use crate::{BindArgs, EndpointId, Errno, Flags, Host, Level, Message, ReplierBindEvent};

use super::Bus;
use super::quota::uncharge;
use super::route::{Role, WhenFull};

impl Bus {
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
        if args.replier {
            // Pending requests to names it now serves change replier.
            let p = parse_pattern(&args.name)?;
            self.retry_requests_matching(host, p.kind, p.prefix);
        }
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
        // Sends waiting for it (as listener or replier) may now go, or fail.
        self.retry_related_to(host, id);
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
                uncharge(&mut self.usage, ep, &q.msg, q.cause);
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

    fn bind_event_message(&mut self, is_bind: bool, binder: EndpointId, pattern: &str) -> Message {
        let data = ReplierBindEvent {
            is_bind,
            binder,
            name: pattern.to_owned(),
        }
        .encode();
        self.synthetic_message(synthetic::REPLIER_BIND_EVENT, data, Flags::ALL_OR_FAIL)
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
            &synthetic::REPLIER_BIND_EVENT.into(),
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
    pub(super) fn bind_event_on_close<H: Host>(
        &mut self,
        host: &mut H,
        binder: EndpointId,
        pattern: &str,
    ) {
        let mut plan = mem::take(&mut self.plan);
        plan.clear();
        let _ = self.plan_listeners(
            &synthetic::REPLIER_BIND_EVENT.into(),
            WhenFull::Skip,
            &mut plan,
        );
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
            let lost = match &self.tragic_lost {
                Some(m) => m.clone(),
                None => {
                    let m = self.synthetic_message(
                        synthetic::UNBIND_EVENTS_LOST,
                        Bytes::new(),
                        Flags::empty(),
                    );
                    self.tragic_lost = Some(m.clone());
                    m
                }
            };
            self.set_aside.push_back((id, lost));
        }
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.set_aside += 1;
            // Something new to take, whatever the level was (a pending
            // send's outcome may have kept it up while a receive waits).
            ep.readable = true;
            host.wake(self.id, id, ep.host_token, true);
        }
    }

    /// Moves the oldest set-aside event for `id` into its queue, if it has
    /// room (or unconditionally with `force`, used when the queue is empty).
    pub(super) fn feed_set_aside<H: Host>(&mut self, host: &mut H, id: EndpointId, force: bool) {
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

    pub(super) fn drop_set_aside(&mut self, id: EndpointId) {
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
            self.tragic_lost = None;
        }
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
}
