//! KBUS compatibility (`Endpoint::set_kbus_compat`): the rules a KBUS
//! program can observe where busbar's own differ, for that endpoint only;
//! and the queries the KBUS device emulation is built on (`list_bindings`,
//! `Bus::info`).

use busbar::{
    BindingInfo, Bus, Errno, Flags, Message, MessageId, Outgoing, kbus_entire_len, synthetic,
};

use crate::util::*;

fn compat(bus: &Bus) -> busbar::Endpoint {
    let e = open(bus);
    assert!(!e.set_kbus_compat(true).unwrap());
    assert!(e.stats().unwrap().kbus_compat);
    e
}

/// KBUS cleared `SYNTHETIC` on everything a user sent, forwarded ids
/// included; a KBUS-compatible endpoint does too (a bridge's forwarded
/// message keeps it otherwise: `messages::forwarded_keeps_synthetic`).
pub fn forwarded_synthetic_cleared(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    s.set_kbus_compat(true).unwrap();
    l.bind("$.a").unwrap();
    s.send(Outgoing {
        id: MessageId {
            network: 3,
            serial: 5,
        },
        flags: Flags::SYNTHETIC,
        ..Outgoing::announcement("$.a", &b""[..])
    })
    .unwrap();
    let m = next(&l);
    assert_eq!(
        m.id,
        MessageId {
            network: 3,
            serial: 5
        }
    );
    assert!(!m.is_synthetic());
}

/// In KBUS compatibility a send that fails after validation still takes a
/// serial and becomes `last_sent`; one that fails validation or `ENOLCK`
/// takes none. Native endpoints take serials only for accepted sends.
pub fn failed_sends_take_a_serial(make: &dyn Fn() -> Bus) {
    let bus = make();
    let k = compat(&bus);
    let native = open(&bus);
    assert_eq!(k.stats().unwrap().last_sent, serial(0));
    let a = k.announce("$.a", &b""[..]).unwrap();
    assert_eq!((a, k.stats().unwrap().last_sent), (serial(1), serial(1)));
    assert_err(k.request("$.nobody", &b""[..]), Errno::EADDRNOTAVAIL);
    assert_eq!(k.stats().unwrap().last_sent, serial(2));
    assert_eq!(next_serial(&bus), 3);
    // Invalid: no serial.
    assert_err(k.announce("$.bad.*", &b""[..]), Errno::EBADMSG);
    assert_eq!(next_serial(&bus), 3);
    // The native endpoint's failure takes none.
    assert_err(native.request("$.nobody", &b""[..]), Errno::EADDRNOTAVAIL);
    assert_eq!(next_serial(&bus), 3);
    assert_eq!(native.stats().unwrap().last_sent, serial(0));
    // ENOLCK: no serial either.
    let r = open(&bus);
    r.bind_replier("$.svc").unwrap();
    k.set_queue_limit(1).unwrap();
    k.request("$.svc", &b""[..]).unwrap();
    assert_eq!(next_serial(&bus), 4);
    assert_err(k.request("$.svc", &b""[..]), Errno::ENOLCK);
    assert_eq!(next_serial(&bus), 4);
    assert_eq!(k.stats().unwrap().last_sent, serial(3));
}

/// A KBUS-compatible endpoint's messages are measured in KBUS's entire
/// form (88-byte header, padded name and data, final guard).
pub fn entire_form_size(make: &dyn Fn() -> Bus) {
    let bus = make();
    let k = compat(&bus);
    let native = open(&bus);
    assert_eq!(kbus_entire_len(6, 0), 100);
    assert_eq!(kbus_entire_len(6, 7), 108);
    bus.set_max_message_size(104).unwrap();
    assert_eq!(bus.info().unwrap().max_message_size, 104);
    // 100 and 104 bytes fit, 108 do not.
    k.announce("$.Fred", &b""[..]).unwrap();
    k.announce("$.Fred", &b"abc"[..]).unwrap();
    k.announce("$.Fred", &b"abcd"[..]).unwrap();
    assert_err(k.announce("$.Fred", &b"abcde"[..]), Errno::EMSGSIZE);
    // Native: name plus data.
    native.announce("$.Fred", &[0u8; 98][..]).unwrap();
    assert_err(native.announce("$.Fred", &[0u8; 99][..]), Errno::EMSGSIZE);
}

/// KBUS picks, among wildcard repliers of the same kind, the most recently
/// bound; busbar picks the longest prefix. Each sender gets its own rule.
pub fn most_recent_wildcard_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [long, short] = open_n(&bus);
    long.bind_replier("$.a.b.*").unwrap();
    short.bind_replier("$.a.*").unwrap();
    let k = compat(&bus);
    let native = open(&bus);
    k.request("$.a.b.c", &b""[..]).unwrap();
    native.request("$.a.b.c", &b""[..]).unwrap();
    assert_eq!(next(&short).from, k.id());
    assert_eq!(next(&long).from, native.id());
    // Exact still beats `%`, which beats `*`.
    let pct = open(&bus);
    pct.bind_replier("$.a.b.%").unwrap();
    k.request("$.a.b.c", &b""[..]).unwrap();
    assert_eq!(next(&pct).from, k.id());
}

/// A KBUS-compatible requester accepts a reply from anyone while it awaits
/// the request (KBUS's rule); the replier that owed it then gets
/// `ECONNREFUSED`, and its close adds no second reply. A native requester
/// keeps busbar's rule whoever the stranger is.
pub fn anyone_may_answer_a_kbus_requester(make: &dyn Fn() -> Bus) {
    let bus = make();
    let k = compat(&bus);
    let [replier, stranger] = open_n(&bus);
    replier.bind_replier("$.svc").unwrap();
    let id = k.request("$.svc", &b""[..]).unwrap();
    let req = next(&replier);
    let mut fake = Outgoing::announcement("$.svc", &b"stranger"[..]);
    fake.in_reply_to = id;
    fake.to = k.id();
    stranger.send(fake.clone()).unwrap();
    let got = next(&k);
    assert_eq!((&got.data[..], got.from), (&b"stranger"[..], stranger.id()));
    // Only once: the requester no longer awaits it.
    assert_err(stranger.send(fake), Errno::ECONNREFUSED);
    assert_err(replier.reply(&req, &b"late"[..]), Errno::ECONNREFUSED);
    assert_eq!(replier.stats().unwrap().owed_replies, 0);
    replier.close().unwrap();
    assert_empty(&k);
    // A native requester: strangers are refused, KBUS-compatible or not.
    let native = open(&bus);
    let r2 = open(&bus);
    r2.bind_replier("$.svc2").unwrap();
    let id = native.request("$.svc2", &b""[..]).unwrap();
    let kstranger = compat(&bus);
    let mut fake = Outgoing::announcement("$.svc2", &b""[..]);
    fake.in_reply_to = id;
    fake.to = native.id();
    assert_err(kstranger.send(fake.clone()), Errno::ECONNREFUSED);
    // A KBUS sender learns first that the requester does not exist.
    fake.to = busbar::EndpointId(999);
    assert_err(kstranger.send(fake.clone()), Errno::EADDRNOTAVAIL);
    assert_err(stranger.send(fake), Errno::ECONNREFUSED);
    let req = next(&r2);
    r2.reply(&req, &b""[..]).unwrap();
    assert_eq!(next(&native).in_reply_to, id);
    // A request still pending (ALL_OR_WAIT, its replier full) has reached no
    // replier: nobody may answer it yet.
    let r3 = open(&bus);
    r3.bind_replier("$.svc3").unwrap();
    r3.set_queue_limit(1).unwrap();
    stranger.announce("$.fill", &b""[..]).unwrap();
    r3.bind("$.fill").unwrap();
    stranger.announce("$.fill", &b""[..]).unwrap();
    let k2 = compat(&bus);
    let wait = Outgoing::request("$.svc3", &b""[..])
        .with_flags(busbar::Flags::ALL_OR_WAIT.with(busbar::Flags::WANT_A_REPLY));
    assert_err(k2.send(wait), Errno::EAGAIN);
    let pending = k2.stats().unwrap().pending_send.unwrap();
    let mut early = Outgoing::announcement("$.svc3", &b""[..]);
    early.in_reply_to = pending;
    early.to = k2.id();
    assert_err(stranger.send(early), Errno::ECONNREFUSED);
    next(&r3); // room: the request is delivered, and only r3 may answer it
    let req = next(&r3);
    r3.reply(&req, &b""[..]).unwrap();
    assert_eq!(k2.take_send_outcome().unwrap().unwrap().id, pending);
    assert_eq!(next(&k2).in_reply_to, pending);
}

/// `list_bindings`: every binding, oldest first, with its owner (asked for
/// a page at a time); `pattern_replier`: exact-pattern lookup.
pub fn list_bindings(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b] = open_n(&bus);
    assert_eq!(bus.list_bindings().unwrap(), vec![]);
    a.bind("$.x.*").unwrap();
    b.bind_replier("$.y").unwrap();
    a.bind("$.x.*").unwrap();
    let c = my_creds();
    let info = |id, e: &busbar::Endpoint, replier, name: &str| BindingInfo {
        id,
        endpoint: e.id(),
        pid: c.pid,
        uid: c.uid,
        replier,
        name: name.into(),
    };
    assert_eq!(
        bus.list_bindings().unwrap(),
        vec![
            info(1, &a, false, "$.x.*"),
            info(2, &b, true, "$.y"),
            info(3, &a, false, "$.x.*")
        ]
    );
    a.close().unwrap();
    assert_eq!(bus.list_bindings().unwrap(), vec![info(2, &b, true, "$.y")]);
    assert_err(bus.bus(busbar::BusId(9)).list_bindings(), Errno::ENOENT);
    // More than a page: all of them, in order.
    let n = busbar::LIST_BINDINGS_PAGE * 2 + 3;
    for i in 0..n {
        b.bind(&format!("$.p{i}")).unwrap();
    }
    let all = bus.list_bindings().unwrap();
    assert_eq!(all.len(), n + 1);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(&*all[n].name, format!("$.p{}", n - 1));
    // The exact pattern's replier, no wildcard resolution.
    b.bind_replier("$.w.*").unwrap();
    assert_eq!(bus.pattern_replier("$.y").unwrap(), Some(b.id()));
    assert_eq!(bus.pattern_replier("$.w.*").unwrap(), Some(b.id()));
    assert_eq!(bus.pattern_replier("$.w.z").unwrap(), None);
    assert_eq!(bus.find_replier("$.w.z").unwrap(), Some(b.id()));
    assert_err(bus.pattern_replier("bad"), Errno::EBADMSG);
}

/// `Bus::info`: the bus's settings and the number of buses.
pub fn bus_info(make: &dyn Fn() -> Bus) {
    let bus = make();
    let i = bus.info().unwrap();
    assert_eq!(
        (i.bus, i.buses, i.replier_bind_events),
        (busbar::BusId(0), 1, false)
    );
    assert!(i.max_message_size <= i.absolute_max_message_size);
    let two = bus.create_bus().unwrap();
    assert_eq!(two.info().unwrap().buses, 2);
    let e = open(&bus);
    e.set_replier_bind_events(true).unwrap();
    assert!(bus.info().unwrap().replier_bind_events);
    assert_err(bus.bus(busbar::BusId(7)).info(), Errno::ENOENT);
}

/// When the set-aside list overflows, every listener gets the same
/// `UnbindEventsLost` message (one id), as with KBUS.
pub fn one_unbind_events_lost(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [l1, l2] = open_n(&bus);
    for l in [&l1, &l2] {
        l.set_queue_limit(1).unwrap();
        l.bind(synthetic::REPLIER_BIND_EVENT).unwrap();
    }
    l1.set_replier_bind_events(true).unwrap();
    let binder = open(&bus);
    for i in 0..1100 {
        binder.bind_replier(&format!("$.q{i}")).unwrap();
        next(&l1);
        next(&l2);
    }
    binder.close().unwrap();
    let lost = |l: &busbar::Endpoint| -> Message {
        drain(l)
            .into_iter()
            .find(|m| &*m.name == synthetic::UNBIND_EVENTS_LOST)
            .expect("an UnbindEventsLost")
    };
    assert_eq!(lost(&l1).id, lost(&l2).id);
}
