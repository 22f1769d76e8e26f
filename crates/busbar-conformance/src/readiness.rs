//! Readiness: the fd polls readable exactly while there is something to take;
//! `recv_timeout` returns `None` on timeout.

use std::time::{Duration, Instant};

use busbar::{Bus, Flags, Outgoing, synthetic};

use crate::util::*;

/// Readable while messages are queued, not otherwise; level-triggered.
pub fn messages(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    assert!(!is_readable(&l));
    s.announce("$.a", &b""[..]).unwrap();
    assert!(becomes_readable(&l));
    assert!(is_readable(&l), "level-triggered: still readable");
    s.announce("$.a", &b""[..]).unwrap();
    next(&l);
    assert!(is_readable(&l), "one message left");
    next(&l);
    assert!(!is_readable(&l));
    assert!(!is_readable(&s), "the sender has nothing to take");
    // take_reply empties the queue too.
    let r = open(&bus);
    r.bind_replier("$.svc").unwrap();
    let id = l.request("$.svc", &b""[..]).unwrap();
    assert!(becomes_readable(&r));
    let req = next(&r);
    assert!(!is_readable(&r));
    r.reply(&req, &b""[..]).unwrap();
    assert!(becomes_readable(&l));
    l.take_reply(id).unwrap().unwrap();
    assert!(!is_readable(&l));
}

/// The outcome of a pending send makes the sender readable until taken.
pub fn send_outcome(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.set_queue_limit(1).unwrap();
    l.bind("$.a").unwrap();
    open(&bus).announce("$.a", &b""[..]).unwrap();
    let out = Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_WAIT);
    assert_err(s.send(out), busbar::Errno::EAGAIN);
    assert!(!is_readable(&s), "pending, no outcome yet");
    next(&l);
    assert!(becomes_readable(&s));
    assert!(s.take_send_outcome().unwrap().is_some());
    assert!(!is_readable(&s));
}

/// Set-aside events count as readable, even with an empty queue, and `recv`
/// returns them.
pub fn set_aside_is_readable(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [c, r, l] = open_n(&bus);
    assert!(!l.set_replier_bind_events(true).unwrap());
    c.bind_replier("$.a").unwrap();
    r.bind_replier("$.svc").unwrap();
    l.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    l.bind("$.other").unwrap();
    l.set_queue_limit(1).unwrap();
    l.request("$.svc", &b""[..]).unwrap(); // the reserved slot fills the queue
    let cid = c.id();
    c.close().unwrap();
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.set_aside), (0, 1));
    assert!(becomes_readable(&l));
    // Still readable after operations that re-evaluate readiness.
    assert_eq!(l.take_send_outcome().unwrap(), None);
    l.unbind("$.other").unwrap();
    assert!(is_readable(&l));
    assert_bind_event(&next(&l), false, cid, "$.a");
    assert!(!is_readable(&l));
    assert_eq!(l.stats().unwrap().set_aside, 0);
}

/// `recv_timeout` returns `None` when nothing comes, the message when one is there.
pub fn recv_timeout(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    let t = Instant::now();
    assert_eq!(
        l.recv_timeout(Some(Duration::from_millis(20))).unwrap(),
        None
    );
    assert!(
        t.elapsed() >= Duration::from_millis(20),
        "waited the timeout"
    );
    assert_eq!(l.recv_timeout(Some(Duration::ZERO)).unwrap(), None);
    let id = s.announce("$.a", &b""[..]).unwrap();
    assert_eq!(l.recv_timeout(Some(GUARD)).unwrap().unwrap().id, id);
    let id = s.announce("$.a", &b""[..]).unwrap();
    assert_eq!(
        l.recv_timeout(Some(Duration::ZERO)).unwrap().unwrap().id,
        id
    );
}
