//! Queue limit: default 100, settable to any value ≥ 1.

use busbar::{Bus, Errno};

use crate::util::*;

/// Default 100; setting returns the previous limit; exactly `limit` fit.
pub fn default_and_set(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    assert_eq!(l.stats().unwrap().queue_limit, 100);
    assert_eq!(l.set_queue_limit(5).unwrap(), 100);
    assert_eq!(l.set_queue_limit(7).unwrap(), 5);
    assert_eq!(l.stats().unwrap().queue_limit, 7);
    let bs = bus.stats().unwrap();
    assert_eq!(
        bs.endpoint_stats
            .iter()
            .find(|e| e.id == l.id())
            .unwrap()
            .queue_limit,
        7
    );
    assert_eq!(s.stats().unwrap().queue_limit, 100, "per endpoint");
    l.bind("$.a").unwrap();
    for _ in 0..8 {
        s.announce("$.a", &b""[..]).unwrap();
    }
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.lost), (7, 1));
    // The default applies to every new endpoint (100 fit).
    let l2 = open(&bus);
    l2.bind("$.b").unwrap();
    for _ in 0..101 {
        s.announce("$.b", &b""[..]).unwrap();
    }
    let st = l2.stats().unwrap();
    assert_eq!((st.queued, st.lost), (100, 1));
}

/// A limit of 0 is `EINVAL` and changes nothing.
pub fn zero_einval(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [l] = open_n(&bus);
    l.set_queue_limit(3).unwrap();
    assert_no_effect(&bus, Errno::EINVAL, || l.set_queue_limit(0));
    assert_eq!(l.stats().unwrap().queue_limit, 3);
    assert_eq!(l.set_queue_limit(1).unwrap(), 3);
    assert_eq!(l.set_queue_limit(u32::MAX).unwrap(), 1);
}

/// Lowering the limit below the queue length discards nothing.
pub fn lowering_discards_nothing(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    let sent: Vec<_> = (0..5)
        .map(|_| s.announce("$.a", &b""[..]).unwrap())
        .collect();
    assert_eq!(l.set_queue_limit(2).unwrap(), 100);
    assert_eq!(l.stats().unwrap().queued, 5);
    s.announce("$.a", &b""[..]).unwrap(); // over the limit: lost
    assert_eq!(ids(&drain(&l)), sent);
    let id = s.announce("$.a", &b""[..]).unwrap();
    let m = next(&l);
    assert_eq!((m.id, m.lost), (id, 1));
}
