//! Unbind: the most recent binding of that pattern and kind, and the queued
//! messages it caused.

use busbar::{Bus, Errno, Flags, synthetic};

use crate::util::*;

/// Unbind removes the most recent binding and only the copies it brought.
pub fn most_recent(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a.*").unwrap(); // first binding
    let m1 = s.announce("$.a.one", &b""[..]).unwrap();
    l.bind("$.a.*").unwrap(); // second binding
    let m2 = s.announce("$.a.two", &b""[..]).unwrap();
    assert_eq!(l.stats().unwrap().queued, 3);
    // Removing the second binding removes its copy of m2 only: if the first
    // binding were removed instead, m1 would go.
    l.unbind("$.a.*").unwrap();
    assert_eq!(l.stats().unwrap().bindings, 1);
    let m3 = s.announce("$.a.three", &b""[..]).unwrap();
    assert_eq!(ids(&drain(&l)), [m1, m2, m3]);
    l.unbind("$.a.*").unwrap();
    s.announce("$.a.four", &b""[..]).unwrap();
    assert_empty(&l);
    assert_no_effect(&bus, Errno::EINVAL, || l.unbind("$.a.*"));
}

/// Unbind needs a binding of this endpoint with this exact pattern and kind.
pub fn kind_and_owner(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b] = open_n(&bus);
    a.bind("$.l").unwrap();
    a.bind_replier("$.r").unwrap();
    a.bind("$.w.*").unwrap();
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind_replier("$.l"));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.r"));
    assert_no_effect(&bus, Errno::EINVAL, || b.unbind("$.l"));
    assert_no_effect(&bus, Errno::EINVAL, || b.unbind_replier("$.r"));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.nothing"));
    // The pattern string, not what it matches.
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.w.x"));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.w.%"));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.*"));
    a.unbind("$.l").unwrap();
    a.unbind_replier("$.r").unwrap();
    a.unbind("$.w.*").unwrap();
    assert_eq!(a.stats().unwrap().bindings, 0);
    assert_eq!(bus.stats().unwrap().bindings, 0);
}

/// Copies other bindings brought stay, in order.
pub fn removes_only_caused(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a.b").unwrap();
    l.bind("$.a.*").unwrap();
    l.bind("$.c").unwrap();
    let m1 = s.announce("$.a.b", &b""[..]).unwrap(); // two copies
    let m2 = s.announce("$.c", &b""[..]).unwrap();
    s.announce("$.a.x", &b""[..]).unwrap(); // `*` copy only
    let m4 = s.announce("$.a.b", &b""[..]).unwrap(); // two copies
    l.unbind("$.a.*").unwrap();
    assert_eq!(ids(&drain(&l)), [m1, m2, m4]);
}

/// Unread requests a replier binding brought are removed and answered
/// `$.KBUS.Replier.Unbound`; listener copies on the same endpoint stay.
pub fn replier_unbound_replies(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q1, q2, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    r.bind("$.svc").unwrap();
    let a = q1.request("$.svc", &b"1"[..]).unwrap();
    let b = q2.request("$.svc", &b"2"[..]).unwrap();
    assert_eq!(r.stats().unwrap().queued, 4);
    let first = next_serial(&bus);
    r.unbind_replier("$.svc").unwrap();
    // Only the two listener copies remain.
    let left = drain(&r);
    assert_eq!(ids(&left), [a, b]);
    assert!(left.iter().all(|m| m.flags == Flags::WANT_A_REPLY));
    let ua = next(&q1);
    let ub = next(&q2);
    assert_synthetic(&ua, synthetic::UNBOUND, r.id(), q1.id(), a);
    assert_synthetic(&ub, synthetic::UNBOUND, r.id(), q2.id(), b);
    assert_eq!(
        (ua.id, ub.id),
        (serial(first), serial(first + 1)),
        "answered in queue order with fresh serials"
    );
    assert_empty(&q1);
    assert_empty(&q2);
    assert_eq!(q1.stats().unwrap().outstanding_requests, 0);
    assert_eq!(r.stats().unwrap().owed_replies, 0);
    // The listener copies are not requests it owes.
    assert_err(r.reply(&left[0], &b""[..]), Errno::ECONNREFUSED);
}

/// A request already taken is not affected by unbinding: it is still owed.
pub fn taken_request_still_answerable(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    r.unbind_replier("$.svc").unwrap();
    assert_empty(&q);
    assert_eq!(r.stats().unwrap().owed_replies, 1);
    let rid = r.reply(&req, &b"late"[..]).unwrap();
    let rep = next(&q);
    assert_eq!(
        (rep.id, rep.in_reply_to, &rep.data[..]),
        (rid, id, &b"late"[..])
    );
    assert!(!rep.is_synthetic());
}

/// If the message carrying a loss report is removed by an unbind, the count
/// moves to the next message.
pub fn loss_report_moves(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.set_queue_limit(1).unwrap();
    l.bind("$.a").unwrap();
    l.bind("$.b").unwrap();
    s.announce("$.a", &b""[..]).unwrap();
    s.announce("$.a", &b""[..]).unwrap(); // lost
    s.announce("$.a", &b""[..]).unwrap(); // lost
    assert_eq!(next(&l).lost, 0);
    s.announce("$.b", &b""[..]).unwrap(); // carries lost = 2
    l.unbind("$.b").unwrap();
    assert_empty(&l);
    let id = s.announce("$.a", &b""[..]).unwrap();
    let m = next(&l);
    assert_eq!((m.id, m.lost), (id, 2));
    assert_eq!(l.stats().unwrap().lost, 2);
}

/// After unbinding, that binding brings nothing more.
pub fn stops_delivery(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, r] = open_n(&bus);
    l.bind("$.a").unwrap();
    r.bind_replier("$.q").unwrap();
    l.unbind("$.a").unwrap();
    r.unbind_replier("$.q").unwrap();
    s.announce("$.a", &b""[..]).unwrap();
    assert_err(s.request("$.q", &b""[..]), Errno::EADDRNOTAVAIL);
    assert_empty(&l);
    assert_empty(&r);
}
