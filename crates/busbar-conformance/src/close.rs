//! Close: pending send dropped, outstanding requests forgotten, queue drained
//! (`GoneAway`), bindings removed newest first (unbind events), set-aside
//! events dropped, owed requests answered `Ignored` in id order.

use busbar::{Bus, Flags, Outgoing, synthetic};

use crate::util::*;

/// What a closing replier's requester sees, in order: `GoneAway` for unread
/// requests, the unbind events (newest binding first), `Ignored` for taken ones.
pub fn order(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    q.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    q.set_replier_bind_events(true).unwrap();
    r.bind_replier("$.q.a").unwrap();
    r.bind("$.q.listen").unwrap();
    r.bind_replier("$.q.b").unwrap();
    assert_eq!(drain(&q).len(), 2);
    let r1 = q.request("$.q.a", &b""[..]).unwrap();
    let r2 = q.request("$.q.b", &b""[..]).unwrap();
    let r3 = q.request("$.q.a", &b""[..]).unwrap();
    let r4 = q.request("$.q.b", &b""[..]).unwrap();
    assert_eq!(ids(&[next(&r), next(&r)]), [r1, r2]);
    let rid = r.id();
    let s = next_serial(&bus);
    r.close().unwrap();
    let got = drain(&q);
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_synthetic(&got[0], synthetic::GONE_AWAY, rid, q.id(), r3);
    assert_synthetic(&got[1], synthetic::GONE_AWAY, rid, q.id(), r4);
    assert_bind_event(&got[2], false, rid, "$.q.b");
    assert_bind_event(&got[3], false, rid, "$.q.a");
    assert_synthetic(&got[4], synthetic::IGNORED, rid, q.id(), r1);
    assert_synthetic(&got[5], synthetic::IGNORED, rid, q.id(), r2);
    assert_eq!(ids(&got), (s..s + 6).map(serial).collect::<Vec<_>>());
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// A closing endpoint's pending send is dropped: nobody ever gets it.
pub fn pending_send_dropped(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2, r] = open_n(&bus);
    l.set_queue_limit(1).unwrap();
    l.bind("$.a").unwrap();
    l2.bind("$.a").unwrap();
    r.bind_replier("$.svc").unwrap();
    r.set_queue_limit(1).unwrap();
    let m0 = open(&bus).announce("$.a", &b""[..]).unwrap();
    let filler = open(&bus);
    filler.request("$.svc", &b""[..]).unwrap();
    drain(&l2);
    let s2 = open(&bus);
    assert_err(
        s.send(Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        busbar::Errno::EAGAIN,
    );
    assert_err(
        s2.send(Outgoing::request("$.svc", &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        busbar::Errno::EAGAIN,
    );
    s.close().unwrap();
    s2.close().unwrap();
    assert_eq!(next(&l).id, m0);
    next(&r);
    assert_empty(&l);
    assert_empty(&l2);
    assert_empty(&r);
    let bs = bus.stats().unwrap();
    assert!(bs.endpoint_stats.iter().all(|e| e.pending_send.is_none()));
}

/// A closed requester's requests are forgotten: replying fails, a closing
/// replier sends nothing for them.
pub fn outstanding_forgotten(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.*").unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    let taken = next(&r);
    drain(&l);
    q.close().unwrap();
    assert_err(r.reply(&taken, &b""[..]), busbar::Errno::EADDRNOTAVAIL);
    let s = next_serial(&bus);
    r.close().unwrap();
    assert_empty(&l);
    assert_eq!(
        next_serial(&bus),
        s,
        "no synthetic reply for a closed requester"
    );
    assert_eq!(bus.stats().unwrap().endpoints, 1);
}

/// A closed endpoint's bindings are gone.
pub fn bindings_removed(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, e, other] = open_n(&bus);
    e.bind("$.l").unwrap();
    e.bind("$.l.*").unwrap();
    e.bind_replier("$.r").unwrap();
    e.bind_replier("$.w.*").unwrap();
    other.bind("$.l").unwrap();
    let st = bus.stats().unwrap();
    assert_eq!((st.bindings, st.replier_bindings), (5, 2));
    e.close().unwrap();
    let st = bus.stats().unwrap();
    assert_eq!((st.endpoints, st.bindings, st.replier_bindings), (2, 1, 0));
    assert_eq!(bus.find_replier("$.r").unwrap(), None);
    assert_eq!(bus.find_replier("$.w.x").unwrap(), None);
    assert_err(s.request("$.r", &b""[..]), busbar::Errno::EADDRNOTAVAIL);
    assert_err(s.request("$.w.x", &b""[..]), busbar::Errno::EADDRNOTAVAIL);
    other.bind_replier("$.r").unwrap();
    let id = s.announce("$.l", &b""[..]).unwrap();
    assert_eq!(ids(&drain(&other)), [id]);
}

/// Endpoint ids start at 1 and are never reused.
pub fn ids_never_reused(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b, c] = open_n(&bus);
    assert_eq!((a.id(), b.id(), c.id()), (ep(1), ep(2), ep(3)));
    b.close().unwrap();
    drop(c);
    let d = open(&bus);
    assert_eq!(d.id(), ep(4));
    let st = bus.stats().unwrap();
    assert_eq!(st.endpoints, 2);
    assert_eq!(
        st.endpoint_stats.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ep(1), ep(4)]
    );
}

/// A closing endpoint's set-aside events are dropped.
pub fn set_aside_dropped(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, c, l, k] = open_n(&bus);
    s.set_replier_bind_events(true).unwrap();
    for n in ["$.a", "$.b", "$.c"] {
        c.bind_replier(n).unwrap();
    }
    for e in [&l, &k] {
        e.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
        e.set_queue_limit(1).unwrap();
    }
    c.close().unwrap();
    assert_eq!(bus.stats().unwrap().set_aside, 4);
    l.close().unwrap();
    assert_eq!(bus.stats().unwrap().set_aside, 2);
    assert_eq!(drain(&k).len(), 3);
    assert_eq!(bus.stats().unwrap().set_aside, 0);
}
