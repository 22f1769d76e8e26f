//! Only once: at most one copy of each message per endpoint.

use busbar::{Bus, Flags};

use crate::util::*;

/// Off by default: one copy per matching binding.
pub fn off_by_default(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    assert!(!l.stats().unwrap().only_once);
    l.bind("$.a.b").unwrap();
    l.bind("$.a.*").unwrap();
    let id = s.announce("$.a.b", &b""[..]).unwrap();
    assert_eq!(ids(&drain(&l)), [id, id]);
}

/// On: one copy however many bindings match; the setter returns the old value.
pub fn one_copy(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    assert!(!l.set_only_once(true).unwrap());
    assert!(l.set_only_once(true).unwrap());
    assert!(l.stats().unwrap().only_once);
    l.bind("$.a.b").unwrap();
    l.bind("$.a.b").unwrap();
    l.bind("$.a.*").unwrap();
    l.bind("$.*").unwrap();
    let a = s.announce("$.a.b", &b""[..]).unwrap();
    let b = s.announce("$.a.c", &b""[..]).unwrap();
    assert_eq!(ids(&drain(&l)), [a, b]);
    assert!(l.set_only_once(false).unwrap());
    let c = s.announce("$.a.b", &b""[..]).unwrap();
    assert_eq!(ids(&drain(&l)), [c, c, c, c]);
}

/// The replier's copy is the one kept.
pub fn replier_copy_preferred(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.set_only_once(true).unwrap();
    r.bind("$.*").unwrap();
    r.bind("$.svc").unwrap();
    r.bind_replier("$.svc").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    let got = drain(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].flags, Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY);
    r.reply(&got[0], &b""[..]).unwrap();
}

/// The requester's copy of a reply is the one kept (it survives unbinding
/// the listener binding and is found by `take_reply`).
pub fn requester_copy_preferred(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.set_only_once(true).unwrap();
    q.bind("$.svc").unwrap();
    q.bind("$.*").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    assert_eq!(next(&q).id, id); // its own request, once
    let req = next(&r);
    let rid = r.reply(&req, &b""[..]).unwrap();
    assert_eq!(q.stats().unwrap().queued, 1);
    q.unbind("$.*").unwrap();
    q.unbind("$.svc").unwrap();
    let rep = q.take_reply(id).unwrap().expect("the requester's copy");
    assert_eq!((rep.id, rep.in_reply_to, rep.to), (rid, id, q.id()));
    assert_empty(&q);
}
