//! Announcements: both ways, wildcards, 10,000 in order, `--names`,
//! three buses in a line and a star, a router and its client.

use super::*;

#[test]
fn announcements_cross_both_ways_with_wildcards() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let sa = a.open().unwrap();
    let sb = b.open().unwrap();
    let la = a.open().unwrap();
    let lb = b.open().unwrap();
    la.bind("$.alarm.%").unwrap();
    lb.bind("$.news.*").unwrap();
    // The sender's own bus has a listener too: it must see one copy, not
    // an echo back from the other side.
    let echo = a.open().unwrap();
    echo.bind("$.news.*").unwrap();

    until_crossing(&sa, &lb, "$.news.probe");
    until_crossing(&sb, &la, "$.alarm.probe");
    while echo.try_recv().unwrap().is_some() {}

    let data = Bytes::from_static(b"\x00\xff binary \x80");
    let id = sa
        .send(Outgoing {
            flags: Flags(0x5a00_0000),
            ..Outgoing::announcement("$.news.world.today", data.clone())
        })
        .unwrap();
    let m = next(&lb);
    assert_eq!(&*m.name, "$.news.world.today");
    assert_eq!(m.data, data);
    assert_eq!(
        m.id,
        MessageId {
            network: 1,
            serial: id.serial
        },
        "the id keeps its serial and gains the origin's network"
    );
    assert_eq!(
        m.orig_from,
        OrigFrom {
            network: 1,
            local: sa.id().0
        }
    );
    assert_eq!(m.flags, Flags(0x5a00_0000));
    assert!(!m.is_synthetic() && !m.is_request() && !m.is_reply());
    // The local copy, once.
    assert_eq!(next(&echo).id, id);

    // `%` is one word: $.alarm.x.y does not reach $.alarm.% (the marker
    // after it, from the same sender, shows it had its chance).
    sb.announce("$.alarm.x.y", "two words").unwrap();
    sb.announce("$.alarm.fire", "one word").unwrap();
    let m = next(&la);
    assert_eq!((&*m.name, &m.data[..]), ("$.alarm.fire", &b"one word"[..]));
    assert_eq!(m.id.network, 2);

    assert_quiet(&la, "after the marker");
    assert_quiet(&lb, "after the last announcement");
    assert_quiet(&echo, "the sender's own bus: no echo");
}

#[test]
fn ten_thousand_announcements_no_loss_no_duplicate_in_order() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let s = a.open().unwrap();
    let l = b.open().unwrap();
    l.set_queue_limit(20_000).unwrap();
    l.bind("$.flood.*").unwrap();
    until_crossing(&s, &l, "$.flood.probe");
    const N: u32 = 10_000;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            s.announce("$.flood.n", i.to_le_bytes().to_vec()).unwrap();
        }
        s
    });
    for i in 0..N {
        let m = next(&l);
        assert_eq!(&*m.name, "$.flood.n");
        assert_eq!(m.lost, 0, "nothing lost before message {i}");
        assert_eq!(
            u32::from_le_bytes(m.data[..].try_into().unwrap()),
            i,
            "in the sender's order"
        );
    }
    let _s = sender.join().unwrap();
    assert_quiet(&l, "no duplicate after the last");
}

#[test]
fn names_limit_what_crosses() {
    let p = pair(&["--names", "$.a.*", "--stats-every", "1"], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let s = a.open().unwrap();
    let l = b.open().unwrap();
    l.bind("$.*").unwrap();
    until_crossing(&s, &l, "$.a.probe");
    s.announce("$.b.secret", "no").unwrap();
    s.announce("$.a.open", "yes").unwrap();
    let m = next(&l);
    assert_eq!(&*m.name, "$.a.open");
    assert_quiet(&l, "$.b.secret stayed home");
    // A replier outside the names is not advertised.
    let r = a.open().unwrap();
    r.bind_replier("$.b.svc").unwrap();
    r.bind_replier("$.a.svc").unwrap();
    until_served(&b, "$.a.svc");
    assert_eq!(b.find_replier("$.b.svc").unwrap(), None);
    // --stats-every: the counters, logged while it runs.
    p.ba.wait_log("counters: published=");
}

/// One bridge a Zenoh router, the other its client: the same traffic.
#[test]
fn through_a_router_and_a_client() {
    let p = pair(&["--mode", "router"], &["--mode", "client"]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let s = a.open().unwrap();
    let l = b.open().unwrap();
    l.bind("$.r.*").unwrap();
    until_crossing(&s, &l, "$.r.probe");
    let r = a.open().unwrap();
    r.bind_replier("$.r.svc").unwrap();
    until_served(&b, "$.r.svc");
    let t = std::thread::spawn(move || {
        let m = next(&r);
        r.reply(&m, "via the router").unwrap();
        r
    });
    let q = b.open().unwrap();
    let reply = q.call("$.r.svc", "x", Some(PATIENCE)).unwrap();
    assert_eq!(&reply.data[..], b"via the router");
    let _ = t.join().unwrap();
}

/// Three buses: `line` is A ← B ← C (each connects to the one before),
/// `star` is B → A ← C.
fn three(line: bool) {
    let dir = Dir::new();
    let d: Vec<TestDaemon> = ["a", "b", "c"]
        .iter()
        .map(|n| TestDaemon::start(&dir, n))
        .collect();
    let za = zsock(&dir, "za.sock");
    let zb = zsock(&dir, "zb.sock");
    let ba = TestBridge::start(&dir, &d[0], 1, &["--listen", &za, "--namespace", "x"]);
    ba.wait_log("bridging bus");
    let bb = TestBridge::start(
        &dir,
        &d[1],
        2,
        &["--connect", &za, "--listen", &zb, "--namespace", "x"],
    );
    bb.wait_log("bridging bus");
    let upstream = if line { &zb } else { &za };
    let bc = TestBridge::start(&dir, &d[2], 3, &["--connect", upstream, "--namespace", "x"]);
    bc.wait_log("bridging bus");
    let buses: Vec<Bus> = d.iter().map(TestDaemon::bus).collect();
    let senders: Vec<Endpoint> = buses.iter().map(|b| b.open().unwrap()).collect();
    let listeners: Vec<Endpoint> = buses
        .iter()
        .map(|b| {
            let l = b.open().unwrap();
            l.bind("$.t.*").unwrap();
            l
        })
        .collect();
    for (i, s) in senders.iter().enumerate() {
        for (j, l) in listeners.iter().enumerate() {
            if i != j {
                until_crossing(s, l, "$.t.probe");
            }
        }
    }
    for l in &listeners {
        while l.try_recv().unwrap().is_some() {}
    }
    for (i, s) in senders.iter().enumerate() {
        for k in 0..20 {
            s.announce("$.t.m", format!("{i}:{k}")).unwrap();
        }
    }
    for l in &listeners {
        let got = announcements(l, "$.t.m", 60);
        let distinct: HashSet<&[u8]> = got.iter().map(|m| &m.data[..]).collect();
        assert_eq!(distinct.len(), 60, "each message exactly once");
        for i in 0..3 {
            let from_i: Vec<String> = got
                .iter()
                .map(|m| String::from_utf8_lossy(&m.data).into_owned())
                .filter(|d| d.starts_with(&format!("{i}:")))
                .collect();
            let want: Vec<String> = (0..20).map(|k| format!("{i}:{k}")).collect();
            assert_eq!(from_i, want, "in each sender's order");
        }
        assert_quiet(l, "no duplicates");
    }
    // A request from C to a replier on A.
    let r = buses[0].open().unwrap();
    r.bind_replier("$.t.svc").unwrap();
    until_served(&buses[2], "$.t.svc");
    let t = std::thread::spawn(move || {
        let m = next(&r);
        r.reply(&m, "from a").unwrap();
        r
    });
    let reply = senders[2]
        .call("$.t.svc", "from c", Some(PATIENCE))
        .unwrap();
    assert_eq!(&reply.data[..], b"from a");
    let _ = t.join().unwrap();
    drop((ba, bb, bc));
}

#[test]
fn three_buses_in_a_line() {
    three(true);
}

#[test]
fn three_buses_in_a_star() {
    three(false);
}

/// A bridge takes from its bus only what listeners elsewhere want: its tap
/// follows their patterns, so other traffic never reaches it.
#[test]
fn only_what_someone_elsewhere_listens_to_leaves_the_bus() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let s = a.open().unwrap();
    let l = b.open().unwrap();
    l.bind("$.x.*").unwrap();
    until_crossing(&s, &l, "$.x.probe");
    let tap_bindings = |bus: &Bus| -> Vec<(EndpointId, String)> {
        bus.list_bindings()
            .unwrap()
            .into_iter()
            .filter(|b| b.pid != std::process::id() && !b.replier)
            .map(|b| (b.endpoint, b.name.to_string()))
            .collect()
    };
    let taps = tap_bindings(&a);
    assert_eq!(taps.len(), 1, "{taps:?}");
    assert_eq!(taps[0].1, "$.x.*");
    let tap = taps[0].0;
    let received = |bus: &Bus| {
        bus.stats()
            .unwrap()
            .endpoint_stats
            .iter()
            .find(|e| e.id == tap)
            .unwrap()
            .received
    };
    let before = received(&a);
    for i in 0..100 {
        s.announce("$.y.other", format!("{i}")).unwrap();
    }
    s.announce("$.x.last", "marker").unwrap();
    assert_eq!(&next(&l).data[..], b"marker");
    assert_eq!(received(&a), before + 1, "only the marker reached the tap");
    // The listener goes: so does the tap's binding.
    l.unbind("$.x.*").unwrap();
    let end = Instant::now() + PATIENCE;
    while !tap_bindings(&a).is_empty() {
        assert!(Instant::now() < end, "the tap kept listening");
        std::thread::sleep(Duration::from_millis(10));
    }
}
