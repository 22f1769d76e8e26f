//! Wake-ups the kernel owes its host, checked one by one (the simulation
//! checks them in bulk): every arrival of something to take wakes the
//! endpoint, even when its readiness level was already up.

use busbar_kernel::{
    BindArgs, BusId, EndpointId, Errno, Flags, KernelConfig, Operations, Outgoing, SendArgs,
    synthetic,
};
use busbar_sim::{Sim, Wake};

const BUS: BusId = BusId(0);

fn open(sim: &mut Sim) -> EndpointId {
    sim.kernel
        .open(BUS, EndpointId::BUS, Default::default())
        .unwrap()
}

fn bind(sim: &mut Sim, ep: EndpointId, name: &str, replier: bool) {
    let args = BindArgs {
        name: name.into(),
        replier,
    };
    sim.kernel.bind(BUS, ep, args).unwrap();
}

fn send(sim: &mut Sim, ep: EndpointId, message: Outgoing) -> Result<(), Errno> {
    let args = SendArgs {
        message,
        deadline: None,
    };
    sim.kernel.send(BUS, ep, args).map(|_| ())
}

/// A replier's unbind event set aside for a listener whose queue has no
/// room (its one slot reserved by a request), while a finished pending send
/// already keeps the listener readable: the event still wakes it, so a
/// receive waiting there (it found nothing before) looks again.
#[test]
fn a_set_aside_event_wakes_a_readable_endpoint() {
    let mut sim = Sim::new(1, KernelConfig::default());
    let [e, l, r, r2, admin] = [(); 5].map(|_| open(&mut sim));
    sim.kernel
        .set_replier_bind_events(BUS, admin, true)
        .unwrap();
    bind(&mut sim, r, "$.svc", true);
    bind(&mut sim, r2, "$.other", true);
    bind(&mut sim, l, "$.news", false);
    bind(&mut sim, e, synthetic::REPLIER_BIND_EVENT, false);
    // E's one slot is reserved by its request to r2.
    sim.kernel.set_queue_limit(BUS, e, 1).unwrap();
    send(&mut sim, e, Outgoing::request("$.other", "q")).unwrap();
    // E's send waits for room at l, then finishes: E is readable (an
    // outcome to take) with an empty queue.
    sim.kernel.set_queue_limit(BUS, l, 1).unwrap();
    send(&mut sim, admin, Outgoing::announcement("$.news", "1")).unwrap();
    let wait = Outgoing::announcement("$.news", "2").with_flags(Flags::ALL_OR_WAIT);
    assert_eq!(send(&mut sim, e, wait), Err(Errno::EAGAIN));
    sim.kernel.recv(BUS, l, ()).unwrap().unwrap();
    assert!(sim.take_wakes().contains(&Wake {
        bus: BUS,
        endpoint: e,
        readable: true
    }));
    // A receive finds nothing to take: here a waiter would sleep.
    assert!(sim.kernel.recv(BUS, e, ()).unwrap().is_none());
    sim.take_wakes();
    // r closes: its unbind event does not fit in E's queue, so it is set
    // aside for E; E must be woken for it.
    sim.kernel.close(BUS, r, ()).unwrap();
    let woken = sim.take_wakes();
    assert!(
        woken.contains(&Wake {
            bus: BUS,
            endpoint: e,
            readable: true
        }),
        "no wake-up for the set-aside event: {woken:?}"
    );
    let m = sim.kernel.recv(BUS, e, ()).unwrap().expect("the event");
    assert_eq!(&*m.name, synthetic::REPLIER_BIND_EVENT);
}
