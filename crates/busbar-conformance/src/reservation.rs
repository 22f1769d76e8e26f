//! The reserved slot: a request reserves room for its reply in the
//! requester's own queue (`ENOLCK` if there is none), so the reply always fits.

use busbar::{Bus, Errno, Flags, Outgoing, synthetic};

use crate::util::*;

/// No room to reserve the reply slot: `ENOLCK`, no serial, no effect.
pub fn enolck(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.set_queue_limit(1).unwrap();
    let a = q.request("$.svc", &b""[..]).unwrap();
    assert_eq!(q.stats().unwrap().outstanding_requests, 1);
    assert_no_effect(&bus, Errno::ENOLCK, || q.request("$.svc", &b""[..]));
    let req = next(&r);
    r.reply(&req, &b""[..]).unwrap();
    // The reply now occupies the slot.
    assert_no_effect(&bus, Errno::ENOLCK, || q.request("$.svc", &b""[..]));
    // Announcements need no slot.
    q.announce("$.any", &b""[..]).unwrap();
    assert_eq!(next(&q).in_reply_to, a);
    let b = q.request("$.svc", &b""[..]).unwrap();
    assert_eq!(next(&r).id, b);
    // A queued message counts as much as a reservation.
    let q2 = open(&bus);
    q2.set_queue_limit(2).unwrap();
    q2.bind("$.n").unwrap();
    q.announce("$.n", &b""[..]).unwrap();
    q2.request("$.svc", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::ENOLCK, || q2.request("$.svc", &b""[..]));
}

/// `ENOLCK` whatever the send mode (not `EBUSY`, not pending).
pub fn enolck_every_mode(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.set_queue_limit(1).unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    for f in [Flags::ALL_OR_FAIL, Flags::ALL_OR_WAIT, Flags::URGENT] {
        assert_no_effect(&bus, Errno::ENOLCK, || {
            q.send(Outgoing::request("$.svc", &b""[..]).with_flags(f))
        });
    }
    assert_no_effect(&bus, Errno::ENOLCK, || {
        q.send(Outgoing {
            to: r.id(),
            ..Outgoing::request("$.svc", &b""[..])
        })
    });
    assert_eq!(q.stats().unwrap().pending_send, None);
}

/// Reserved slots count against the queue limit for other deliveries.
pub fn reserved_slot_counts(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, s] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.set_queue_limit(2).unwrap();
    q.bind("$.n").unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    let n1 = s.announce("$.n", &b""[..]).unwrap();
    s.announce("$.n", &b""[..]).unwrap(); // no room: lost
    let st = q.stats().unwrap();
    assert_eq!((st.queued, st.outstanding_requests, st.lost), (1, 1, 1));
    assert_err(
        s.send(Outgoing::announcement("$.n", &b""[..]).with_flags(Flags::ALL_OR_FAIL)),
        Errno::EBUSY,
    );
    assert_eq!(next(&q).id, n1);
}

/// The reply, real (even `ALL_OR_FAIL`) or synthetic, uses the reserved slot
/// and always fits, even after the limit was lowered below the queue length.
pub fn reply_always_fits(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, s] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.set_queue_limit(4).unwrap();
    q.bind("$.n").unwrap();
    let a = q.request("$.svc", &b""[..]).unwrap();
    let b = q.request("$.svc", &b""[..]).unwrap();
    let n1 = s.announce("$.n", &b""[..]).unwrap();
    let n2 = s.announce("$.n", &b""[..]).unwrap();
    q.set_queue_limit(1).unwrap();
    let req = next(&r);
    assert_eq!(req.id, a);
    let ra = r
        .send(Outgoing::reply_to(&req, &b""[..]).with_flags(Flags::ALL_OR_FAIL))
        .unwrap();
    let rid = r.id();
    r.close().unwrap();
    let got = drain(&q);
    assert_eq!(ids(&got[..3]), [n1, n2, ra]);
    assert_synthetic(&got[3], synthetic::GONE_AWAY, rid, q.id(), b);
    assert_eq!(got.len(), 4);
    let st = q.stats().unwrap();
    assert_eq!((st.outstanding_requests, st.lost), (0, 0));
}
