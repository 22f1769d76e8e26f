//! Nodes and handles (capabilities, see `node`): creating and destroying
//! nodes, installing, releasing and dropping handles, and the notices that tell
//! an owner its node is released or holders that it is destroyed. An endpoint
//! holds at most one (reference-counted) handle per node; the owner's is pinned
//! while the node lives; a node nobody holds is forgotten. install_handle: O(1)
//! (plus the owner's queue to withdraw a notice); drop_handle: O(holders).

use bytes::Bytes;

use crate::endpoint::Endpoint;
use crate::message::synthetic;
use crate::node::{HandleRef, Node, NodeId};
use crate::{EndpointId, Errno, Flags, HandleId, Host, MessageId};

use super::Bus;
use super::quota::{charge_handle, uncharge};

impl Bus {
    /// The nodes behind `handles` in `ep`'s table (`ENOENT` for a handle it
    /// does not hold).
    pub(super) fn nodes_of(
        &self,
        ep: &Endpoint,
        handles: &[HandleId],
    ) -> Result<Vec<NodeId>, Errno> {
        handles
            .iter()
            .map(|h| ep.handles.get(h).map(|r| r.node).ok_or(Errno::ENOENT))
            .collect()
    }

    /// Gives `id` a reference to `node` (a new handle or one more reference
    /// on its existing one). A destroyed node gives `HandleId::INVALID`.
    pub(super) fn install_handle(&mut self, id: EndpointId, node: NodeId, by: u32) -> HandleId {
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
                uncharge(&mut self.usage, o, &q.msg, q.cause);
                self.room_freed.push(owner);
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
        // Node notices, like messages to nodes, reach only their holder:
        // no monitor copy.
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
    pub(super) fn close_handles<H: Host>(&mut self, host: &mut H, ep: &Endpoint, id: EndpointId) {
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
}
