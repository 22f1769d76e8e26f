//! Names: grammar, length limit, wildcards.

use busbar::{Bus, Errno, MAX_NAME_LEN, Outgoing, synthetic};

use crate::util::*;

/// A valid name of exactly `len` bytes.
fn long_name(len: usize) -> String {
    let mut s = String::from("$.");
    let mut i = 0usize;
    while s.len() < len {
        if s.len() > 2 && s.len() + 1 < len && i.is_multiple_of(8) {
            s.push('.');
        } else {
            s.push('x');
        }
        i += 1;
    }
    assert_eq!(s.len(), len);
    assert!(!s.ends_with('.'));
    s
}

/// Well-formed names can be bound and sent to, up to 1000 bytes.
pub fn valid(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    let max = long_name(MAX_NAME_LEN);
    let names = [
        "$.a",
        "$.A",
        "$.0",
        "$.abc.DEF.g1h2",
        "$.KBUS.Custom",
        "$.a.b.c.d.e.f.g.h.i.j",
        max.as_str(),
    ];
    for n in names {
        l.bind(n).unwrap_or_else(|e| panic!("bind {n}: {e}"));
    }
    for n in names {
        let id = s.announce(n, &b"x"[..]).unwrap();
        let m = next(&l);
        assert_eq!((&*m.name, m.id), (n, id));
    }
    assert_empty(&l);
    let r = open(&bus);
    r.bind_replier(&max).unwrap();
    assert_eq!(bus.find_replier(&max).unwrap(), Some(r.id()));
}

/// Names are case-sensitive.
pub fn case_sensitive(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, r] = open_n(&bus);
    l.bind("$.a.B").unwrap();
    s.announce("$.a.b", &b""[..]).unwrap();
    s.announce("$.A.B", &b""[..]).unwrap();
    assert_empty(&l);
    let id = s.announce("$.a.B", &b""[..]).unwrap();
    assert_eq!(next(&l).id, id);
    r.bind_replier("$.x.Y").unwrap();
    r.bind_replier("$.x.y").unwrap();
    assert_eq!(bus.find_replier("$.x.Y").unwrap(), Some(r.id()));
    assert_err(s.request("$.X.y", &b""[..]), Errno::EADDRNOTAVAIL);
}

/// Over 1000 bytes: `ENAMETOOLONG`, checked before anything else.
pub fn too_long(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    let long = long_name(MAX_NAME_LEN + 1);
    // Malformed *and* too long: the length is checked first.
    let long_bad = format!("#{}", "-".repeat(MAX_NAME_LEN));
    let long_wild = format!("{}.*", long_name(MAX_NAME_LEN - 1));
    for n in [&long, &long_bad, &long_wild] {
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || l.bind(n));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || l.bind_replier(n));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || l.unbind(n));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || l.unbind_replier(n));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || s.announce(n, &b""[..]));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || s.request(n, &b""[..]));
        assert_no_effect(&bus, Errno::ENAMETOOLONG, || bus.find_replier(n));
    }
}

/// Anything else malformed: `EBADMSG`.
pub fn malformed(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.*").unwrap();
    let bad = [
        "", "$", "$.", "a.b", "$a", "$.a.", "$..a", "$.a..b", ".$.a", "$.a-b", "$.a b", "$.a_b",
        "$.é", "$.a/b", "$$.a", "$,a", " $.a", "$.a ", "$.a.b.", "#.a",
    ];
    for n in bad {
        assert_no_effect(&bus, Errno::EBADMSG, || l.bind(n));
        assert_no_effect(&bus, Errno::EBADMSG, || l.bind_replier(n));
        assert_no_effect(&bus, Errno::EBADMSG, || l.unbind(n));
        assert_no_effect(&bus, Errno::EBADMSG, || s.announce(n, &b""[..]));
        assert_no_effect(&bus, Errno::EBADMSG, || s.request(n, &b""[..]));
        assert_no_effect(&bus, Errno::EBADMSG, || bus.find_replier(n));
    }
    assert_empty(&l);
}

/// A name is checked on every send, whatever was sent before: the bus
/// remembering the last valid name (so a repeated name is not checked byte
/// by byte again) never lets a bad one through, alternating or repeated.
pub fn repeated_names_still_checked(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.*").unwrap();
    let good: std::sync::Arc<str> = "$.a.b".into();
    for bad in ["$.a.b.", "$.a..b", "$.a.b ", "$.a.b$"] {
        s.send(Outgoing::announcement(&good, &b""[..])).unwrap();
        s.send(Outgoing {
            name: good.clone(),
            ..Default::default()
        })
        .unwrap();
        assert_no_effect(&bus, Errno::EBADMSG, || s.announce(bad, &b""[..]));
        assert_no_effect(&bus, Errno::EBADMSG, || s.announce(bad, &b""[..]));
        s.announce(&good, &b""[..]).unwrap();
    }
    for _ in 0..12 {
        assert_eq!(&*next(&l).name, "$.a.b");
    }
    assert_empty(&l);
}

/// `*` matches one or more further words, `%` exactly one, `$.*` everything
/// (`$.KBUS.*` included).
pub fn wildcards_match(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, star, pct, all] = open_n(&bus);
    star.bind("$.a.*").unwrap();
    pct.bind("$.a.%").unwrap();
    all.bind("$.*").unwrap();
    let sent: Vec<_> = ["$.a", "$.a.b", "$.a.b.c", "$.ab", "$.b.a", "$.a.b.c.d"]
        .iter()
        .map(|n| (*n, s.announce(n, &b""[..]).unwrap()))
        .collect();
    let got = |e| {
        names(&drain(e))
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(got(&star), ["$.a.b", "$.a.b.c", "$.a.b.c.d"]);
    assert_eq!(got(&pct), ["$.a.b"]);
    assert_eq!(
        ids(&drain(&all)),
        sent.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );
    // `$.*` also gets the bus's own `$.KBUS.*` messages.
    s.set_replier_bind_events(true).unwrap();
    let r = open(&bus);
    r.bind_replier("$.q").unwrap();
    let ev = next(&all);
    assert_bind_event(&ev, true, r.id(), "$.q");
    assert_eq!(&*ev.name, synthetic::REPLIER_BIND_EVENT);
    assert_empty(&star);
    // Wildcard repliers match the same way.
    let rs = open(&bus);
    rs.bind_replier("$.w.*").unwrap();
    let rp = open(&bus);
    rp.bind_replier("$.v.%").unwrap();
    assert_eq!(bus.find_replier("$.w.x.y").unwrap(), Some(rs.id()));
    assert_eq!(bus.find_replier("$.w").unwrap(), None);
    assert_eq!(bus.find_replier("$.v.x").unwrap(), Some(rp.id()));
    assert_eq!(bus.find_replier("$.v.x.y").unwrap(), None);
    assert_eq!(bus.find_replier("$.v").unwrap(), None);
}

/// A wildcard anywhere but as the whole last word, or in a message name:
/// `EBADMSG`.
pub fn bad_wildcards(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.*").unwrap();
    for n in [
        "$.a*", "$.*.a", "$.a.*.b", "$.a%", "$.%.a", "$.a.**", "$.a.*%", "$.a.%*", "$.a.b*",
        "$.a.*b", "$.*a", "$.%%", "$*", "$%", "*", "%", "$.a.*.", "$.a.%.b",
    ] {
        assert_no_effect(&bus, Errno::EBADMSG, || l.bind(n));
        assert_no_effect(&bus, Errno::EBADMSG, || l.bind_replier(n));
    }
    for n in ["$.a.*", "$.a.%", "$.*", "$.%"] {
        assert_no_effect(&bus, Errno::EBADMSG, || s.announce(n, &b""[..]));
        assert_no_effect(&bus, Errno::EBADMSG, || s.request(n, &b""[..]));
        assert_no_effect(&bus, Errno::EBADMSG, || {
            s.send(Outgoing::announcement(n, &b""[..]))
        });
    }
    assert_empty(&l);
}
