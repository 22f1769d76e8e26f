//! Blocking calls: `recv`, `call`, `wait_reply`, `take_reply`.

use std::time::Duration;

use busbar::{Bus, Errno, synthetic};

use crate::util::*;

/// A `recv` blocked in another thread wakes for a message.
pub fn recv_wakes(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    let (got, id) = std::thread::scope(|sc| {
        let t = sc.spawn(|| l.recv().unwrap());
        let id = s.announce("$.a", &b"wake"[..]).unwrap();
        (t.join().unwrap(), id)
    });
    assert_eq!((got.id, &got.data[..]), (id, &b"wake"[..]));
}

/// `call` sends a request and returns its reply.
pub fn call_returns_reply(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let (rep, req_id, rep_id) = std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            let req = r.recv().unwrap();
            assert_eq!(&req.data[..], b"ping");
            (req.id, r.reply(&req, &b"pong"[..]).unwrap())
        });
        let rep = q.call("$.svc", &b"ping"[..], Some(GUARD)).unwrap();
        let (a, b) = t.join().unwrap();
        (rep, a, b)
    });
    assert_eq!(
        (rep.id, rep.in_reply_to, rep.from, rep.to),
        (rep_id, req_id, r.id(), q.id())
    );
    assert_eq!(&rep.data[..], b"pong");
    assert!(!rep.is_synthetic());
    assert_empty(&q);
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// `call` leaves every other message queued, in order.
pub fn call_leaves_others_queued(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, s] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.bind("$.*").unwrap();
    let a1 = s.announce("$.x", &b""[..]).unwrap();
    let a2 = s.announce("$.y", &b""[..]).unwrap();
    let rep = std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            let req = r.recv().unwrap();
            r.reply(&req, &b""[..]).unwrap()
        });
        let rep = q.call("$.svc", &b""[..], Some(GUARD)).unwrap();
        assert_eq!(rep.id, t.join().unwrap());
        rep
    });
    // Left: the two announcements, q's listener copies of its request and of the reply.
    assert_eq!(ids(&drain(&q)), [a1, a2, rep.in_reply_to, rep.id]);
}

/// `call` with no replier fails at once with `EADDRNOTAVAIL`.
pub fn call_no_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q] = open_n(&bus);
    assert_no_effect(&bus, Errno::EADDRNOTAVAIL, || {
        q.call("$.svc", &b""[..], Some(GUARD))
    });
}

/// `call` to a replier that closes without reading returns `GoneAway`.
pub fn call_gone_away(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let rid = r.id();
    let rep = std::thread::scope(|sc| {
        let t = sc.spawn(move || {
            assert!(becomes_readable(&r), "the request arrives");
            r.close().unwrap();
        });
        let rep = q.call("$.svc", &b""[..], Some(GUARD));
        t.join().unwrap();
        rep.unwrap()
    });
    assert!(rep.is_synthetic());
    assert_synthetic(&rep, synthetic::GONE_AWAY, rid, q.id(), rep.in_reply_to);
    assert_eq!(rep.in_reply_to, serial(1));
}

/// `call` to a replier that reads the request and closes returns `Ignored`.
pub fn call_ignored(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let rid = r.id();
    let rep = std::thread::scope(|sc| {
        let t = sc.spawn(move || {
            let req = r.recv().unwrap();
            r.close().unwrap();
            req.id
        });
        let rep = q.call("$.svc", &b""[..], Some(GUARD)).unwrap();
        assert_eq!(rep.in_reply_to, t.join().unwrap());
        rep
    });
    assert_synthetic(&rep, synthetic::IGNORED, rid, q.id(), rep.in_reply_to);
}

/// `call` times out with `ETIMEDOUT`; the reply still arrives later, in the
/// ordinary queue.
pub fn call_timeout(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    assert_err(
        q.call("$.svc", &b""[..], Some(Duration::from_millis(20))),
        Errno::ETIMEDOUT,
    );
    assert_eq!(q.stats().unwrap().outstanding_requests, 1);
    let req = next(&r);
    let rid = r.reply(&req, &b"late"[..]).unwrap();
    let m = next(&q);
    assert_eq!(
        (m.id, m.in_reply_to, &m.data[..]),
        (rid, req.id, &b"late"[..])
    );
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// `wait_reply` waits for the reply to an earlier request, leaving others queued.
pub fn wait_reply(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, s] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.bind("$.x").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    let a = s.announce("$.x", &b""[..]).unwrap();
    let rep = std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            let req = r.recv().unwrap();
            r.reply(&req, &b""[..]).unwrap()
        });
        let rep = q.wait_reply(id, Some(GUARD)).unwrap();
        assert_eq!(rep.id, t.join().unwrap());
        rep
    });
    assert_eq!(rep.in_reply_to, id);
    assert_eq!(ids(&drain(&q)), [a]);
    assert_err(q.wait_reply(id, Some(GUARD)), Errno::EINVAL);
    let id2 = q.request("$.svc", &b""[..]).unwrap();
    assert_err(
        q.wait_reply(id2, Some(Duration::from_millis(10))),
        Errno::ETIMEDOUT,
    );
}

/// `take_reply`: `None` until the reply is there, then the reply (real or
/// synthetic), then `EINVAL`.
pub fn take_reply(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let a = q.request("$.svc", &b""[..]).unwrap();
    let b = q.request("$.svc", &b""[..]).unwrap();
    assert_eq!(q.take_reply(a).unwrap(), None);
    assert_err(q.take_reply(serial(999)), Errno::EINVAL);
    let req = next(&r);
    let rid = r.reply(&req, &b""[..]).unwrap();
    let rrid = r.id();
    r.close().unwrap();
    // Replies can be taken out of order.
    let gb = q.take_reply(b).unwrap().unwrap();
    assert_synthetic(&gb, synthetic::GONE_AWAY, rrid, q.id(), b);
    let ga = q.take_reply(a).unwrap().unwrap();
    assert_eq!((ga.id, ga.in_reply_to), (rid, a));
    assert_err(q.take_reply(a), Errno::EINVAL);
    assert_err(q.take_reply(b), Errno::EINVAL);
    assert_empty(&q);
}
