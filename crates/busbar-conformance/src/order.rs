//! Ids and order: one serial counter per bus, one total order.

use busbar::{Bus, Errno, Flags, MessageId, Outgoing, synthetic};

use crate::util::*;

/// Serials start at 1 and count up across all senders; endpoint ids from 1.
pub fn serials_start_at_one(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_eq!(next_serial(&bus), 1);
    let [a, b, l] = open_n(&bus);
    assert_eq!((a.id(), b.id(), l.id()), (ep(1), ep(2), ep(3)));
    l.bind("$.*").unwrap();
    let got = [
        a.announce("$.x", &b""[..]).unwrap(),
        b.announce("$.x", &b""[..]).unwrap(),
        a.announce("$.y", &b""[..]).unwrap(),
        b.announce("$.z", &b""[..]).unwrap(),
    ];
    assert_eq!(got, [serial(1), serial(2), serial(3), serial(4)]);
    assert_eq!(ids(&drain(&l)), got);
    assert_eq!(next_serial(&bus), 5);
}

/// Synthetic messages take serials from the same counter.
pub fn serial_shared_with_synthetic(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    l.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    r.bind_replier("$.svc").unwrap();
    assert_eq!(q.request("$.svc", &b""[..]).unwrap(), serial(1));
    r.close().unwrap();
    let gone = next(&q);
    assert_synthetic(&gone, synthetic::GONE_AWAY, ep(2), q.id(), serial(1));
    assert_eq!(gone.id, serial(2));
    // A bind event takes one too.
    q.set_replier_bind_events(true).unwrap();
    let r2 = open(&bus);
    r2.bind_replier("$.svc").unwrap();
    let ev = next(&l);
    assert_bind_event(&ev, true, r2.id(), "$.svc");
    assert_eq!(ev.id, serial(3));
    assert_eq!(q.announce("$.after", &b""[..]).unwrap(), serial(4));
}

type SendFn<'a> = Box<dyn Fn() -> Result<MessageId, Errno> + 'a>;

/// A send that fails takes no serial.
pub fn failed_sends_take_no_serial(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, r, full, x] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    full.bind_replier("$.full").unwrap();
    full.bind("$.lfull").unwrap();
    full.set_queue_limit(1).unwrap();
    s.request("$.full", &b""[..]).unwrap(); // serial 1, fills `full`
    let q = open(&bus);
    q.request("$.svc", &b""[..]).unwrap(); // serial 2
    let req = next(&r);
    let huge = vec![0u8; (64 << 20) + 1]; // past the default maximum
    let fails: Vec<(Errno, SendFn<'_>)> = vec![
        (Errno::EBADMSG, Box::new(|| s.announce("$.a.", &b""[..]))),
        (Errno::EBADMSG, Box::new(|| s.announce("$.a.*", &b""[..]))),
        (
            Errno::EADDRNOTAVAIL,
            Box::new(|| s.request("$.none", &b""[..])),
        ),
        (
            Errno::EMSGSIZE,
            Box::new(|| s.announce("$.a", huge.clone())),
        ),
        (
            Errno::EINVAL,
            Box::new(|| {
                s.send(
                    Outgoing::announcement("$.a", &b""[..])
                        .with_flags(Flags::ALL_OR_FAIL | Flags::ALL_OR_WAIT),
                )
            }),
        ),
        (Errno::EBUSY, Box::new(|| s.request("$.full", &b""[..]))),
        (
            Errno::EBUSY,
            Box::new(|| {
                s.send(Outgoing::announcement("$.lfull", &b""[..]).with_flags(Flags::ALL_OR_FAIL))
            }),
        ),
        (Errno::ECONNREFUSED, Box::new(|| x.reply(&req, &b""[..]))),
        (
            Errno::EPIPE,
            Box::new(|| {
                s.send(Outgoing {
                    to: x.id(),
                    ..Outgoing::request("$.svc", &b""[..])
                })
            }),
        ),
    ];
    for (e, f) in &fails {
        assert_no_effect(&bus, *e, f);
    }
    assert_eq!(next_serial(&bus), 3);
    assert_eq!(s.announce("$.ok", &b""[..]).unwrap(), serial(3));
}

/// `URGENT` copies go to the front of each queue: two urgent ones read LIFO.
pub fn urgent_lifo_at_front(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l1, l2, r] = open_n(&bus);
    l1.bind("$.*").unwrap();
    l2.bind("$.u.*").unwrap();
    r.bind_replier("$.u.req").unwrap();
    let n1 = s.announce("$.u.a", &b""[..]).unwrap();
    let n2 = s.announce("$.u.b", &b""[..]).unwrap();
    let urgent = |name: &str| Outgoing::announcement(name, &b""[..]).with_flags(Flags::URGENT);
    let u1 = s.send(urgent("$.u.c")).unwrap();
    let u2 = s.send(urgent("$.u.d")).unwrap();
    let n3 = s.announce("$.u.e", &b""[..]).unwrap();
    for l in [&l1, &l2] {
        let got = drain(l);
        assert_eq!(ids(&got), [u2, u1, n1, n2, n3]);
        assert!(got[0].is_urgent() && got[1].is_urgent() && !got[2].is_urgent());
        assert_eq!(got[0].flags, Flags::URGENT);
    }
    // Urgent requests jump the replier's queue too.
    let q = open(&bus);
    let a = q.request("$.u.req", &b""[..]).unwrap();
    let b = q
        .send(Outgoing::request("$.u.req", &b""[..]).with_flags(Flags::URGENT))
        .unwrap();
    let first = next(&r);
    assert_eq!(first.id, b);
    assert_eq!(
        first.flags,
        Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY | Flags::URGENT
    );
    assert_eq!(next(&r).id, a);
}

/// Every receiver sees messages in the one order the bus accepted them.
pub fn total_order(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b, c, l1, l2, l3] = open_n(&bus);
    l1.bind("$.*").unwrap();
    l2.bind("$.a.*").unwrap();
    l3.bind("$.a.b").unwrap();
    l3.bind("$.c").unwrap();
    let senders = [&a, &b, &c];
    let names = ["$.a.b", "$.c", "$.a.x", "$.d", "$.a.b.c"];
    let mut sent = Vec::new();
    for i in 0..60usize {
        let name = names[(i * 7 + i / 3) % names.len()];
        let id = senders[i % 3].announce(name, &b""[..]).unwrap();
        sent.push((name, id));
    }
    let expect = |f: &dyn Fn(&str) -> bool| -> Vec<MessageId> {
        sent.iter()
            .filter(|(n, _)| f(n))
            .map(|(_, id)| *id)
            .collect()
    };
    assert_eq!(ids(&drain(&l1)), expect(&|_| true));
    assert_eq!(ids(&drain(&l2)), expect(&|n| n.starts_with("$.a.")));
    assert_eq!(ids(&drain(&l3)), expect(&|n| n == "$.a.b" || n == "$.c"));
}

/// Concurrent senders: every listener sees the same order, which is id order.
pub fn total_order_threads(make: &dyn Fn() -> Bus) {
    const PER: usize = 300;
    let bus = make();
    let [a, b, l1, l2] = open_n(&bus);
    for l in [&l1, &l2] {
        l.set_queue_limit(4 * PER as u32).unwrap();
        l.bind("$.t.*").unwrap();
    }
    let (ids_a, ids_b) = std::thread::scope(|sc| {
        let ta = sc.spawn(|| {
            (0..PER)
                .map(|_| a.announce("$.t.a", &b""[..]).unwrap())
                .collect::<Vec<_>>()
        });
        let tb = sc.spawn(|| {
            (0..PER)
                .map(|_| b.announce("$.t.b", &b""[..]).unwrap())
                .collect::<Vec<_>>()
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let g1 = drain(&l1);
    let g2 = drain(&l2);
    assert_eq!(g1.len(), 2 * PER);
    assert_eq!(ids(&g1), ids(&g2), "both listeners see one order");
    assert!(
        g1.windows(2).all(|w| w[0].id.serial < w[1].id.serial),
        "the order is the serial order"
    );
    let from_a: Vec<_> = g1
        .iter()
        .filter(|m| m.from == a.id())
        .map(|m| m.id)
        .collect();
    let from_b: Vec<_> = g1
        .iter()
        .filter(|m| m.from == b.id())
        .map(|m| m.id)
        .collect();
    assert_eq!(from_a, ids_a);
    assert_eq!(from_b, ids_b);
}
