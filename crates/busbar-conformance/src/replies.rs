//! Reply rules: only the replier that took the request, once, to the
//! requester; `EADDRNOTAVAIL` once the requester has gone.

use busbar::{Bus, Errno, MessageId, Outgoing};

use crate::util::*;

fn setup(bus: &Bus) -> [busbar::Endpoint; 4] {
    let [q, r, l, x] = open_n(bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    [q, r, l, x]
}

/// Only the endpoint that took the request as replier may answer it.
pub fn only_designated_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l, x] = setup(&bus);
    q.request("$.svc", &b""[..]).unwrap();
    let copy = next(&l);
    // A listener, a third party, even the requester: refused.
    assert_no_effect(&bus, Errno::ECONNREFUSED, || l.reply(&copy, &b""[..]));
    assert_no_effect(&bus, Errno::ECONNREFUSED, || x.reply(&copy, &b""[..]));
    assert_no_effect(&bus, Errno::ECONNREFUSED, || q.reply(&copy, &b""[..]));
    // The replier, before it has taken the request: refused too.
    assert_no_effect(&bus, Errno::ECONNREFUSED, || r.reply(&copy, &b""[..]));
    let req = next(&r);
    let id = r.reply(&req, &b"ok"[..]).unwrap();
    assert_eq!(next(&q).id, id);
}

/// A request is answered once.
pub fn only_once(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l, _] = setup(&bus);
    let rq = q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    let id = r.reply(&req, &b"1"[..]).unwrap();
    assert_no_effect(&bus, Errno::ECONNREFUSED, || r.reply(&req, &b"2"[..]));
    let rep = next(&q);
    assert_eq!(
        (rep.id, rep.in_reply_to, &rep.data[..]),
        (id, rq, &b"1"[..])
    );
    assert_empty(&q);
    assert_eq!(ids(&drain(&l)), [rq, id]);
}

/// The reply's `to` must name the requester.
pub fn to_must_be_requester(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, _, x] = setup(&bus);
    q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    for to in [x.id(), r.id(), busbar::EndpointId::BUS, ep(999)] {
        let out = Outgoing {
            to,
            ..Outgoing::reply_to(&req, &b""[..])
        };
        assert_no_effect(&bus, Errno::ECONNREFUSED, || r.send(out));
    }
    assert_empty(&x);
    r.reply(&req, &b""[..]).unwrap();
    assert!(next(&q).is_reply());
}

/// Replies to nothing the replier owes: an announcement, an unknown id, the
/// replier's own request.
pub fn unknown_request(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l, _] = setup(&bus);
    l.bind("$.ann").unwrap();
    q.announce("$.ann", &b""[..]).unwrap();
    let ann = next(&l);
    assert_no_effect(&bus, Errno::ECONNREFUSED, || r.reply(&ann, &b""[..]));
    let unknown = Outgoing {
        to: q.id(),
        in_reply_to: MessageId {
            network: 0,
            serial: 12345,
        },
        ..Outgoing::announcement("$.svc", &b""[..])
    };
    assert_no_effect(&bus, Errno::ECONNREFUSED, || r.send(unknown));
    let r2 = open(&bus);
    r2.bind_replier("$.other").unwrap();
    r.request("$.other", &b""[..]).unwrap();
    let own = next(&r2);
    assert_no_effect(&bus, Errno::ECONNREFUSED, || r.reply(&own, &b""[..]));
}

/// Requester gone: the reply fails `EADDRNOTAVAIL`, reaches nobody, and
/// cancels the replier's debt (the one failed operation with an effect).
pub fn requester_gone(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l, _] = setup(&bus);
    q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    drain(&l);
    q.close().unwrap();
    assert_eq!(r.stats().unwrap().owed_replies, 1);
    let serial_before = next_serial(&bus);
    assert_err(r.reply(&req, &b""[..]), Errno::EADDRNOTAVAIL);
    assert_eq!(next_serial(&bus), serial_before);
    assert_empty(&l);
    assert_eq!(r.stats().unwrap().owed_replies, 0);
    assert_eq!(r.stats().unwrap().sent, 0);
    // The debt is gone: a second try is refused.
    assert_err(r.reply(&req, &b""[..]), Errno::ECONNREFUSED);
}

/// A reply's flags are honoured for its listeners (`ALL_OR_FAIL` with a full
/// listener: `EBUSY`, nobody gets it, still owed); `URGENT` puts the
/// requester's copy at the front.
pub fn reply_flags_honoured(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l, x] = setup(&bus);
    q.bind("$.n").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    next(&l);
    l.set_queue_limit(1).unwrap();
    x.announce("$.svc", &b""[..]).unwrap(); // l is full
    let n = x.announce("$.n", &b""[..]).unwrap();
    let all = Outgoing::reply_to(&req, &b""[..]).with_flags(busbar::Flags::ALL_OR_FAIL);
    assert_no_effect(&bus, Errno::EBUSY, || r.send(all.clone()));
    assert_eq!(r.stats().unwrap().owed_replies, 1);
    assert_eq!(q.stats().unwrap().queued, 1);
    next(&l);
    let urgent = Outgoing::reply_to(&req, &b""[..]).with_flags(busbar::Flags::URGENT);
    let rid = r.send(urgent).unwrap();
    let got = drain(&q);
    assert_eq!(ids(&got), [rid, n]);
    assert_eq!(got[0].in_reply_to, id);
    assert_eq!(got[0].flags, busbar::Flags::URGENT);
    assert_eq!(next(&l).id, rid);
}
