//! Replier bind events: the per-bus switch, the events, the dump on
//! switch-on, and the set-aside list for unbinds at close.

use busbar::{Bus, Endpoint, EndpointId, Errno, Flags, MessageId, synthetic};

use crate::util::*;

const EVENT: &str = synthetic::REPLIER_BIND_EVENT;

/// An endpoint listening to bind events (and, with `limit`, a queue limit).
fn listener(bus: &Bus, limit: Option<u32>) -> Endpoint {
    let l = open(bus);
    l.bind(EVENT).unwrap();
    if let Some(n) = limit {
        l.set_queue_limit(n).unwrap();
    }
    l
}

fn switch_on(bus: &Bus) {
    let s = open(bus);
    assert!(!s.set_replier_bind_events(true).unwrap());
    assert_empty(&s);
}

/// Off by default: binding a replier sends nothing.
pub fn off_by_default(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert!(!bus.stats().unwrap().replier_bind_events);
    let l = listener(&bus, None);
    let e = open(&bus);
    e.bind_replier("$.a").unwrap();
    e.unbind_replier("$.a").unwrap();
    e.bind_replier("$.b").unwrap();
    e.close().unwrap();
    assert_empty(&l);
    assert_eq!(next_serial(&bus), 1);
}

/// Any endpoint may flip the switch; the setter returns the previous value.
pub fn switch_returns_previous(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b] = open_n(&bus);
    assert!(!a.set_replier_bind_events(true).unwrap());
    assert!(bus.stats().unwrap().replier_bind_events);
    assert!(b.set_replier_bind_events(true).unwrap());
    assert!(b.set_replier_bind_events(false).unwrap());
    assert!(!bus.stats().unwrap().replier_bind_events);
    assert!(!a.set_replier_bind_events(false).unwrap());
}

/// While on, replier binds and unbinds send an event to its listeners; the
/// data decodes to (is_bind, binder, name). Listener bindings send none.
pub fn bind_and_unbind_events(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let l = listener(&bus, None);
    let l2 = open(&bus);
    l2.bind("$.KBUS.*").unwrap();
    let e = open(&bus);
    let s0 = next_serial(&bus);
    e.bind_replier("$.a.b").unwrap();
    e.bind("$.a.c").unwrap();
    e.bind_replier("$.w.*").unwrap();
    e.bind_replier("$.abcdef").unwrap(); // 8 bytes: padded to 12
    e.unbind_replier("$.a.b").unwrap();
    e.unbind("$.a.c").unwrap();
    let expect = [
        (true, "$.a.b"),
        (true, "$.w.*"),
        (true, "$.abcdef"),
        (false, "$.a.b"),
    ];
    for who in [&l, &l2] {
        let got = drain(who);
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for (i, (m, (is_bind, name))) in got.iter().zip(expect).enumerate() {
            assert_bind_event(m, is_bind, e.id(), name);
            assert_eq!(m.id, serial(s0 + i as u32));
            assert!(
                m.data[12 + name.len()..].iter().all(|&b| b == 0),
                "NUL padded"
            );
        }
    }
    assert_empty(&e);
}

/// A full listener: the replier bind or unbind fails `EAGAIN` and is not
/// done; no listener gets the event (all or nothing).
pub fn listener_full_eagain(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let full = listener(&bus, Some(1));
    full.bind("$.fill").unwrap();
    let other = listener(&bus, None);
    let e = open(&bus);
    e.announce("$.fill", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EAGAIN, || e.bind_replier("$.x"));
    assert_eq!(bus.find_replier("$.x").unwrap(), None);
    assert_empty(&other);
    // Listener bindings are not affected.
    e.bind("$.x").unwrap();
    next(&full);
    e.bind_replier("$.x").unwrap();
    assert_bind_event(&next(&full), true, e.id(), "$.x");
    assert_bind_event(&next(&other), true, e.id(), "$.x");
    e.announce("$.fill", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EAGAIN, || e.unbind_replier("$.x"));
    assert_eq!(bus.find_replier("$.x").unwrap(), Some(e.id()));
    assert_empty(&other);
    next(&full);
    e.unbind_replier("$.x").unwrap();
    assert_bind_event(&next(&full), false, e.id(), "$.x");
    assert_bind_event(&next(&other), false, e.id(), "$.x");
}

/// `EADDRINUSE`, `EINVAL` and name errors come before `EAGAIN`.
pub fn errors_checked_first(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let [e, f] = open_n(&bus);
    e.bind_replier("$.x").unwrap();
    let full = listener(&bus, Some(1));
    full.bind("$.fill").unwrap();
    f.announce("$.fill", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EADDRINUSE, || f.bind_replier("$.x"));
    assert_no_effect(&bus, Errno::EINVAL, || f.unbind_replier("$.x"));
    assert_no_effect(&bus, Errno::EINVAL, || f.unbind_replier("$.y"));
    assert_no_effect(&bus, Errno::EBADMSG, || f.bind_replier("$.y."));
    assert_no_effect(&bus, Errno::EBADMSG, || f.bind_replier(EVENT));
    assert_no_effect(&bus, Errno::EAGAIN, || f.bind_replier("$.y"));
}

/// Switching on queues to the caller one event per existing replier,
/// ordered by binder then pattern, whether or not it listens.
pub fn dump_on_switch(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [e1, e2, c] = open_n(&bus);
    let l = listener(&bus, None);
    e2.bind_replier("$.b").unwrap();
    e1.bind_replier("$.z").unwrap();
    e1.bind_replier("$.a.*").unwrap();
    e1.bind("$.listener").unwrap();
    let s0 = next_serial(&bus);
    assert!(!c.set_replier_bind_events(true).unwrap());
    let got = drain(&c);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_bind_event(&got[0], true, e1.id(), "$.a.*");
    assert_bind_event(&got[1], true, e1.id(), "$.z");
    assert_bind_event(&got[2], true, e2.id(), "$.b");
    assert_eq!(ids(&got), [serial(s0), serial(s0 + 1), serial(s0 + 2)]);
    assert_empty(&l);
    // Switching off dumps nothing; switching on again dumps again.
    assert!(l.set_replier_bind_events(false).unwrap());
    assert_empty(&l);
    assert!(!l.set_replier_bind_events(true).unwrap());
    let got = drain(&l);
    assert_eq!(got.len(), 3);
    assert_bind_event(&got[2], true, e2.id(), "$.b");
}

/// If the dump does not fit the caller's queue: `EBUSY`, nothing changes.
pub fn dump_ebusy(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [e, c] = open_n(&bus);
    for n in ["$.a", "$.b", "$.c"] {
        e.bind_replier(n).unwrap();
    }
    c.bind("$.m").unwrap();
    let m = e.announce("$.m", &b""[..]).unwrap();
    c.set_queue_limit(3).unwrap();
    assert_no_effect(&bus, Errno::EBUSY, || c.set_replier_bind_events(true));
    assert!(!bus.stats().unwrap().replier_bind_events);
    c.set_queue_limit(4).unwrap();
    assert!(!c.set_replier_bind_events(true).unwrap());
    let got = drain(&c);
    assert_eq!(got[0].id, m);
    assert_eq!(got.len(), 4);
}

/// Closing endpoint: events that do not fit a listener are set aside and
/// arrive, in order (newest binding first), as the listener takes messages.
pub fn set_aside_on_close(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let c = open(&bus);
    for n in ["$.a", "$.b", "$.c"] {
        c.bind_replier(n).unwrap();
    }
    let cid = c.id();
    let l = listener(&bus, Some(1));
    c.close().unwrap();
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (1, 2));
    assert_eq!(bus.stats().unwrap().set_aside, 2);
    assert_bind_event(&next(&l), false, cid, "$.c");
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (1, 1));
    assert_bind_event(&next(&l), false, cid, "$.b");
    assert_bind_event(&next(&l), false, cid, "$.a");
    assert_empty(&l);
    assert_eq!(l.stats().unwrap().set_aside, 0);
    assert_eq!(bus.stats().unwrap().set_aside, 0);
}

/// Once a listener has events set aside, its later events queue behind them.
pub fn set_aside_order(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let [c1, c2] = open_n(&bus);
    c1.bind_replier("$.a1").unwrap();
    c1.bind_replier("$.a2").unwrap();
    c2.bind_replier("$.b1").unwrap();
    let (i1, i2) = (c1.id(), c2.id());
    let l = listener(&bus, Some(1));
    c1.close().unwrap();
    l.set_queue_limit(10).unwrap();
    c2.close().unwrap();
    assert_bind_event(&next(&l), false, i1, "$.a2");
    assert_bind_event(&next(&l), false, i1, "$.a1");
    assert_bind_event(&next(&l), false, i2, "$.b1");
    assert_empty(&l);
}

/// A listener with room gets close-time events directly even when another
/// listener's are set aside.
pub fn listener_with_room_direct(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let c = open(&bus);
    c.bind_replier("$.a").unwrap();
    let cid = c.id();
    let full = listener(&bus, Some(1));
    full.bind("$.fill").unwrap();
    let room = listener(&bus, None);
    room.announce("$.fill", &b""[..]).unwrap();
    c.close().unwrap();
    let st = room.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (1, 0));
    let st = full.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (1, 1));
    assert_bind_event(&next(&room), false, cid, "$.a");
    assert_eq!(&*next(&full).name, "$.fill");
    assert_bind_event(&next(&full), false, cid, "$.a");
}

/// The set-aside list holds 1000 events: a listener with queue limit 1 and a
/// closing endpoint with 2000 replier bindings get 1 + 1000 + 1 = 1002
/// messages, the last `$.KBUS.UnbindEventsLost`. Once the list empties,
/// events are kept again.
pub fn set_aside_overflow(make: &dyn Fn() -> Bus) {
    const N: usize = 2000;
    let bus = make();
    switch_on(&bus);
    let c = open(&bus);
    for i in 0..N {
        c.bind_replier(&format!("$.r.n{i}")).unwrap();
    }
    let cid = c.id();
    let l = listener(&bus, Some(1));
    c.close().unwrap();
    let st = l.stats().unwrap();
    assert_eq!(st.queued, 1);
    assert_eq!(st.queued + st.set_aside, 1002);
    let got = drain(&l);
    assert_eq!(got.len(), 1002);
    for (k, m) in got[..1001].iter().enumerate() {
        assert_bind_event(m, false, cid, &format!("$.r.n{}", N - 1 - k));
    }
    let last = &got[1001];
    assert_eq!(&*last.name, synthetic::UNBIND_EVENTS_LOST);
    assert_eq!((last.from, last.to), (EndpointId::BUS, EndpointId::BUS));
    assert_eq!(last.in_reply_to, MessageId::NONE);
    assert_eq!(last.flags, Flags::SYNTHETIC);
    assert!(last.data.is_empty());
    assert!(
        got.windows(2).all(|w| w[0].id.serial < w[1].id.serial),
        "events and the loss report in serial order"
    );
    assert_eq!(bus.stats().unwrap().set_aside, 0);
    assert_eq!(l.stats().unwrap().set_aside, 0);
    // The list is empty again: events are kept again.
    let c2 = open(&bus);
    c2.bind_replier("$.again1").unwrap();
    assert_bind_event(&next(&l), true, c2.id(), "$.again1");
    c2.bind_replier("$.again2").unwrap();
    assert_bind_event(&next(&l), true, c2.id(), "$.again2");
    let c2id = c2.id();
    c2.close().unwrap();
    assert_bind_event(&next(&l), false, c2id, "$.again2");
    assert_bind_event(&next(&l), false, c2id, "$.again1");
    assert_empty(&l);
}

/// Unbinding the last listener binding matching `$.KBUS.ReplierBindEvent`
/// drops the endpoint's set-aside events (not before).
pub fn unbind_listener_drops_set_aside(make: &dyn Fn() -> Bus) {
    let bus = make();
    switch_on(&bus);
    let c = open(&bus);
    for n in ["$.a", "$.b", "$.c"] {
        c.bind_replier(n).unwrap();
    }
    let l = listener(&bus, Some(1));
    l.bind("$.KBUS.*").unwrap();
    let k = listener(&bus, Some(1));
    k.bind("$.other").unwrap();
    c.close().unwrap();
    assert!(l.stats().unwrap().set_aside > 0);
    assert_eq!(k.stats().unwrap().set_aside, 2);
    l.unbind("$.KBUS.*").unwrap();
    assert!(
        l.stats().unwrap().set_aside > 0,
        "one matching binding is left"
    );
    l.unbind(EVENT).unwrap();
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (0, 0));
    assert_empty(&l);
    // k: unbinding another name keeps them; unbinding the event name drops them.
    k.unbind("$.other").unwrap();
    assert_eq!(k.stats().unwrap().set_aside, 2);
    k.unbind(EVENT).unwrap();
    let st = k.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (0, 0));
    assert_empty(&k);
    assert_eq!(bus.stats().unwrap().set_aside, 0);
}
