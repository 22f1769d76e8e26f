//! Buses on one machine joined by real `busbar-zenoh` processes over Zenoh
//! (unix sockets), each daemon on its own socket: announcements, requests,
//! the reply guarantee when a replier, a bridge or a deadline fails, larger
//! topologies, and bad input.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use busbar::{
    Bytes, Endpoint, EndpointId, Flags, Message, MessageId, OrigFrom, Outgoing, synthetic,
};
use busbar_zenoh::envelope::{Envelope, Kind};
use support::*;

/// Helper processes (this binary run again; see `support::Helper`).
#[test]
fn helper() {
    let Ok(role) = std::env::var("BBZ_HELPER") else {
        return;
    };
    let bus = Bus::connect(std::env::var("BBZ_SOCKET").unwrap()).unwrap();
    let arg = std::env::var("BBZ_ARG").unwrap();
    match role.as_str() {
        // Binds a replier, reads ARG requests without answering, then
        // waits to be killed.
        "hold" => {
            let (name, n) = arg.split_once(' ').unwrap();
            let r = bus.open().unwrap();
            r.bind_replier(name).unwrap();
            println!("bound");
            for i in 0..n.parse::<u32>().unwrap() {
                let m = r.recv().unwrap();
                assert!(m.wants_us_to_reply());
                println!("holding {i}");
            }
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown helper {other}"),
    }
}

use busbar::Bus;

/// Two daemons and two bridges joined over a unix socket.
struct Pair {
    a: TestDaemon,
    b: TestDaemon,
    ba: TestBridge,
    bb: TestBridge,
    dir: Dir,
}

fn pair(extra_a: &[&str], extra_b: &[&str]) -> Pair {
    let dir = Dir::new();
    let a = TestDaemon::start(&dir, "a");
    let b = TestDaemon::start(&dir, "b");
    let z = zsock(&dir, "z.sock");
    let mut args_a = vec!["--listen", z.as_str(), "--namespace", "t"];
    args_a.extend_from_slice(extra_a);
    let ba = TestBridge::start(&dir, &a, 1, &args_a);
    // Connect only once the listener is up.
    ba.wait_log("bridging bus");
    let mut args_b = vec!["--connect", z.as_str(), "--namespace", "t"];
    args_b.extend_from_slice(extra_b);
    let bb = TestBridge::start(&dir, &b, 2, &args_b);
    bb.wait_log("bridging bus");
    Pair { a, b, ba, bb, dir }
}

/// The next `n` messages named `name` (earlier probes may still come in
/// first: a sender's messages arrive in its order).
fn announcements(ep: &Endpoint, name: &str, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = next(ep);
        if &*m.name == name {
            got.push(m);
        }
    }
    got
}

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
fn requests_cross_both_ways_and_keep_their_ids() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let rb = b.open().unwrap();
    rb.bind_replier("$.svc.b").unwrap();
    let ra = a.open().unwrap();
    ra.bind_replier("$.svc.a.*").unwrap();
    until_served(&a, "$.svc.b");
    until_served(&b, "$.svc.a.x");

    // A → B, served by a replier thread on B.
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let q = next(&rb);
            assert!(q.wants_us_to_reply());
            assert_eq!(q.id.network, 1, "the request's id carries its origin");
            assert_eq!(q.orig_from.network, 1);
            let reply = format!("b got {}", String::from_utf8_lossy(&q.data));
            rb.reply(&q, reply).unwrap();
        }
        rb
    });
    let qa = a.open().unwrap();
    let id = qa.request("$.svc.b", "one").unwrap();
    let r = qa.wait_reply(id, Some(PATIENCE)).unwrap();
    assert_eq!(&r.data[..], b"b got one");
    assert_eq!(r.in_reply_to, id, "in_reply_to is the requester's own id");
    assert!(r.is_reply() && !r.is_synthetic());
    assert_eq!(
        r.id.network, 2,
        "the reply's id carries the replier's network"
    );
    assert_eq!(r.orig_from.network, 2);

    // A stateful request goes back to the same replier, across.
    let id2 = qa
        .send(Outgoing::stateful_request(&r, "$.svc.b", "two"))
        .unwrap();
    let r2 = qa.wait_reply(id2, Some(PATIENCE)).unwrap();
    assert_eq!(&r2.data[..], b"b got two");
    let _rb = server.join().unwrap();

    // B → A, to a wildcard replier.
    let qb = b.open().unwrap();
    let t = std::thread::spawn(move || {
        let q = next(&ra);
        assert_eq!(&*q.name, "$.svc.a.deep.name");
        ra.reply(&q, q.data.clone()).unwrap();
        ra
    });
    let r = qb
        .call("$.svc.a.deep.name", "echo me", Some(PATIENCE))
        .unwrap();
    assert_eq!(&r.data[..], b"echo me");
    let _ra = t.join().unwrap();
}

#[test]
fn a_replier_killed_holding_requests_answers_each_once() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let mut h = Helper::start("hold", &p.b.socket, "$.hold 2");
    h.line("bound");
    until_served(&a, "$.hold");
    let q = a.open().unwrap();
    let ids: Vec<MessageId> = (0..3)
        .map(|i| q.request("$.hold", format!("r{i}")).unwrap())
        .collect();
    // Two are read (held); the third waits in the replier's queue.
    h.line("holding 1");
    let end = Instant::now() + PATIENCE;
    while b
        .stats()
        .unwrap()
        .endpoint_stats
        .iter()
        .all(|e| e.queued == 0)
    {
        assert!(Instant::now() < end, "the third request never got queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.kill();
    let mut names = Vec::new();
    for id in &ids {
        let r = q.wait_reply(*id, Some(PATIENCE)).unwrap();
        assert!(r.is_synthetic(), "{} is synthetic", r.name);
        assert_eq!(r.in_reply_to, *id);
        names.push(r.name.to_string());
    }
    assert_eq!(
        names,
        [synthetic::IGNORED, synthetic::IGNORED, synthetic::GONE_AWAY]
    );
    until_unserved(&a, "$.hold");
    assert_quiet(&q, "exactly one reply each");
}

#[test]
fn a_deadline_answers_disappeared() {
    let p = pair(&["--deadline", "1"], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let r = b.open().unwrap();
    r.bind_replier("$.slow").unwrap();
    until_served(&a, "$.slow");
    let q = a.open().unwrap();
    let t0 = Instant::now();
    let id = q.request("$.slow", "x").unwrap();
    let held = next(&r);
    assert!(held.wants_us_to_reply());
    let reply = q.wait_reply(id, Some(PATIENCE)).unwrap();
    assert_eq!(&*reply.name, synthetic::DISAPPEARED);
    assert!(reply.is_synthetic());
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // The late real reply goes nowhere: the requester already has its one.
    r.reply(&held, "too late").unwrap();
    assert_quiet(&q, "exactly one reply");
}

#[test]
fn a_killed_bridge_answers_its_requests_and_resumes_when_restarted() {
    let mut p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let r = b.open().unwrap();
    r.bind_replier("$.svc").unwrap();
    until_served(&a, "$.svc");
    let q = a.open().unwrap();
    let id = q.request("$.svc", "held").unwrap();
    let _held = next(&r);
    p.bb.kill();
    let reply = q.wait_reply(id, Some(PATIENCE)).unwrap();
    assert!(reply.is_synthetic());
    assert_eq!(&*reply.name, synthetic::DISAPPEARED);
    until_unserved(&a, "$.svc");
    assert_quiet(&q, "exactly one reply");

    p.bb.restart();
    until_served(&a, "$.svc");
    let t = std::thread::spawn(move || {
        let m = next(&r);
        r.reply(&m, "again").unwrap();
        r
    });
    let reply = q.call("$.svc", "x", Some(PATIENCE)).unwrap();
    assert_eq!(&reply.data[..], b"again");
    let _ = t.join().unwrap();
    drop(p.dir);
}

#[test]
fn what_a_bus_cannot_take_is_answered_not_lost() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let r = b.open().unwrap();
    r.bind_replier("$.big").unwrap();
    until_served(&a, "$.big");
    // A reply larger than the requester's bus allows.
    a.set_max_message_size(1024).unwrap();
    let t = std::thread::spawn(move || {
        let q = next(&r);
        r.reply(&q, vec![7u8; 8192]).unwrap();
        r
    });
    let q = a.open().unwrap();
    let reply = q.call("$.big", "x", Some(PATIENCE)).unwrap();
    assert_eq!(&*reply.name, "$.KBUS.RemoteError.EMSGSIZE");
    assert!(reply.is_synthetic());
    let r = t.join().unwrap();
    // A request carrying a file descriptor: fds do not cross machines.
    let fd: std::os::fd::OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let id = q
        .send(Outgoing::request("$.big", "with an fd").with_fds(vec![fd]))
        .unwrap();
    let reply = q.wait_reply(id, Some(PATIENCE)).unwrap();
    assert_eq!(&*reply.name, "$.KBUS.RemoteError.EOPNOTSUPP");
    assert_quiet(&r, "the replier never saw it");
    assert_quiet(&q, "exactly one reply each");
}

/// With replier bind events on (a KBUS program's doing) and a listener of
/// them full, a proxy's bind fails `EAGAIN`: the bridge carries on and binds
/// once there is room.
#[test]
fn a_refused_proxy_bind_is_retried() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let w = a.open().unwrap();
    w.set_queue_limit(1).unwrap();
    w.bind("$.KBUS.ReplierBindEvent").unwrap();
    w.set_replier_bind_events(true).unwrap();
    let fill = a.open().unwrap();
    fill.bind_replier("$.fill").unwrap();
    let r = b.open().unwrap();
    r.bind_replier("$.late").unwrap();
    p.ba.wait_log("cannot bind a remote replier's pattern");
    assert_eq!(a.find_replier("$.late").unwrap(), None);
    // Room: the next rescan binds it.
    assert_eq!(&*next(&w).name, "$.KBUS.ReplierBindEvent");
    until_served(&a, "$.late");
    let t = std::thread::spawn(move || {
        let m = next(&r);
        r.reply(&m, "late but there").unwrap();
        r
    });
    let q = a.open().unwrap();
    let reply = q.call("$.late", "x", Some(PATIENCE)).unwrap();
    assert_eq!(&reply.data[..], b"late but there");
    let _ = t.join().unwrap();
}

#[test]
fn one_replier_per_name_across_machines() {
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let ra = a.open().unwrap();
    ra.bind_replier("$.only").unwrap();
    until_served(&b, "$.only");
    let rb = b.open().unwrap();
    assert_eq!(
        rb.bind_replier("$.only"),
        Err(busbar::Errno::EADDRINUSE),
        "a name served on another machine is taken here too"
    );
    // A different pattern is fine.
    rb.bind_replier("$.only.more").unwrap();
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

#[test]
fn bad_input_is_counted_and_dropped() {
    use zenoh::Wait;
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let l = a.open().unwrap();
    l.bind("$.in.*").unwrap();
    let r = a.open().unwrap();
    r.bind_replier("$.in.svc").unwrap();
    let s = b.open().unwrap();
    until_crossing(&s, &l, "$.in.probe");

    let mut config = zenoh::Config::default();
    config
        .insert_json5(
            "connect/endpoints",
            &format!("[{:?}]", zsock(&p.dir, "z.sock")),
        )
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let z = zenoh::open(config).wait().unwrap();
    // Garbage, a truncated envelope, an empty one, a valid one under
    // another name's key, and a request on the announcement path.
    let envelope = |kind: Kind, name: &str, flags: Flags| {
        let header = busbar::Header {
            id: MessageId {
                network: 9,
                serial: 1,
            },
            in_reply_to: MessageId::NONE,
            to: EndpointId::BUS,
            from: EndpointId(3),
            orig_from: OrigFrom::default(),
            final_to: OrigFrom::default(),
            name: name.into(),
            data: Bytes::new(),
            creds: Default::default(),
            fds: None,
        };
        Envelope {
            kind,
            origin: 9,
            instance: 1,
            seq: 1,
            message: Message::new(header, flags),
        }
        .encode()
    };
    let good = envelope(Kind::Announcement, "$.in.y", Flags::default());
    let puts: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![],
        good.clone(),
        envelope(Kind::Request, "$.in.x", Flags::WANT_A_REPLY),
    ];
    // Sent once this session sees the bridge's subscriber and queryable
    // (declarations cross asynchronously).
    let publisher = z.declare_publisher("busbar/t/in/x").wait().unwrap();
    let querier = z
        .declare_querier("busbar-bridge/t/1/request/in/svc")
        .timeout(Duration::from_secs(5))
        .wait()
        .unwrap();
    let end = Instant::now() + PATIENCE;
    while !(publisher.matching_status().wait().unwrap().matching()
        && querier.matching_status().wait().unwrap().matching())
    {
        assert!(Instant::now() < end, "never saw the bridge on Zenoh");
        std::thread::sleep(Duration::from_millis(10));
    }
    for v in puts {
        publisher.put(v).wait().unwrap();
    }
    let replies = querier
        .get()
        .payload(b"not a request".to_vec())
        .wait()
        .unwrap();
    while replies.recv().is_ok() {}
    p.ba.wait_log("dropped bad input");
    p.ba.wait_log("(6 so far");
    assert_quiet(&l, "nothing bad was delivered");
    assert_quiet(&r, "nothing bad reached the replier");
    // And the bridge still works.
    s.announce("$.in.after", "ok").unwrap();
    assert_eq!(&next(&l).data[..], b"ok");
    drop(z);
}

#[test]
fn names_limit_what_crosses() {
    let p = pair(&["--names", "$.a.*"], &[]);
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
}

#[test]
fn a_bridge_stops_cleanly_and_its_repliers_go() {
    let mut p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let r = b.open().unwrap();
    r.bind_replier("$.svc").unwrap();
    until_served(&a, "$.svc");
    assert!(p.bb.terminate().success());
    until_unserved(&a, "$.svc");
    let q = a.open().unwrap();
    assert_eq!(
        q.request("$.svc", "x"),
        Err(busbar::Errno::EADDRNOTAVAIL),
        "no replier anywhere now"
    );
    let _ = EndpointId::BUS;
}

#[test]
fn bad_arguments_say_what_to_do() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_busbar-zenoh"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (args, says) in [
        (&["--namespace", "a/b"][..], "bad namespace"),
        (&["--names", "$.a.**"][..], "give patterns like"),
        (&["--listen", "foo"][..], "give tcp/HOST:PORT"),
        (&["--connect", "udp/h:1"][..], "give tcp/HOST:PORT"),
        (&["--network-id", "0"][..], "--network-id"),
        (&["--rescan", "0"][..], "between 1 and 60000"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let dir = Dir::new();
    let missing = dir.path("none.sock");
    let (code, err) = run(&["--socket", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no busbar daemon socket"), "{err}");
}
