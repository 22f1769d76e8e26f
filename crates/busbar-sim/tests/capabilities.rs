//! Capabilities under the seeded scheduler: creates, multicasts, named
//! messages carrying handles, destroys and releases race across many
//! endpoints. Checked on every seed:
//! - every receiver sees messages in one order (ids increase in each queue);
//! - a node's destroy notices come after every message sent before the
//!   destroy, and no handle to a destroyed node arrives valid in a message
//!   sent after it;
//! - a handle a message delivers names the node it was sent for;
//! - when everyone has closed, no node, handle or quota charge is left.

use std::collections::HashMap;

use busbar_kernel::{
    BindArgs, BusId, EndpointId, Errno, HandleId, KernelConfig, Operations, Outgoing, Quota,
    SendArgs, synthetic,
};
use busbar_sim::{Sim, run_seeds};
use rand::Rng;
use rand::seq::IndexedRandom;

/// A node, as the test names it: (owner endpoint, owner's handle).
type NodeKey = (EndpointId, HandleId);

struct World {
    sim: Sim,
    bus: BusId,
    eps: Vec<EndpointId>,
    /// Each endpoint's handles: the node each one is for, and the
    /// references the endpoint knows it holds (one per message it read
    /// carrying the node, plus its creation). Handles are installed when a
    /// message is queued, so the kernel may count more (unread) references.
    handles: HashMap<EndpointId, HashMap<HandleId, (NodeKey, u32)>>,
    /// The serial the bus was at when each node was destroyed.
    destroyed_at: HashMap<NodeKey, u32>,
    /// The last id each endpoint received (order check).
    last_seen: HashMap<EndpointId, u32>,
    /// The nodes each accepted message carried, in order, by serial.
    carried: HashMap<u32, Vec<NodeKey>>,
    /// Every handle each endpoint ever had (ids are never reused), for
    /// notices about handles released since.
    ever: HashMap<(EndpointId, HandleId), NodeKey>,
}

impl World {
    fn next_serial(&mut self) -> u32 {
        self.sim
            .kernel
            .bus_stats(self.bus, EndpointId::BUS, ())
            .unwrap()
            .next_serial
    }

    fn pick_ep(&mut self) -> EndpointId {
        *self.eps.choose(&mut self.sim.rng).unwrap()
    }

    fn pick_handles(&mut self, ep: EndpointId, n: usize) -> Vec<HandleId> {
        let mut hs: Vec<HandleId> = self.handles[&ep].keys().copied().collect();
        hs.sort_unstable();
        let mut out = Vec::new();
        for _ in 0..n {
            if let Some(&h) = hs.choose(&mut self.sim.rng)
                && !out.contains(&h)
            {
                out.push(h);
            }
        }
        out
    }

    fn step(&mut self) {
        let ep = self.pick_ep();
        let bus = self.bus;
        match self.sim.rng.random_range(0..100) {
            0..10 => {
                if let Ok(h) = self.sim.kernel.create_node(bus, ep, ()) {
                    self.handles.get_mut(&ep).unwrap().insert(h, ((ep, h), 1));
                    assert!(
                        self.ever.insert((ep, h), (ep, h)).is_none(),
                        "handle id reused"
                    );
                }
            }
            10..35 => {
                // A named message carrying some handles.
                let carried = self.pick_handles(ep, 2);
                let nodes: Vec<NodeKey> = carried.iter().map(|h| self.handles[&ep][h].0).collect();
                let msg = Outgoing::announcement("$.share", &b""[..]).carrying(carried);
                match self.sim.kernel.send(
                    bus,
                    ep,
                    SendArgs {
                        message: msg,
                        deadline: None,
                    },
                ) {
                    Ok(id) => {
                        self.carried.insert(id.serial, nodes);
                    }
                    Err(Errno::EDQUOT) => {}
                    Err(e) => panic!("named send failed: {e}"),
                }
            }
            35..55 => {
                let to = self.pick_handles(ep, 3);
                if to.is_empty() {
                    return;
                }
                let carried = self.pick_handles(ep, 1);
                let nodes: Vec<NodeKey> = carried.iter().map(|h| self.handles[&ep][h].0).collect();
                let msg = Outgoing::to_handles(to, "$.call", &b""[..]).carrying(carried);
                match self.sim.kernel.send(
                    bus,
                    ep,
                    SendArgs {
                        message: msg,
                        deadline: None,
                    },
                ) {
                    Ok(id) => {
                        self.carried.insert(id.serial, nodes);
                    }
                    Err(Errno::EBUSY | Errno::EDQUOT) => {}
                    Err(e) => panic!("multicast failed: {e}"),
                }
            }
            55..62 => {
                // Destroy some of our own live nodes.
                let mine: Vec<HandleId> = self.handles[&ep]
                    .iter()
                    .filter(|(_, (n, _))| n.0 == ep && !self.destroyed_at.contains_key(n))
                    .map(|(h, _)| *h)
                    .collect();
                if let Some(&h) = mine.choose(&mut self.sim.rng) {
                    let at = self.next_serial();
                    self.sim.kernel.destroy_nodes(bus, ep, vec![h]).unwrap();
                    self.destroyed_at.insert((ep, h), at);
                }
            }
            62..75 => {
                // Release one reference we know we hold.
                let hs = self.pick_handles(ep, 1);
                if let Some(&h) = hs.first() {
                    match self.sim.kernel.release_handle(bus, ep, h) {
                        Ok(()) => {
                            let mine = self.handles.get_mut(&ep).unwrap();
                            let entry = mine.get_mut(&h).unwrap();
                            entry.1 -= 1;
                            if entry.1 == 0 {
                                mine.remove(&h);
                            }
                        }
                        Err(Errno::EBUSY) => {}
                        Err(e) => panic!("release of {h} by {ep} failed: {e}"),
                    }
                }
            }
            _ => self.receive(ep),
        }
    }

    fn receive(&mut self, ep: EndpointId) {
        let Some(m) = self.sim.kernel.recv(self.bus, ep, ()).unwrap() else {
            return;
        };
        // One order.
        let last = self.last_seen.entry(ep).or_insert(0);
        // Equal ids: one multicast reaching several of our nodes.
        assert!(
            *last <= m.id.serial,
            "endpoint {ep} saw {} after {}",
            m.id.serial,
            last
        );
        *last = m.id.serial;
        // Which nodes did the sender mean? Rebuild from the sender's view.
        if &*m.name == synthetic::NODE_DESTROYED {
            let Some(&node) = self.ever.get(&(ep, m.destination)) else {
                panic!(
                    "endpoint {ep}: destroy notice {m:?} for a handle it never learnt; it knows {:?}",
                    self.handles[&ep]
                );
            };
            let at = self.destroyed_at[&node];
            assert!(m.id.serial >= at, "destroy notice before the destroy");
            return;
        }
        if m.is_synthetic() {
            return;
        }
        if m.destination.is_valid() {
            let node = self.ever[&(ep, m.destination)];
            assert_eq!(node.0, ep, "a message to a node reaches its owner");
            if let Some(&at) = self.destroyed_at.get(&node) {
                assert!(
                    m.id.serial < at,
                    "a message sent to a destroyed node was delivered"
                );
            }
        }
        let sent = self.carried.get(&m.id.serial).cloned().unwrap_or_default();
        assert_eq!(sent.len(), m.handles.len(), "one handle per carried node");
        for (&h, &node) in m.handles.iter().zip(&sent) {
            let destroyed = self
                .destroyed_at
                .get(&node)
                .is_some_and(|&at| at <= m.id.serial);
            if destroyed {
                assert!(
                    !h.is_valid(),
                    "message {} sent after node {node:?} was destroyed carried a valid handle",
                    m.id.serial
                );
                continue;
            }
            assert!(h.is_valid(), "a live node's handle arrived invalid");
            // Coalesced: a known id must name the same node.
            let known = self
                .handles
                .get_mut(&ep)
                .unwrap()
                .entry(h)
                .or_insert((node, 0));
            assert_eq!(known.0, node, "handle {h} names two nodes");
            known.1 += 1;
            let ever = self.ever.entry((ep, h)).or_insert(node);
            assert_eq!(*ever, node, "handle id {h} reused for another node");
        }
    }
}

fn scenario(seed: u64) {
    // A finite quota, so accounting runs (and must end at zero).
    let config = KernelConfig {
        quota: Quota::default(),
        ..KernelConfig::default()
    };
    let mut sim = Sim::new(seed, config);
    let bus = BusId(0);
    let mut eps = Vec::new();
    let mut handles = HashMap::new();
    for _ in 0..8 {
        let ep = sim
            .kernel
            .open(bus, EndpointId::BUS, Default::default())
            .unwrap();
        sim.kernel.set_queue_limit(bus, ep, 50).unwrap();
        sim.kernel
            .bind(
                bus,
                ep,
                BindArgs {
                    name: "$.share".into(),
                    replier: false,
                },
            )
            .unwrap();
        eps.push(ep);
        handles.insert(ep, HashMap::new());
    }
    let mut w = World {
        sim,
        bus,
        eps,
        handles,
        destroyed_at: HashMap::new(),
        last_seen: HashMap::new(),
        carried: HashMap::new(),
        ever: HashMap::new(),
    };
    for _ in 0..600 {
        w.step();
    }
    // Drain everything, then close everyone: nothing may be left.
    for ep in w.eps.clone() {
        while w.sim.kernel.endpoint_stats(bus, ep, ()).unwrap().queued > 0 {
            w.receive(ep);
        }
    }
    for ep in w.eps.clone() {
        w.sim.kernel.close(bus, ep, ()).unwrap();
    }
    let q = w.sim.kernel.quota_stats(bus, EndpointId::BUS, ()).unwrap();
    assert!(
        q.users.is_empty(),
        "charges left after everyone closed: {:?}",
        q.users
    );
}

#[test]
fn capabilities_race_many_seeds() {
    run_seeds("capabilities_race_many_seeds", 1, 500, scenario);
}
