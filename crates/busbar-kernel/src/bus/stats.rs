//! Settings (queue limit, only-once, maximum message size) and queries (the
//! replier for a name, endpoint and bus statistics). Setters return the
//! previous value; lowering a limit removes nothing already queued.
//! endpoint_stats: O(the endpoint's handles); bus_stats: O(endpoints ·
//! log endpoints + handles); list_bindings: O(log bindings + page);
//! pattern_replier: O(1).

use std::mem;
use std::sync::Arc;

use crate::binding::BindingId;
use crate::name::check_message_name;
use crate::{
    BindingInfo, BusInfo, BusStats, EndpointId, EndpointStats, Errno, Host, LIST_BINDINGS_PAGE,
};

use super::{Bus, MIN_MAX_MESSAGE_SIZE};

impl Bus {
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

    pub(crate) fn set_kbus_compat<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        on: bool,
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        Ok(mem::replace(&mut ep.kbus_compat, on))
    }

    pub(crate) fn list_bindings<H: Host>(
        &mut self,
        _: &mut H,
        after: BindingId,
    ) -> Result<Vec<BindingInfo>, Errno> {
        Ok(self
            .index
            .after(after)
            .take(LIST_BINDINGS_PAGE)
            .map(|(id, b)| {
                let creds = self.endpoints.get(&b.endpoint).map(|e| e.creds);
                BindingInfo {
                    id,
                    endpoint: b.endpoint,
                    pid: creds.map_or(0, |c| c.pid),
                    uid: creds.map_or(0, |c| c.uid),
                    replier: b.replier,
                    name: b.pattern.clone(),
                }
            })
            .collect())
    }

    pub(crate) fn pattern_replier<H: Host>(
        &mut self,
        _: &mut H,
        pattern: Arc<str>,
    ) -> Result<Option<EndpointId>, Errno> {
        let p = crate::name::parse_pattern(&pattern)?;
        Ok(self
            .index
            .replier_for_pattern(p.kind, p.prefix)
            .map(|(_, ep)| ep))
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
            last_sent: ep.last_sent,
            kbus_compat: ep.kbus_compat,
        })
    }

    pub(crate) fn bus_info<H: Host>(
        &mut self,
        host: &mut H,
        buses: u32,
        _: (),
    ) -> Result<BusInfo, Errno> {
        let h = host.stats();
        Ok(BusInfo {
            connections: h.connections,
            fds_held: h.fds_held,
            bus: self.id,
            buses,
            max_message_size: self.max_message_size,
            absolute_max_message_size: self.config.absolute_max_message_size,
            replier_bind_events: self.bind_events,
        })
    }

    pub(crate) fn bus_stats<H: Host>(&mut self, _: &mut H, _: ()) -> Result<BusStats, Errno> {
        let mut ids: Vec<EndpointId> = self.endpoints.keys().collect();
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
            counters: self.counters.snapshot(
                self.endpoints.values().map(|e| e.delivered).sum(),
                self.endpoints.values().map(|e| e.lost_total).sum(),
            ),
        })
    }
}
