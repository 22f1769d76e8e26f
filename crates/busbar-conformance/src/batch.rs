//! Batches: `try_recv_batch` and `send_batch` behave like repeated
//! `try_recv` and `send`, in one bus operation.

use busbar::{Bus, Errno, Flags, Outgoing, synthetic};

use crate::util::*;

/// Up to `max` messages in queue order; requests taken this way are owed;
/// set-aside events come too.
pub fn recv_batch(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    l.bind_replier("$.svc").unwrap();
    assert_eq!(l.try_recv_batch(5).unwrap(), []);
    let sent: Vec<_> = (0..5)
        .map(|_| s.announce("$.a", &b""[..]).unwrap())
        .collect();
    let rq = s.request("$.svc", &b""[..]).unwrap();
    let got = l.try_recv_batch(3).unwrap();
    assert_eq!(ids(&got), sent[..3]);
    let got = l.try_recv_batch(100).unwrap();
    assert_eq!(ids(&got), [sent[3], sent[4], rq]);
    assert!(got[2].wants_us_to_reply());
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.received, st.owed_replies), (0, 6, 1));
    assert!(!is_readable(&l));
    let rid = l.reply(&got[2], &b""[..]).unwrap();
    assert_eq!(next(&s).id, rid);
    // Set-aside events: the batch takes them one after the other.
    assert!(!s.set_replier_bind_events(true).unwrap());
    let c = open(&bus);
    for n in ["$.e1", "$.e2", "$.e3"] {
        c.bind_replier(n).unwrap();
    }
    let cid = c.id();
    let k = open(&bus);
    k.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    k.set_queue_limit(1).unwrap();
    c.close().unwrap();
    let got = k.try_recv_batch(10).unwrap();
    assert_eq!(got.len(), 3);
    for (m, n) in got.iter().zip(["$.e3", "$.e2", "$.e1"]) {
        assert_bind_event(m, false, cid, n);
    }
    assert_eq!(k.stats().unwrap().set_aside, 0);
}

/// `try_recv_batch(0)` is `EINVAL`.
pub fn recv_batch_einval(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    s.announce("$.a", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EINVAL, || l.try_recv_batch(0));
    assert_eq!(l.try_recv_batch(1).unwrap().len(), 1);
}

/// One result per message, as if each were sent alone, in order.
pub fn send_batch(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, r] = open_n(&bus);
    l.bind("$.*").unwrap();
    r.bind_replier("$.svc").unwrap();
    assert_eq!(s.send_batch(vec![]).unwrap(), []);
    let got = s
        .send_batch(vec![
            Outgoing::announcement("$.a", &b"1"[..]),
            Outgoing::announcement("$.a.", &b""[..]),
            Outgoing::request("$.svc", &b""[..]),
            Outgoing::request("$.none", &b""[..]),
            Outgoing::announcement("$.b", &b"2"[..]).with_flags(Flags::URGENT),
        ])
        .unwrap();
    assert_eq!(
        got,
        [
            Ok(serial(1)),
            Err(Errno::EBADMSG),
            Ok(serial(2)),
            Err(Errno::EADDRNOTAVAIL),
            Ok(serial(3)),
        ]
    );
    assert_eq!(ids(&drain(&l)), [serial(3), serial(1), serial(2)]);
    assert_eq!(next(&r).id, serial(2));
    let st = s.stats().unwrap();
    assert_eq!((st.sent, st.outstanding_requests), (3, 1));
}

/// After a message goes pending (`EAGAIN`), the rest get `EALREADY`.
pub fn send_batch_pending(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.set_queue_limit(1).unwrap();
    l.bind("$.a").unwrap();
    let got = s
        .send_batch(vec![
            Outgoing::announcement("$.a", &b""[..]),
            Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_WAIT),
            Outgoing::announcement("$.b", &b""[..]),
        ])
        .unwrap();
    assert_eq!(
        got,
        [Ok(serial(1)), Err(Errno::EAGAIN), Err(Errno::EALREADY)]
    );
    assert_eq!(s.stats().unwrap().pending_send, Some(serial(2)));
    assert_eq!(next_serial(&bus), 3);
    assert_eq!(next(&l).id, serial(1));
    assert_eq!(
        s.take_send_outcome().unwrap(),
        Some(busbar::SendOutcome {
            id: serial(2),
            result: Ok(())
        })
    );
    assert_eq!(next(&l).id, serial(2));
}

/// A batch stops once it holds 64 MiB of data (it always takes one).
pub fn recv_batch_byte_budget(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    bus.set_max_message_size(32 << 20).unwrap();
    l.bind("$.big").unwrap();
    let data = busbar::Bytes::from(vec![7u8; 30 << 20]);
    for _ in 0..4 {
        s.announce("$.big", data.clone()).unwrap();
    }
    let first = l.try_recv_batch(10).unwrap();
    assert_eq!(
        first.len(),
        3,
        "30 + 30 MiB < 64 MiB, so a third; then stop"
    );
    assert_eq!(l.try_recv_batch(10).unwrap().len(), 1);
    assert!(first.iter().all(|m| m.data.len() == 30 << 20));
}
