//! Messages: announcements, requests, replies, stateful requests, and what
//! the bus sets on every send.

use busbar::{Bus, Bytes, EndpointId, Errno, Flags, MessageId, OrigFrom, Outgoing};

use crate::util::*;

const USER: Flags = Flags(0xa5c3_0000);

/// An announcement reaches listeners with every field as the bus must set it.
pub fn announcement_fields(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.news.*").unwrap();
    let out = Outgoing {
        name: "$.news.today".into(),
        data: Bytes::from_static(b"hello"),
        // The sender cannot set SYNTHETIC or WANT_YOU_TO_REPLY.
        flags: USER | Flags::SYNTHETIC | Flags::WANT_YOU_TO_REPLY,
        orig_from: OrigFrom {
            network: 3,
            local: 9,
        },
        final_to: OrigFrom {
            network: 4,
            local: 11,
        },
        ..Default::default()
    };
    let id = s.send(out).unwrap();
    assert_eq!(id, serial(1));
    let m = next(&l);
    assert_eq!(m.id, id);
    assert_eq!(m.in_reply_to, MessageId::NONE);
    assert_eq!(m.to, EndpointId::BUS);
    assert_eq!(m.from, s.id());
    assert_eq!(
        m.orig_from,
        OrigFrom {
            network: 3,
            local: 9
        }
    );
    assert_eq!(
        m.final_to,
        OrigFrom {
            network: 4,
            local: 11
        }
    );
    assert_eq!(m.flags, USER);
    assert_eq!(&*m.name, "$.news.today");
    assert_eq!(&m.data[..], b"hello");
    assert_eq!(m.creds, my_creds());
    assert_eq!(m.lost, 0);
    assert!(!m.is_request() && !m.is_reply() && !m.is_synthetic() && !m.is_urgent());
    assert_empty(&l);
    assert_empty(&s);
}

/// A request: the replier's copy has `WANT_YOU_TO_REPLY`, listeners' do not.
pub fn request_copies(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    q.bind("$.*").unwrap(); // the requester hears its own request as a listener
    let id = q.request("$.svc", &b"ask"[..]).unwrap();
    let rm = next(&r);
    assert_eq!((rm.id, rm.from, rm.to), (id, q.id(), EndpointId::BUS));
    assert_eq!(rm.flags, Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY);
    assert!(rm.wants_us_to_reply() && rm.is_request() && !rm.is_stateful_request());
    assert_eq!(&rm.data[..], b"ask");
    for e in [&l, &q] {
        let m = next(e);
        assert_eq!((m.id, m.from), (id, q.id()));
        assert_eq!(m.flags, Flags::WANT_A_REPLY);
        assert!(!m.wants_us_to_reply());
        assert_empty(e);
    }
    assert_empty(&r);
    assert_eq!(q.stats().unwrap().outstanding_requests, 1);
    assert_eq!(r.stats().unwrap().owed_replies, 1);
    assert_eq!(l.stats().unwrap().owed_replies, 0);
}

/// A request needs a replier at send time: `EADDRNOTAVAIL`, nobody gets it.
pub fn request_needs_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, l] = open_n(&bus);
    l.bind("$.svc").unwrap();
    assert_no_effect(&bus, Errno::EADDRNOTAVAIL, || q.request("$.svc", &b""[..]));
    assert_empty(&l);
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// A reply goes to the requester and to listeners, never to the replier binding.
pub fn reply_delivery(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    let id = q.request("$.svc", &b"ask"[..]).unwrap();
    let req = next(&r);
    assert_eq!(next(&l).id, id);
    let reply = Outgoing::reply_to(&req, &b"answer"[..]).with_flags(USER);
    assert_eq!((reply.to, reply.in_reply_to), (q.id(), id));
    let rid = r.send(reply).unwrap();
    assert_eq!(rid, serial(id.serial + 1));
    for e in [&q, &l] {
        let m = next(e);
        assert_eq!(m.id, rid);
        assert_eq!(m.in_reply_to, id);
        assert_eq!(m.to, q.id());
        assert_eq!(m.from, r.id());
        assert_eq!(m.flags, USER);
        assert_eq!(&*m.name, "$.svc");
        assert_eq!(&m.data[..], b"answer");
        assert!(m.is_reply() && !m.is_request());
        assert_empty(e);
    }
    assert_empty(&r);
    let st = q.stats().unwrap();
    assert_eq!(st.outstanding_requests, 0);
    assert_eq!(r.stats().unwrap().owed_replies, 0);
}

/// The bus sets `from`, `WANT_YOU_TO_REPLY` (replier's copy only) and clears
/// `SYNTHETIC`; user bits 16–31 pass through on every kind.
pub fn bus_sets_flags(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    let all_user = Flags::USER_MASK;
    let id = q
        .send(
            Outgoing::request("$.svc", &b""[..])
                .with_flags(all_user | Flags::SYNTHETIC | Flags::WANT_YOU_TO_REPLY),
        )
        .unwrap();
    let req = next(&r);
    assert_eq!(req.id, id);
    assert_eq!(
        req.flags,
        all_user | Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY
    );
    assert_eq!(next(&l).flags, all_user | Flags::WANT_A_REPLY);
    r.send(
        Outgoing::reply_to(&req, &b""[..])
            .with_flags(Flags(0x0001_0000) | Flags::SYNTHETIC | Flags::WANT_YOU_TO_REPLY),
    )
    .unwrap();
    assert_eq!(next(&q).flags, Flags(0x0001_0000));
    assert_eq!(next(&l).flags, Flags(0x0001_0000));
    // No flags at all stays no flags.
    q.announce("$.svc", &b""[..]).unwrap();
    assert_eq!(next(&l).flags, Flags::empty());
}

/// A stateful request reaches the named replier, with `to` and `final_to`.
pub fn stateful_request(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    let mut reply = Outgoing::reply_to(&req, &b""[..]);
    reply.orig_from = OrigFrom {
        network: 5,
        local: 6,
    };
    r.send(reply).unwrap();
    let rep = next(&q);
    let out = Outgoing::stateful_request(&rep, "$.svc", &b"again"[..]);
    assert_eq!(out.to, r.id());
    assert_eq!(
        out.final_to,
        OrigFrom {
            network: 5,
            local: 6
        }
    );
    assert!(out.is_request());
    drain(&l);
    let id = q.send(out).unwrap();
    let m = next(&r);
    assert_eq!((m.id, m.from, m.to), (id, q.id(), r.id()));
    assert_eq!(
        m.final_to,
        OrigFrom {
            network: 5,
            local: 6
        }
    );
    assert_eq!(m.flags, Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY);
    assert!(m.is_stateful_request());
    let lm = next(&l);
    assert_eq!((lm.id, lm.to, lm.flags), (id, r.id(), Flags::WANT_A_REPLY));
    let rid = r.reply(&m, &b"ok"[..]).unwrap();
    let back = next(&q);
    assert_eq!((back.id, back.in_reply_to, back.from), (rid, id, r.id()));
}

/// `EPIPE` if another endpoint now holds the name, `EADDRNOTAVAIL` if nobody does.
pub fn stateful_request_errors(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, r2] = open_n(&bus);
    r.bind_replier("$.svc.*").unwrap();
    let stateful = |name: &str| Outgoing {
        to: r.id(),
        ..Outgoing::request(name, &b""[..])
    };
    q.send(stateful("$.svc.a")).unwrap();
    // A more specific replier now gets `$.svc.b`.
    r2.bind_replier("$.svc.b").unwrap();
    assert_no_effect(&bus, Errno::EPIPE, || q.send(stateful("$.svc.b")));
    q.send(stateful("$.svc.c")).unwrap();
    r.unbind_replier("$.svc.*").unwrap();
    assert_no_effect(&bus, Errno::EADDRNOTAVAIL, || q.send(stateful("$.svc.c")));
    r2.unbind_replier("$.svc.b").unwrap();
    r2.bind_replier("$.svc.*").unwrap();
    assert_no_effect(&bus, Errno::EPIPE, || q.send(stateful("$.svc.a")));
    // Addressed to the right one, it works.
    let id = q
        .send(Outgoing {
            to: r2.id(),
            ..Outgoing::request("$.svc.a", &b""[..])
        })
        .unwrap();
    assert_eq!(next(&r2).id, id);
}

/// `Outgoing::stateful_request` from an earlier stateful request keeps its target.
pub fn stateful_from_stateful(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    l.bind("$.svc").unwrap();
    let first = Outgoing {
        to: r.id(),
        final_to: OrigFrom {
            network: 1,
            local: 2,
        },
        ..Outgoing::request("$.svc", &b""[..])
    };
    q.send(first).unwrap();
    let seen = next(&l);
    let again = Outgoing::stateful_request(&seen, "$.svc", &b""[..]);
    assert_eq!(
        (again.to, again.final_to),
        (
            r.id(),
            OrigFrom {
                network: 1,
                local: 2
            }
        )
    );
    let id = q.send(again).unwrap();
    next(&r);
    let m = next(&r);
    assert_eq!((m.id, m.to), (id, r.id()));
}

/// A forwarded message (non-zero network) keeps its id and takes no serial.
pub fn forwarded_id(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    l.bind("$.*").unwrap();
    r.bind_replier("$.svc").unwrap();
    let fwd = MessageId {
        network: 7,
        serial: 42,
    };
    let before = next_serial(&bus);
    let id = q
        .send(Outgoing {
            id: fwd,
            ..Outgoing::announcement("$.ann", &b""[..])
        })
        .unwrap();
    assert_eq!(id, fwd);
    assert_eq!(next(&l).id, fwd);
    assert_eq!(next_serial(&bus), before);
    let rq = MessageId {
        network: 7,
        serial: 43,
    };
    let id = q
        .send(Outgoing {
            id: rq,
            ..Outgoing::request("$.svc", &b""[..])
        })
        .unwrap();
    assert_eq!(id, rq);
    let req = next(&r);
    assert_eq!(req.id, rq);
    assert_eq!(next_serial(&bus), before);
    let rid = r.reply(&req, &b""[..]).unwrap();
    assert_eq!(rid, serial(before), "a local reply gets a local serial");
    let rep = q
        .take_reply(rq)
        .unwrap()
        .expect("reply to the forwarded request");
    assert_eq!((rep.id, rep.in_reply_to), (rid, rq));
}

/// A forwarded message (one with a non-zero network in its id: a bridge
/// passing on what another bus sent) keeps `SYNTHETIC`, which that bus set:
/// a bridge passes on a remote `$.KBUS.Replier.GoneAway` as synthetic.
/// `WANT_YOU_TO_REPLY` is still the bus's own to set.
pub fn forwarded_keeps_synthetic(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, b, l] = open_n(&bus);
    l.bind("$.*").unwrap();
    b.bind_replier("$.svc").unwrap();
    let req = q.request("$.svc", &b""[..]).unwrap();
    let held = next(&b);
    assert_eq!(next(&l).id, req);
    let forwarded = MessageId {
        network: 5,
        serial: 77,
    };
    b.send(Outgoing {
        id: forwarded,
        flags: USER | Flags::SYNTHETIC | Flags::WANT_YOU_TO_REPLY,
        ..Outgoing::reply_to(&held, &b""[..])
    })
    .unwrap();
    let rep = q.take_reply(req).unwrap().expect("the forwarded reply");
    assert_eq!(rep.id, forwarded);
    assert_eq!(rep.flags, USER | Flags::SYNTHETIC);
    assert!(rep.is_synthetic());
    assert_eq!(next(&l).flags, USER | Flags::SYNTHETIC);
}

/// Data is opaque bytes, passed through exactly (empty included).
pub fn data_is_opaque(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.d").unwrap();
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 7 + (i >> 8)) as u8).collect();
    let payloads: [&[u8]; 4] = [b"", b"\0", b"\xff\0\xfe\x00abc", &big];
    for p in payloads {
        s.announce("$.d", p.to_vec()).unwrap();
        assert_eq!(&next(&l).data[..], p);
    }
}
