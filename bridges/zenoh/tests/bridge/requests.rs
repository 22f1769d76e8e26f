//! Requests and the reply guarantee: both ways with ids kept, a killed
//! replier, a deadline, a killed and a stopped bridge, what a bus refuses,
//! one replier per name, a refused proxy bind.

use super::*;

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
