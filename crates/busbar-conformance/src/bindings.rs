//! Bindings: listeners, repliers, which replier gets a request.

use busbar::{Bus, EndpointId, Errno, Flags, synthetic};

use crate::util::*;

/// Each matching listener binding gets one copy.
pub fn listener_copies(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, a, b, c] = open_n(&bus);
    a.bind("$.x.y").unwrap();
    b.bind("$.x.y").unwrap();
    b.bind("$.x.*").unwrap();
    c.bind("$.x.%").unwrap();
    c.bind("$.x.%").unwrap();
    c.bind("$.*").unwrap();
    let id = s.announce("$.x.y", &b"d"[..]).unwrap();
    for (e, n) in [(&a, 1), (&b, 2), (&c, 3)] {
        let got = drain(e);
        assert_eq!(got.len(), n, "endpoint {} copies", e.id());
        for m in got {
            assert_eq!((m.id, &*m.name, &m.data[..]), (id, "$.x.y", &b"d"[..]));
            assert_eq!(m.from, s.id());
        }
    }
    assert_empty(&s);
}

/// An announcement nobody listens to is not an error (and takes a serial).
pub fn announcement_nobody_listening(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, r] = open_n(&bus);
    r.bind_replier("$.a").unwrap();
    let before = next_serial(&bus);
    assert_eq!(s.announce("$.nobody", &b""[..]).unwrap(), serial(before));
    // A replier is not a listener: an announcement to its name is not for it.
    assert_eq!(s.announce("$.a", &b""[..]).unwrap(), serial(before + 1));
    assert_empty(&r);
    assert_eq!(next_serial(&bus), before + 2);
    assert_eq!(s.stats().unwrap().sent, 2);
}

/// At most one replier per pattern string; different patterns coexist.
pub fn replier_unique(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b] = open_n(&bus);
    a.bind_replier("$.a.b").unwrap();
    assert_no_effect(&bus, Errno::EADDRINUSE, || b.bind_replier("$.a.b"));
    assert_no_effect(&bus, Errno::EADDRINUSE, || a.bind_replier("$.a.b"));
    b.bind_replier("$.a.*").unwrap();
    b.bind_replier("$.a.%").unwrap();
    assert_no_effect(&bus, Errno::EADDRINUSE, || a.bind_replier("$.a.*"));
    assert_no_effect(&bus, Errno::EADDRINUSE, || a.bind_replier("$.a.%"));
    // A listener binding on the same name is always fine.
    b.bind("$.a.b").unwrap();
    a.bind("$.a.b").unwrap();
    let st = bus.stats().unwrap();
    assert_eq!((st.bindings, st.replier_bindings), (5, 3));
    // Once unbound, the name is free again.
    a.unbind_replier("$.a.b").unwrap();
    b.bind_replier("$.a.b").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(b.id()));
}

/// `$.KBUS.ReplierBindEvent` cannot have a replier.
pub fn replier_bind_event_name_reserved(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a] = open_n(&bus);
    assert_no_effect(&bus, Errno::EBADMSG, || {
        a.bind_replier(synthetic::REPLIER_BIND_EVENT)
    });
    a.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    assert_eq!(a.stats().unwrap().bindings, 1);
}

/// Exact beats `%`, which beats `*`; `$.*` catches the rest.
pub fn replier_precedence(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, all, star, pct, exact] = open_n(&bus);
    // Bind the least specific last so bind order cannot be what decides.
    exact.bind_replier("$.a.b").unwrap();
    pct.bind_replier("$.a.%").unwrap();
    star.bind_replier("$.a.*").unwrap();
    all.bind_replier("$.*").unwrap();
    let cases = [
        ("$.a.b", &exact),
        ("$.a.c", &pct),
        ("$.a.b.c", &star),
        ("$.a.c.d", &star),
        ("$.a", &all),
        ("$.x.y", &all),
    ];
    for (name, who) in cases {
        assert_eq!(bus.find_replier(name).unwrap(), Some(who.id()), "{name}");
        let id = s.request(name, &b""[..]).unwrap();
        let m = next(who);
        assert_eq!((m.id, &*m.name), (id, name));
        assert!(m.wants_us_to_reply());
        for other in [&all, &star, &pct, &exact] {
            assert_empty(other);
        }
    }
    exact.unbind_replier("$.a.b").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(pct.id()));
    pct.unbind_replier("$.a.%").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(star.id()));
    star.unbind_replier("$.a.*").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(all.id()));
}

/// Among `*` repliers the longest prefix wins, whatever the bind order.
pub fn longest_star_wins(make: &dyn Fn() -> Bus) {
    for longer_first in [false, true] {
        let bus = make();
        let [s, short, long] = open_n(&bus);
        if longer_first {
            long.bind_replier("$.a.b.*").unwrap();
            short.bind_replier("$.a.*").unwrap();
        } else {
            short.bind_replier("$.a.*").unwrap();
            long.bind_replier("$.a.b.*").unwrap();
        }
        for (name, who) in [
            ("$.a.b.c", &long),
            ("$.a.b.c.d", &long),
            ("$.a.b", &short),
            ("$.a.x.c", &short),
        ] {
            assert_eq!(bus.find_replier(name).unwrap(), Some(who.id()), "{name}");
            let id = s.request(name, &b""[..]).unwrap();
            assert_eq!(next(who).id, id, "{name}");
        }
        assert_empty(&short);
        assert_empty(&long);
    }
}

/// `%` matches exactly one more word, under its own parent only.
pub fn percent_is_one_word(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, p] = open_n(&bus);
    p.bind_replier("$.a.%").unwrap();
    for n in ["$.a", "$.a.b.c", "$.b.a", "$.x.a.b"] {
        assert_no_effect(&bus, Errno::EADDRNOTAVAIL, || s.request(n, &b""[..]));
    }
    let id = s.request("$.a.b", &b""[..]).unwrap();
    assert_eq!(next(&p).id, id);
}

/// `find_replier` answers "who would get this request now".
pub fn find_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b] = open_n(&bus);
    assert_eq!(bus.find_replier("$.a.b").unwrap(), None);
    a.bind("$.a.b").unwrap();
    assert_eq!(
        bus.find_replier("$.a.b").unwrap(),
        None,
        "listeners are not repliers"
    );
    a.bind_replier("$.a.*").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(a.id()));
    b.bind_replier("$.a.b").unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(b.id()));
    assert_eq!(bus.find_replier("$.a.c").unwrap(), Some(a.id()));
    b.close().unwrap();
    assert_eq!(bus.find_replier("$.a.b").unwrap(), Some(a.id()));
    assert_ne!(bus.find_replier("$.a.b").unwrap(), Some(EndpointId::BUS));
}

/// One endpoint may hold many bindings of both kinds; a request reaches its
/// replier binding with `WANT_YOU_TO_REPLY` and its listener binding without.
pub fn several_bindings_per_endpoint(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, e] = open_n(&bus);
    e.bind_replier("$.r").unwrap();
    e.bind("$.r").unwrap();
    e.bind("$.other").unwrap();
    assert_eq!(e.stats().unwrap().bindings, 3);
    let id = s.request("$.r", &b""[..]).unwrap();
    let mut got = drain(&e);
    assert_eq!(got.len(), 2);
    got.sort_by_key(|m| m.flags.0);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].flags, Flags::WANT_A_REPLY);
    assert_eq!(got[1].id, id);
    assert_eq!(got[1].flags, Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY);
    let a = s.announce("$.other", &b""[..]).unwrap();
    assert_eq!(next(&e).id, a);
}

/// A name sent again reaches exactly the listeners bound at that moment:
/// bindings made or removed between two sends of one name (exact, `%`, `*`;
/// by unbind and by closing) count at once, however often the name was
/// sent before (the bus may remember its last lookup; it must not go stale).
pub fn changes_between_repeated_sends(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, a, b, c] = open_n(&bus);
    let name = "$.repeat.x";
    let send = |n: usize| {
        for _ in 0..n {
            s.announce(name, &b"d"[..]).unwrap();
        }
    };
    let counts = |es: [&busbar::Endpoint; 3]| es.map(|e| drain(e).len());
    a.bind(name).unwrap();
    send(3);
    assert_eq!(counts([&a, &b, &c]), [3, 0, 0]);
    b.bind("$.repeat.%").unwrap();
    send(2);
    assert_eq!(counts([&a, &b, &c]), [2, 2, 0]);
    c.bind("$.*").unwrap();
    c.bind(name).unwrap();
    send(1);
    assert_eq!(counts([&a, &b, &c]), [1, 1, 2]);
    a.unbind(name).unwrap();
    send(2);
    assert_eq!(counts([&a, &b, &c]), [0, 2, 4]);
    // Another name in between, then the first again.
    s.announce("$.repeat.y", &b"d"[..]).unwrap();
    assert_eq!(counts([&a, &b, &c]), [0, 1, 1]);
    send(1);
    assert_eq!(counts([&a, &b, &c]), [0, 1, 2]);
    drop(b);
    c.unbind("$.*").unwrap();
    send(2);
    assert_eq!(counts([&a, &a, &c]), [0, 0, 2]);
    c.close().unwrap();
    send(1);
    assert_eq!(s.stats().unwrap().sent, 13);
    assert_empty(&a);
}
