//! Many endpoints on two buses, driven by a seeded scheduler with a fake
//! clock: requesters (some with `ALL_OR_WAIT` and deadlines), repliers that
//! answer, ignore, unbind and close, listeners with tiny queues, churn.
//!
//! Checked on every seed:
//! - every accepted request gets exactly one reply (real or synthetic);
//! - an actor blocked waiting is woken only by the kernel's wake-ups, and when
//!   everything is idle no blocked actor has something to take (no missed
//!   wake-up);
//! - each receiver's messages (except urgent ones and sends that went
//!   pending) arrive in increasing id order: one total order;
//! - no queue exceeds its limit;
//! - lost copies are counted: every listener's `lost` reports sum to its stats.

use std::collections::{HashMap, HashSet};

use busbar_kernel::{
    BindArgs, BusId, EndpointId, Errno, Flags, KernelConfig, Message, MessageId, Operations,
    Outgoing, SendArgs,
};
use busbar_sim::{Sim, run_seeds};
use rand::Rng;
use rand::seq::IndexedRandom;

const NAMES: &[&str] = &["$.svc.a", "$.svc.b", "$.svc.c.x", "$.svc.c.y", "$.news.d"];
const REPLIER_PATTERNS: &[&str] = &["$.svc.a", "$.svc.b", "$.svc.c.%", "$.svc.*"];
const LISTEN_PATTERNS: &[&str] = &["$.svc.a", "$.svc.*", "$.news.%", "$.*", "$.svc.c.x"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Requester,
    Replier,
    Listener,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Blocked {
    No,
    /// Waiting for the reply to this request.
    Reply(MessageId),
    /// Waiting for a pending send's outcome.
    Outcome,
    /// Waiting for any message.
    Message,
}

#[derive(Debug)]
struct Actor {
    bus: BusId,
    ep: EndpointId,
    role: Role,
    blocked: Blocked,
    /// A wake-up arrived since it blocked.
    woken: bool,
    /// Accepted requests whose reply has not been taken.
    awaiting: HashSet<MessageId>,
    /// Replies taken, by request (must stay at one each).
    replies: HashMap<MessageId, u32>,
    /// The last non-urgent id received that came from a plain (never
    /// pending) send or the bus itself.
    last_ordered: Option<MessageId>,
    lost_reported: u64,
    open: bool,
}

struct World {
    sim: Sim,
    actors: Vec<Actor>,
    /// Ids of sends that went pending (their position is not their id).
    pending_ids: HashSet<(BusId, MessageId)>,
    /// Every request accepted, with its requester actor.
    accepted: Vec<(usize, MessageId)>,
}

impl World {
    fn k(&mut self) -> &mut busbar_kernel::Kernel<busbar_sim::SimHost> {
        &mut self.sim.kernel
    }

    fn open_actor(&mut self, bus: BusId, role: Role) -> usize {
        let ep = self
            .k()
            .open(bus, EndpointId::BUS, Default::default())
            .unwrap();
        let limit = match role {
            Role::Listener => self.sim.rng.random_range(1..4),
            _ => self.sim.rng.random_range(2..6),
        };
        self.k().set_queue_limit(bus, ep, limit).unwrap();
        self.actors.push(Actor {
            bus,
            ep,
            role,
            blocked: Blocked::No,
            woken: false,
            awaiting: HashSet::new(),
            replies: HashMap::new(),
            last_ordered: None,
            lost_reported: 0,
            open: true,
        });
        self.actors.len() - 1
    }

    /// Applies recorded wake-ups: a blocked actor becomes runnable only here.
    fn deliver_wakes(&mut self) {
        for w in self.sim.take_wakes() {
            if !w.readable {
                continue;
            }
            for a in &mut self.actors {
                if a.open && a.bus == w.bus && a.ep == w.endpoint {
                    a.woken = true;
                }
            }
        }
    }

    fn check_limits(&mut self) {
        for i in 0..self.actors.len() {
            let (bus, ep, open) = (self.actors[i].bus, self.actors[i].ep, self.actors[i].open);
            if !open {
                continue;
            }
            let s = self.k().endpoint_stats(bus, ep, ()).unwrap();
            assert!(
                s.queued + s.outstanding_requests <= s.queue_limit,
                "endpoint {ep} over its limit: {s:?}"
            );
        }
    }

    fn observe(&mut self, i: usize, m: &Message) {
        let a = &mut self.actors[i];
        a.lost_reported += u64::from(m.lost);
        let ordered = !m.is_urgent()
            && !self.pending_ids.contains(&(a.bus, m.id))
            && &*m.name != busbar_kernel::synthetic::REPLIER_BIND_EVENT;
        if ordered {
            if let Some(prev) = a.last_ordered {
                // Equal ids are the copies of one message through several bindings.
                assert!(
                    prev <= m.id,
                    "endpoint {} saw {} after {}",
                    a.ep,
                    m.id,
                    prev
                );
            }
            a.last_ordered = Some(m.id);
        }
        if m.is_reply() && m.to == a.ep && a.awaiting.remove(&m.in_reply_to) {
            *a.replies.entry(m.in_reply_to).or_default() += 1;
        } else if m.is_reply() && m.to == a.ep && a.replies.contains_key(&m.in_reply_to) {
            panic!("endpoint {} got a second reply to {}", a.ep, m.in_reply_to);
        }
    }

    fn step(&mut self, i: usize) {
        let (bus, ep, role) = (self.actors[i].bus, self.actors[i].ep, self.actors[i].role);
        // A blocked actor that was woken re-checks what it waits for.
        self.actors[i].woken = false;
        match self.actors[i].blocked.clone() {
            Blocked::Reply(id) => {
                self.actors[i].blocked = Blocked::No;
                match self.k().take_reply(bus, ep, id).unwrap() {
                    Some(m) => self.observe(i, &m),
                    None => self.actors[i].blocked = Blocked::Reply(id),
                }
                return;
            }
            Blocked::Outcome => {
                self.actors[i].blocked = Blocked::No;
                match self.k().take_send_outcome(bus, ep, ()).unwrap() {
                    Some(o) if o.result == Err(Errno::ETIMEDOUT) => {
                        // Never sent, so no reply will come.
                        self.actors[i].awaiting.remove(&o.id);
                        self.accepted.retain(|&(a, id)| !(a == i && id == o.id));
                    }
                    // Delivered, or failed with a synthetic reply queued:
                    // look for the reply now (it may already be here).
                    Some(o) => match self.k().take_reply(bus, ep, o.id).unwrap() {
                        Some(m) => self.observe(i, &m),
                        None => self.actors[i].blocked = Blocked::Reply(o.id),
                    },
                    None => self.actors[i].blocked = Blocked::Outcome,
                }
                return;
            }
            Blocked::Message | Blocked::No => self.actors[i].blocked = Blocked::No,
        }
        let r: u32 = self.sim.rng.random_range(0..100);
        match role {
            Role::Requester => {
                if r < 10 {
                    // Take whatever is queued (late replies, etc.).
                    if let Some(m) = self.k().recv(bus, ep, ()).unwrap() {
                        self.observe(i, &m);
                    }
                    return;
                }
                let name = *NAMES.choose(&mut self.sim.rng).unwrap();
                let mut msg = Outgoing::request(name, &b"q"[..]);
                let wait = r < 40;
                if wait {
                    msg = msg.with_flags(Flags::ALL_OR_WAIT);
                }
                let deadline = (wait && r < 25)
                    .then(|| self.sim.kernel.host().now + self.sim.rng.random_range(1_000..20_000));
                match self.k().send(
                    bus,
                    ep,
                    SendArgs {
                        message: msg,
                        deadline,
                    },
                ) {
                    Ok(id) => {
                        self.actors[i].awaiting.insert(id);
                        self.accepted.push((i, id));
                        self.actors[i].blocked = Blocked::Reply(id);
                    }
                    Err(Errno::EAGAIN) => {
                        let id = self
                            .k()
                            .endpoint_stats(bus, ep, ())
                            .unwrap()
                            .pending_send
                            .unwrap();
                        self.pending_ids.insert((bus, id));
                        self.actors[i].awaiting.insert(id);
                        self.accepted.push((i, id));
                        self.actors[i].blocked = Blocked::Outcome;
                    }
                    Err(Errno::EADDRNOTAVAIL | Errno::EBUSY | Errno::ENOLCK) => {}
                    Err(e) => panic!("unexpected send error {e}"),
                }
            }
            Role::Replier => {
                if r < 3 {
                    self.close(i);
                    let j = self.open_actor(bus, Role::Replier);
                    self.bind_replier(j);
                    return;
                }
                if r < 8 {
                    let p = *REPLIER_PATTERNS.choose(&mut self.sim.rng).unwrap();
                    let _ = self.k().unbind(
                        bus,
                        ep,
                        BindArgs {
                            name: p.into(),
                            replier: true,
                        },
                    );
                    return;
                }
                if r < 15 {
                    self.bind_replier(i);
                    return;
                }
                match self.k().recv(bus, ep, ()).unwrap() {
                    Some(m) => {
                        self.observe(i, &m);
                        if m.wants_us_to_reply() && self.sim.rng.random_range(0..10) < 8 {
                            let mut reply = Outgoing::reply_to(&m, &b"r"[..]);
                            if self.sim.rng.random_bool(0.1) {
                                reply = reply.with_flags(Flags::URGENT);
                            }
                            match self.k().send(
                                bus,
                                ep,
                                SendArgs {
                                    message: reply,
                                    deadline: None,
                                },
                            ) {
                                Ok(_) | Err(Errno::EADDRNOTAVAIL) => {}
                                Err(e) => panic!("reply failed: {e}"),
                            }
                        }
                    }
                    None => self.actors[i].blocked = Blocked::Message,
                }
            }
            Role::Listener => {
                if r < 5 {
                    let p = *LISTEN_PATTERNS.choose(&mut self.sim.rng).unwrap();
                    self.k()
                        .bind(
                            bus,
                            ep,
                            BindArgs {
                                name: p.into(),
                                replier: false,
                            },
                        )
                        .unwrap();
                    return;
                }
                if r < 8 {
                    let p = *LISTEN_PATTERNS.choose(&mut self.sim.rng).unwrap();
                    let _ = self.k().unbind(
                        bus,
                        ep,
                        BindArgs {
                            name: p.into(),
                            replier: false,
                        },
                    );
                    return;
                }
                if r < 12 {
                    let name = *NAMES.choose(&mut self.sim.rng).unwrap();
                    let flags = if r < 10 {
                        Flags::URGENT
                    } else {
                        Flags::ALL_OR_FAIL
                    };
                    let msg = Outgoing::announcement(name, &b"n"[..]).with_flags(flags);
                    match self.k().send(
                        bus,
                        ep,
                        SendArgs {
                            message: msg,
                            deadline: None,
                        },
                    ) {
                        Ok(_) | Err(Errno::EBUSY) => {}
                        Err(e) => panic!("announce failed: {e}"),
                    }
                    return;
                }
                match self.k().recv(bus, ep, ()).unwrap() {
                    Some(m) => self.observe(i, &m),
                    None => self.actors[i].blocked = Blocked::Message,
                }
            }
        }
    }

    fn bind_replier(&mut self, i: usize) {
        let (bus, ep) = (self.actors[i].bus, self.actors[i].ep);
        let p = *REPLIER_PATTERNS.choose(&mut self.sim.rng).unwrap();
        match self.k().bind(
            bus,
            ep,
            BindArgs {
                name: p.into(),
                replier: true,
            },
        ) {
            Ok(()) | Err(Errno::EADDRINUSE) => {}
            Err(e) => panic!("bind failed: {e}"),
        }
    }

    fn close(&mut self, i: usize) {
        let (bus, ep) = (self.actors[i].bus, self.actors[i].ep);
        self.k().close(bus, ep, ()).unwrap();
        self.actors[i].open = false;
        self.actors[i].blocked = Blocked::No;
    }

    /// Would the blocked actor find what it waits for? (Must be false when
    /// it was not woken.)
    fn has_something(&mut self, i: usize) -> bool {
        let (bus, ep) = (self.actors[i].bus, self.actors[i].ep);
        let s = self.k().endpoint_stats(bus, ep, ()).unwrap();
        match self.actors[i].blocked {
            Blocked::No => false,
            Blocked::Message | Blocked::Reply(_) => s.queued + s.set_aside > 0,
            Blocked::Outcome => s.pending_send.is_none(),
        }
    }
}

fn scenario(seed: u64) {
    let config = KernelConfig {
        buses: 2,
        ..KernelConfig::default()
    };
    let mut w = World {
        sim: Sim::new(seed, config),
        actors: Vec::new(),
        pending_ids: HashSet::new(),
        accepted: Vec::new(),
    };
    for b in 0..2 {
        let bus = BusId(b);
        for _ in 0..6 {
            w.open_actor(bus, Role::Requester);
        }
        for _ in 0..4 {
            let i = w.open_actor(bus, Role::Replier);
            w.bind_replier(i);
        }
        for _ in 0..6 {
            let i = w.open_actor(bus, Role::Listener);
            let p = *LISTEN_PATTERNS.choose(&mut w.sim.rng).unwrap();
            let ep = w.actors[i].ep;
            w.k()
                .bind(
                    bus,
                    ep,
                    BindArgs {
                        name: p.into(),
                        replier: false,
                    },
                )
                .unwrap();
        }
    }
    w.deliver_wakes();

    for _ in 0..3000 {
        w.sim.tick(2_000);
        w.deliver_wakes();
        let runnable: Vec<usize> = (0..w.actors.len())
            .filter(|&i| {
                w.actors[i].open && (w.actors[i].blocked == Blocked::No || w.actors[i].woken)
            })
            .collect();
        let Some(&i) = runnable.choose(&mut w.sim.rng) else {
            // Everyone is blocked: time must move (an alarm) or this is idle.
            let alarm = w.sim.kernel.host().alarm;
            match alarm {
                Some(a) => {
                    let now = w.sim.kernel.host().now;
                    w.sim.kernel.host_mut().advance(a.saturating_sub(now));
                    w.sim.kernel.handle_alarm();
                    continue;
                }
                None => break,
            }
        };
        w.step(i);
        w.deliver_wakes();
        if w.sim.rng.random_ratio(1, 4) {
            w.check_limits();
        }
    }

    // No missed wake-ups: a still-blocked actor has nothing to take.
    w.deliver_wakes();
    for i in 0..w.actors.len() {
        if w.actors[i].open
            && w.actors[i].blocked != Blocked::No
            && !w.actors[i].woken
            && w.has_something(i)
        {
            let (bus, ep) = (w.actors[i].bus, w.actors[i].ep);
            let s = w.k().endpoint_stats(bus, ep, ()).unwrap();
            let m = w.k().recv(bus, ep, ());
            panic!(
                "actor {i} ({:?}) blocked but has work (missed wake-up): {s:?} {m:?}",
                w.actors[i].blocked
            );
        }
    }

    // Losses: what listeners were told never exceeds what was counted.
    for i in 0..w.actors.len() {
        if w.actors[i].open && w.actors[i].role == Role::Listener {
            let (bus, ep) = (w.actors[i].bus, w.actors[i].ep);
            while let Some(m) = w.k().recv(bus, ep, ()).unwrap() {
                w.observe(i, &m);
            }
            let s = w.k().endpoint_stats(bus, ep, ()).unwrap();
            assert!(
                w.actors[i].lost_reported <= s.lost,
                "listener {ep}: told {} lost, counted {}",
                w.actors[i].lost_reported,
                s.lost
            );
        }
    }

    // Drain: close every replier and listener; every requester then holds
    // exactly one reply for each request still awaited.
    for i in 0..w.actors.len() {
        if w.actors[i].open && w.actors[i].role != Role::Requester {
            w.close(i);
        }
    }
    w.deliver_wakes();
    for i in 0..w.actors.len() {
        if !w.actors[i].open {
            continue;
        }
        let (bus, ep) = (w.actors[i].bus, w.actors[i].ep);
        if w.actors[i].blocked == Blocked::Outcome {
            if let Some(o) = w.k().take_send_outcome(bus, ep, ()).unwrap() {
                if o.result == Err(Errno::ETIMEDOUT) {
                    w.actors[i].awaiting.remove(&o.id);
                    w.accepted.retain(|&(a, id)| !(a == i && id == o.id));
                }
            } else {
                // Still pending with every replier gone is impossible: its
                // retry must have failed with EADDRNOTAVAIL.
                panic!("actor {i}: send still pending after every replier closed");
            }
        }
        while let Some(m) = w.k().recv(bus, ep, ()).unwrap() {
            w.observe(i, &m);
        }
        assert!(
            w.actors[i].awaiting.is_empty(),
            "requester {ep} never got a reply to {:?}",
            w.actors[i].awaiting
        );
        let s = w.k().endpoint_stats(bus, ep, ()).unwrap();
        assert_eq!(s.outstanding_requests, 0, "reservations leaked: {s:?}");
    }
    for &(i, id) in &w.accepted {
        assert_eq!(
            w.actors[i].replies.get(&id),
            Some(&1),
            "request {id} of actor {i}"
        );
    }
    assert!(!w.accepted.is_empty(), "the scenario sent no request");
}

#[test]
fn many_endpoints_many_seeds() {
    run_seeds("many_endpoints_many_seeds", 1, 500, scenario);
}

#[test]
fn same_seed_same_run() {
    // Determinism: the kernel is a pure function of the seed.
    let trace = |seed| {
        let mut s = Sim::new(seed, KernelConfig::default());
        let bus = BusId(0);
        let a = s
            .kernel
            .open(bus, EndpointId::BUS, Default::default())
            .unwrap();
        for i in 0..50u32 {
            let msg = Outgoing::announcement("$.x", i.to_le_bytes().to_vec());
            s.kernel
                .bind(
                    bus,
                    a,
                    BindArgs {
                        name: "$.*".into(),
                        replier: false,
                    },
                )
                .unwrap();
            s.kernel
                .send(
                    bus,
                    a,
                    SendArgs {
                        message: msg,
                        deadline: None,
                    },
                )
                .unwrap();
            s.tick(100);
        }
        let stats = s.kernel.bus_stats(bus, EndpointId::BUS, ()).unwrap();
        (
            format!("{stats:?}"),
            s.kernel.host().log.clone(),
            s.kernel.host().now,
        )
    };
    assert_eq!(trace(42), trace(42));
}
