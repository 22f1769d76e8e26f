//! Statistics of endpoints and buses.

use busbar::{Bus, BusId, BusStats, EndpointStats, Flags, Outgoing};

use crate::util::*;

fn fresh(id: u32) -> EndpointStats {
    let c = my_creds();
    EndpointStats {
        id: ep(id),
        pid: c.pid,
        uid: c.uid,
        queue_limit: 100,
        ..Default::default()
    }
}

/// Every endpoint statistic, from a fresh endpoint through each change.
pub fn endpoint_fields(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    assert_eq!(q.stats().unwrap(), fresh(1));
    r.bind_replier("$.svc").unwrap();
    r.bind("$.other").unwrap();
    l.bind("$.*").unwrap();
    l.set_only_once(true).unwrap();
    l.set_queue_limit(2).unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    q.announce("$.x", &b""[..]).unwrap(); // lost by l
    assert_eq!(
        q.stats().unwrap(),
        EndpointStats {
            sent: 3,
            outstanding_requests: 2,
            last_sent: busbar::MessageId {
                network: 0,
                serial: 3,
            },
            ..fresh(1)
        }
    );
    next(&r);
    assert_eq!(
        r.stats().unwrap(),
        EndpointStats {
            queued: 1,
            queued_bytes: 5, // "$.svc"
            received: 1,
            owed_replies: 1,
            bindings: 2,
            ..fresh(2)
        }
    );
    assert_eq!(
        l.stats().unwrap(),
        EndpointStats {
            queued: 2,
            queued_bytes: 10,
            queue_limit: 2,
            lost: 1,
            bindings: 1,
            only_once: true,
            ..fresh(3)
        }
    );
    // A pending send, and set-aside events.
    drain(&l);
    l.set_only_once(false).unwrap();
    l.unbind("$.*").unwrap();
    l.bind(busbar::synthetic::REPLIER_BIND_EVENT).unwrap();
    l.bind("$.x").unwrap();
    let s = open(&bus);
    assert!(!s.set_replier_bind_events(true).unwrap());
    assert_eq!(drain(&s).len(), 1); // r's replier binding
    let c = open(&bus);
    c.bind_replier("$.c1").unwrap();
    c.bind_replier("$.c2").unwrap();
    assert_eq!(drain(&l).len(), 2);
    l.set_queue_limit(1).unwrap();
    q.announce("$.x", &b""[..]).unwrap();
    let p = serial(next_serial(&bus));
    assert_err(
        s.send(Outgoing::announcement("$.x", &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        busbar::Errno::EAGAIN,
    );
    assert_eq!(
        s.stats().unwrap(),
        EndpointStats {
            pending_send: Some(p),
            last_sent: p,
            received: 1,
            ..fresh(4)
        }
    );
    assert!(s.discard_send().unwrap());
    assert_eq!(s.stats().unwrap().pending_send, None);
    c.close().unwrap();
    assert_eq!(
        l.stats().unwrap(),
        EndpointStats {
            queued: 1,
            queued_bytes: 3, // "$.x"
            set_aside: 2,
            queue_limit: 1,
            lost: 1,
            received: 4,
            bindings: 2,
            ..fresh(3)
        }
    );
}

/// Bus statistics: counts, settings and every endpoint's stats by id.
pub fn bus_fields(make: &dyn Fn() -> Bus) {
    let bus = make();
    let fresh = bus.stats().unwrap();
    assert_eq!(
        BusStats {
            counters: Default::default(),
            ..fresh.clone()
        },
        BusStats {
            bus: BusId(0),
            next_serial: 1,
            max_message_size: 64 << 20,
            ..Default::default()
        }
    );
    // Counters start at zero, one per synthetic name.
    let c = &fresh.counters;
    assert_eq!((c.sent, c.delivered, c.lost), (0, 0, 0));
    assert!(c.refused.is_empty());
    assert!(c.synthetic.iter().all(|n| n.count == 0));
    assert!(
        c.synthetic
            .iter()
            .any(|n| &*n.name == busbar::synthetic::GONE_AWAY)
    );
    let [a, b, c] = open_n(&bus);
    a.bind("$.a").unwrap();
    a.bind("$.a").unwrap();
    b.bind_replier("$.b").unwrap();
    b.bind_replier("$.b.*").unwrap();
    c.bind("$.*").unwrap();
    a.announce("$.a", &b""[..]).unwrap();
    bus.set_max_message_size(1000).unwrap();
    a.set_replier_bind_events(true).unwrap();
    drop(b);
    let st = bus.stats().unwrap();
    assert_eq!(st.endpoints, 2);
    assert_eq!((st.bindings, st.replier_bindings), (3, 0));
    assert_eq!(st.max_message_size, 1000);
    assert!(st.replier_bind_events);
    assert_eq!(st.set_aside, 0);
    assert_eq!(st.endpoint_stats, [a.stats().unwrap(), c.stats().unwrap()]);
    assert_eq!(st.endpoint_stats[0].queued, 4);
    assert_eq!(st.endpoint_stats[1].queued, 3);
    // a got the dump of b's two repliers; b closed with them and c (`$.*`)
    // heard the two unbind events.
    assert_eq!(st.next_serial, 6);
    assert_eq!(drain(&a).len(), 4);
    assert_eq!(drain(&c).len(), 3);
}

/// The bus's counters (the metrics): sends accepted and refused by errno,
/// copies delivered and lost, synthetic messages by name; closed endpoints'
/// counts stay counted.
pub fn counters(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [l, s, r] = open_n(&bus);
    l.set_queue_limit(1).unwrap();
    l.bind("$.m").unwrap();
    for _ in 0..3 {
        s.announce("$.m", &b"x"[..]).unwrap();
    }
    s.request("$.nobody", &b""[..]).unwrap_err();
    s.send(Outgoing::announcement("$.m", &b""[..]).with_flags(Flags::ALL_OR_FAIL))
        .unwrap_err();
    r.bind_replier("$.svc").unwrap();
    let id = s.request("$.svc", &b""[..]).unwrap();
    drop(r); // closes with the request unread: GoneAway
    assert!(s.take_reply(id).unwrap().unwrap().is_synthetic());
    drop(l); // its counts stay counted
    let c = bus.stats().unwrap().counters;
    assert_eq!(c.sent, 4, "3 announcements and a request");
    assert_eq!(
        c.delivered, 3,
        "the listener's one, the request, the GoneAway"
    );
    assert_eq!(c.lost, 2);
    let refused: Vec<(i32, u64)> = c.refused.iter().map(|e| (e.errno, e.count)).collect();
    let mut want = vec![
        (busbar::Errno::EADDRNOTAVAIL.number(), 1),
        (busbar::Errno::EBUSY.number(), 1),
    ];
    want.sort_unstable();
    assert_eq!(refused, want);
    let gone = c
        .synthetic
        .iter()
        .find(|n| &*n.name == busbar::synthetic::GONE_AWAY)
        .unwrap();
    assert_eq!(gone.count, 1);
    assert_eq!(c.synthetic.iter().map(|n| n.count).sum::<u64>(), 1);
}

/// `sent` counts successful sends only; `received` counts every message taken.
pub fn sent_and_received(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.bind("$.svc").unwrap();
    let id = q.request("$.svc", &b""[..]).unwrap();
    q.request("$.none", &b""[..]).unwrap_err();
    q.announce("bad", &b""[..]).unwrap_err();
    let req = next(&r);
    r.reply(&req, &b""[..]).unwrap();
    r.reply(&req, &b""[..]).unwrap_err();
    q.take_reply(id).unwrap().unwrap();
    next(&q);
    next(&q);
    let (qs, rs) = (q.stats().unwrap(), r.stats().unwrap());
    assert_eq!((qs.sent, qs.received), (1, 3));
    assert_eq!((rs.sent, rs.received), (1, 1));
}

/// Credentials are the process's, set by the bus, on stats and messages.
pub fn credentials(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    s.announce("$.a", &b""[..]).unwrap();
    let c = my_creds();
    assert_eq!(next(&l).creds, c);
    let st = s.stats().unwrap();
    assert_eq!((st.pid, st.uid), (c.pid, c.uid));
}
