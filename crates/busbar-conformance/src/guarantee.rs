//! The reply guarantee: every accepted request gets exactly one reply, real
//! or synthetic.

use busbar::{Bus, Endpoint, EndpointId, Errno, Flags, Outgoing, SendOutcome, synthetic};

use crate::util::*;

/// Replier, requester and an all-hearing listener (which must never see a
/// synthetic reply).
fn setup(bus: &Bus) -> [Endpoint; 3] {
    let [q, r, l] = open_n(bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.*").unwrap();
    [q, r, l]
}

#[track_caller]
fn assert_settled(q: &Endpoint, l: &Endpoint) {
    assert_empty(q);
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
    let heard = drain(l);
    assert!(
        heard.iter().all(|m| !m.is_synthetic()),
        "listeners never get synthetic replies: {heard:#?}"
    );
}

/// Replier closes with the request unread: `$.KBUS.Replier.GoneAway`.
pub fn gone_away(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = q.request("$.svc", &b"x"[..]).unwrap();
    let rid = r.id();
    let s = next_serial(&bus);
    r.close().unwrap();
    let m = next(&q);
    assert_synthetic(&m, synthetic::GONE_AWAY, rid, q.id(), id);
    assert_eq!(m.id, serial(s));
    assert!(m.is_reply());
    assert_settled(&q, &l);
}

/// Replier closes after taking the request: `$.KBUS.Replier.Ignored`.
pub fn ignored(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = q.request("$.svc", &b""[..]).unwrap();
    next(&r);
    let rid = r.id();
    r.close().unwrap();
    let m = next(&q);
    assert_synthetic(&m, synthetic::IGNORED, rid, q.id(), id);
    assert_settled(&q, &l);
}

/// Owed requests are answered `Ignored` in id order, not the order taken.
pub fn ignored_in_id_order(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q1, r, l] = setup(&bus);
    let q2 = open(&bus);
    let a = q1.request("$.svc", &b""[..]).unwrap();
    let b = q2.request("$.svc", &b""[..]).unwrap();
    let c = q1
        .send(Outgoing::request("$.svc", &b""[..]).with_flags(Flags::URGENT))
        .unwrap();
    // Taken as c, a, b.
    assert_eq!(ids(&[next(&r), next(&r), next(&r)]), [c, a, b]);
    let rid = r.id();
    let s = next_serial(&bus);
    r.close().unwrap();
    let ia = next(&q1);
    let ic = next(&q1);
    let ib = next(&q2);
    assert_synthetic(&ia, synthetic::IGNORED, rid, q1.id(), a);
    assert_synthetic(&ib, synthetic::IGNORED, rid, q2.id(), b);
    assert_synthetic(&ic, synthetic::IGNORED, rid, q1.id(), c);
    assert_eq!(
        [ia.id, ib.id, ic.id],
        [serial(s), serial(s + 1), serial(s + 2)]
    );
    assert_settled(&q1, &l);
    assert_settled(&q2, &l);
}

/// Replier unbinds with the request unread: `$.KBUS.Replier.Unbound`.
pub fn unbound(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = q.request("$.svc", &b""[..]).unwrap();
    r.unbind_replier("$.svc").unwrap();
    let m = next(&q);
    assert_synthetic(&m, synthetic::UNBOUND, r.id(), q.id(), id);
    assert_empty(&r);
    assert_settled(&q, &l);
}

/// Fills `r` (limit 1) with a request from a fresh endpoint, which is returned.
fn fill_replier(bus: &Bus, r: &Endpoint, name: &str) -> Endpoint {
    r.set_queue_limit(1).unwrap();
    let filler = open(bus);
    filler.request(name, &b""[..]).unwrap();
    filler
}

/// A pending `ALL_OR_WAIT` request that finds no replier when retried:
/// `$.KBUS.Replier.Disappeared` from the bus, outcome `EADDRNOTAVAIL`.
pub fn disappeared(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let filler = fill_replier(&bus, &r, "$.svc");
    let s = next_serial(&bus);
    assert_err(
        q.send(Outgoing::request("$.svc", &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        Errno::EAGAIN,
    );
    let id = serial(s);
    let st = q.stats().unwrap();
    assert_eq!((st.pending_send, st.outstanding_requests), (Some(id), 1));
    assert_eq!(q.take_send_outcome().unwrap(), None);
    r.unbind_replier("$.svc").unwrap();
    let u = next(&filler);
    assert_synthetic(&u, synthetic::UNBOUND, r.id(), filler.id(), serial(s - 1));
    assert_eq!(
        q.take_send_outcome().unwrap(),
        Some(SendOutcome {
            id,
            result: Err(Errno::EADDRNOTAVAIL)
        })
    );
    let m = next(&q);
    assert_synthetic(&m, synthetic::DISAPPEARED, EndpointId::BUS, q.id(), id);
    assert!(m.id.serial > u.id.serial);
    assert_eq!(q.stats().unwrap().pending_send, None);
    assert_settled(&q, &l);
}

/// A pending `ALL_OR_WAIT` request that fails otherwise when retried (here
/// `EPIPE`): `$.KBUS.ErrorSending` from the bus.
pub fn error_sending(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    r.bind_replier("$.a.*").unwrap();
    fill_replier(&bus, &r, "$.a.x");
    let out = Outgoing {
        to: r.id(),
        ..Outgoing::request("$.a.b", &b""[..]).with_flags(Flags::ALL_OR_WAIT)
    };
    let id = serial(next_serial(&bus));
    assert_err(q.send(out), Errno::EAGAIN);
    // A more specific replier takes `$.a.b` away from `r`.
    let r2 = open(&bus);
    r2.bind_replier("$.a.b").unwrap();
    assert_eq!(
        q.take_send_outcome().unwrap(),
        Some(SendOutcome {
            id,
            result: Err(Errno::EPIPE)
        })
    );
    let m = next(&q);
    assert_synthetic(&m, synthetic::ERROR_SENDING, EndpointId::BUS, q.id(), id);
    assert_empty(&r2);
    assert_settled(&q, &l);
}

fn stateful(q: &Endpoint, r: &Endpoint) -> busbar::MessageId {
    q.send(Outgoing {
        to: r.id(),
        ..Outgoing::request("$.svc", &b""[..])
    })
    .unwrap()
}

/// Stateful requests get `GoneAway` too.
pub fn stateful_gone_away(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = stateful(&q, &r);
    let rid = r.id();
    r.close().unwrap();
    assert_synthetic(&next(&q), synthetic::GONE_AWAY, rid, q.id(), id);
    assert_settled(&q, &l);
}

/// Stateful requests get `Ignored` too.
pub fn stateful_ignored(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = stateful(&q, &r);
    assert!(next(&r).is_stateful_request());
    let rid = r.id();
    r.close().unwrap();
    assert_synthetic(&next(&q), synthetic::IGNORED, rid, q.id(), id);
    assert_settled(&q, &l);
}

/// Stateful requests get `Unbound` too.
pub fn stateful_unbound(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    let id = stateful(&q, &r);
    r.unbind_replier("$.svc").unwrap();
    assert_synthetic(&next(&q), synthetic::UNBOUND, r.id(), q.id(), id);
    assert_settled(&q, &l);
}

/// Exactly one reply: nothing more after a real or synthetic one.
pub fn exactly_one(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    // Real reply, then the replier unbinds and closes: nothing more.
    let a = q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    r.reply(&req, &b""[..]).unwrap();
    // Unbound, then the replier closes: no GoneAway/Ignored on top.
    let b = q.request("$.svc", &b""[..]).unwrap();
    r.unbind_replier("$.svc").unwrap();
    r.close().unwrap();
    let got = drain(&q);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!((got[0].in_reply_to, got[0].is_synthetic()), (a, false));
    assert_eq!((got[1].in_reply_to, &*got[1].name), (b, synthetic::UNBOUND));
    assert_settled(&q, &l);
}

/// Synthetic replies answer requests only: a pending reply that fails on
/// retry (its requester closed) reports through the send outcome, and nobody
/// gets a synthetic message.
pub fn pending_reply_no_synthetic(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = setup(&bus);
    q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    drain(&l);
    l.set_queue_limit(1).unwrap();
    open(&bus).announce("$.fill", &b""[..]).unwrap(); // l is full
    let id = serial(next_serial(&bus));
    assert_err(
        r.send(Outgoing::reply_to(&req, &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        Errno::EAGAIN,
    );
    assert_empty(&q);
    q.close().unwrap();
    assert_eq!(
        r.take_send_outcome().unwrap(),
        Some(SendOutcome {
            id,
            result: Err(Errno::EADDRNOTAVAIL)
        })
    );
    assert_empty(&r);
    next(&l);
    assert_empty(&l);
    assert_eq!(r.stats().unwrap().owed_replies, 0);
}

/// Two requesters forwarding requests with the same id (bridges do) never
/// share the replier's debt: each gets its own reply, and when the replier
/// closes owing both, each gets its own `Ignored`.
pub fn forwarded_ids_never_collide(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q1, r, l] = setup(&bus);
    let q2 = open(&bus);
    let same = busbar::MessageId {
        network: 9,
        serial: 77,
    };
    let forwarded = || Outgoing {
        id: same,
        ..Outgoing::request("$.svc", &b"fwd"[..])
    };
    assert_eq!(q1.send(forwarded()).unwrap(), same);
    assert_eq!(q2.send(forwarded()).unwrap(), same);
    let (a, b) = (next(&r), next(&r));
    assert_eq!((a.from, b.from), (q1.id(), q2.id()));
    r.reply(&b, &b"to q2"[..]).unwrap();
    r.reply(&a, &b"to q1"[..]).unwrap();
    assert_eq!(&next(&q1).data[..], b"to q1");
    assert_eq!(&next(&q2).data[..], b"to q2");
    // Owing both again, the replier closes: each requester is answered.
    q1.send(forwarded()).unwrap();
    q2.send(forwarded()).unwrap();
    next(&r);
    next(&r);
    let rid = r.id();
    r.close().unwrap();
    assert_synthetic(&next(&q1), synthetic::IGNORED, rid, q1.id(), same);
    assert_synthetic(&next(&q2), synthetic::IGNORED, rid, q2.id(), same);
    drain(&l);
}
