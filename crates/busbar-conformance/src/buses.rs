//! Multiple buses: created at run time, independent of each other.

use busbar::{Bus, BusId, Errno};

use crate::util::*;

/// `create_bus` gives the next id; each new bus starts fresh.
pub fn create_bus(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_eq!(bus.id(), BusId(0));
    assert_eq!(bus.stats().unwrap().bus, BusId(0));
    let b1 = bus.create_bus().unwrap();
    assert_eq!(b1.id(), BusId(1));
    let b2 = b1.create_bus().unwrap();
    assert_eq!(b2.id(), BusId(2));
    let st = b2.stats().unwrap();
    assert_eq!((st.bus, st.endpoints, st.next_serial), (BusId(2), 0, 1));
    let e = open(&b2);
    assert_eq!(e.id(), ep(1));
    // A handle made with `bus()` reaches the same bus.
    let again = bus.bus(BusId(2));
    assert_eq!(again.stats().unwrap().endpoints, 1);
}

/// Nothing passes between buses: endpoints, bindings, serials, message size
/// and the bind-event switch are per bus.
pub fn independent(make: &dyn Fn() -> Bus) {
    let b0 = make();
    let b1 = b0.create_bus().unwrap();
    let [s0, l0, r0] = open_n(&b0);
    let [s1, l1, r1] = open_n(&b1);
    assert_eq!((s0.id(), s1.id()), (ep(1), ep(1)));
    l0.bind("$.*").unwrap();
    l1.bind("$.*").unwrap();
    r0.bind_replier("$.svc").unwrap();
    r1.bind_replier("$.svc").unwrap(); // no EADDRINUSE across buses
    let a0 = s0.announce("$.x", &b""[..]).unwrap();
    let a1 = s1.announce("$.x", &b""[..]).unwrap();
    assert_eq!((a0, a1), (serial(1), serial(1)));
    let q1 = s1.request("$.svc", &b"one"[..]).unwrap();
    assert_eq!(ids(&drain(&l0)), [a0]);
    assert_eq!(ids(&drain(&l1)), [a1, q1]);
    assert_empty(&r0);
    assert_eq!(next(&r1).id, q1);
    b1.set_max_message_size(100).unwrap();
    assert_eq!(b0.stats().unwrap().max_message_size, 64 << 20);
    s0.announce("$.x", vec![0u8; 1000]).unwrap();
    assert_err(s1.announce("$.x", vec![0u8; 1000]), Errno::EMSGSIZE);
    s1.set_replier_bind_events(true).unwrap();
    assert!(!b0.stats().unwrap().replier_bind_events);
    assert!(b1.stats().unwrap().replier_bind_events);
    l0.bind(busbar::synthetic::REPLIER_BIND_EVENT).unwrap();
    drain(&l0);
    r0.bind_replier("$.more").unwrap();
    assert_empty(&l0);
    assert_eq!(b0.stats().unwrap().endpoints, 3);
    assert_eq!(b1.stats().unwrap().endpoints, 3);
    assert_eq!(b0.find_replier("$.svc").unwrap(), Some(r0.id()));
}

/// A bus that does not exist: `ENOENT` for everything on it.
pub fn no_such_bus(make: &dyn Fn() -> Bus) {
    let bus = make();
    for id in [BusId(1), BusId(99), BusId(u32::MAX)] {
        let ghost = bus.bus(id);
        assert_eq!(ghost.id(), id);
        assert_err(ghost.open(), Errno::ENOENT);
        assert_err(ghost.stats(), Errno::ENOENT);
        assert_err(ghost.set_max_message_size(1000), Errno::ENOENT);
        assert_err(ghost.find_replier("$.a"), Errno::ENOENT);
    }
    assert_eq!(bus.stats().unwrap().endpoints, 0);
    let b1 = bus.create_bus().unwrap();
    assert_eq!(b1.id(), BusId(1));
    bus.bus(BusId(1)).open().unwrap();
}
