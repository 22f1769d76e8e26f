//! Blocking calls: `recv`, `call`, `wait_reply`, `take_reply`,
//! `reply_then_recv`, `serve`.

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

/// `reply_then_recv`: the reply reaches its requester, then the next
/// message is returned; a failed reply (requester gone) is reported and the
/// wait still happens.
pub fn reply_then_recv(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    let id1 = q.request("$.svc", &b"one"[..]).unwrap();
    let id2 = q.request("$.svc", &b"two"[..]).unwrap();
    let first = r.recv().unwrap();
    assert_eq!(first.id, id1);
    let (sent, second) = r.reply_then_recv(&first, &b"1"[..], Some(GUARD)).unwrap();
    assert_eq!(sent, Ok(()));
    let second = second.unwrap();
    assert_eq!((second.id, second.wants_us_to_reply()), (id2, true));
    let reply = q.wait_reply(id1, Some(GUARD)).unwrap();
    assert_eq!(
        (&reply.data[..], reply.from, reply.in_reply_to),
        (&b"1"[..], r.id(), id1)
    );
    // The listener saw request, request, reply in bus order.
    let seen: Vec<_> = std::iter::from_fn(|| l.try_recv().unwrap())
        .map(|m| m.id)
        .collect();
    assert_eq!(seen, [id1, id2, reply.id]);
    // The requester goes away: the reply fails, the wait still times out.
    drop(q);
    let (sent, next) = r
        .reply_then_recv(&second, &b"2"[..], Some(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(sent, Err(Errno::EADDRNOTAVAIL));
    assert_eq!(next, None);
    assert_eq!(r.stats().unwrap().owed_replies, 0);
}

/// `serve`: answers each request with the handler's data, skips other
/// messages, stops after `count`, and does not fail when a requester left.
pub fn serve(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, gone] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    r.bind("$.noise").unwrap();
    q.announce("$.noise", &b"skip me"[..]).unwrap();
    gone.request("$.svc", &b"nobody waits"[..]).unwrap();
    drop(gone);
    let ids: Vec<_> = (0..3)
        .map(|i| q.request("$.svc", vec![b'a' + i]).unwrap())
        .collect();
    let answered = std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            r.serve(Some(4), |m| {
                let mut d = m.data.to_vec();
                d.make_ascii_uppercase();
                d.into()
            })
        });
        t.join().unwrap().unwrap()
    });
    assert_eq!(answered, 4);
    for (i, id) in ids.into_iter().enumerate() {
        let m = q.wait_reply(id, Some(GUARD)).unwrap();
        assert_eq!(m.data[..], [b'A' + i as u8]);
    }
    assert_eq!(r.stats().unwrap().owed_replies, 0);
    assert_eq!(r.serve(Some(0), |_| busbar::Bytes::new()).unwrap(), 0);
}

/// `serve` stops with the error as soon as a reply cannot be sent (here:
/// larger than the bus's maximum message size), not when the next request
/// comes: the request stays owed, and closing the replier answers it
/// `Ignored`, so its requester is never left waiting.
pub fn serve_reply_fails(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    bus.set_max_message_size(100).unwrap();
    r.bind_replier("$.svc").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    let served = std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        let r = &r;
        sc.spawn(move || tx.send(r.serve(None, |_| vec![0u8; 200].into())));
        let served = rx.recv_timeout(GUARD);
        if served.is_err() {
            // Unblock a serve that waits for the next request, then fail.
            let _ = q.request("$.svc", &b""[..]);
            panic!("serve still waiting {GUARD:?} after a reply it could not send");
        }
        served.unwrap()
    });
    assert_err(served, Errno::EMSGSIZE);
    assert_eq!(
        r.stats().unwrap().owed_replies,
        1,
        "the request is still owed"
    );
    assert_eq!(q.take_reply(id).unwrap(), None);
    r.close().unwrap();
    let m = q.wait_reply(id, Some(GUARD)).unwrap();
    assert_eq!(&*m.name, synthetic::IGNORED);
}

/// `try_serve` stops as soon as the handler fails, naming the request,
/// which stays owed until the replier closes (then it is `Ignored`); the
/// requests before it were answered.
pub fn try_serve_handler_fails(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let ok = q.request("$.svc", &b"fine"[..]).unwrap();
    let bad = q.request("$.svc", &b"bad"[..]).unwrap();
    let stopped = r.try_serve(None, |m| {
        if &m.data[..] == b"bad" {
            Err("cannot do that")
        } else {
            Ok(m.data.clone())
        }
    });
    assert_eq!(
        stopped,
        Err(busbar::ServeError::Handler {
            request: bad,
            requester: q.id(),
            error: "cannot do that"
        })
    );
    assert_eq!(&q.wait_reply(ok, Some(GUARD)).unwrap().data[..], b"fine");
    assert_eq!(r.stats().unwrap().owed_replies, 1);
    r.close().unwrap();
    let m = q.wait_reply(bad, Some(GUARD)).unwrap();
    assert_eq!(&*m.name, synthetic::IGNORED);
}
