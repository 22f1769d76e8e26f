//! Every error the operation table lists, per operation, each with no
//! observable effect on the bus.
//!
//! Not reachable through the public API, so not covered: `ENOENT` for
//! endpoint-scoped operations (an `Endpoint` value exists only while it is
//! open) and `ENOMEM` from `Open` (after 2³² endpoints on one bus).

use busbar::{Bus, Errno, Flags, MAX_NAME_LEN, MessageId, Outgoing};

use crate::util::*;

fn too_long() -> String {
    format!("$.{}", "a".repeat(MAX_NAME_LEN - 1))
}

/// The numbers are the Linux errno values; names and texts are stable.
pub fn numbers(_make: &dyn Fn() -> Bus) {
    let expect = [
        (Errno::EPERM, 1),
        (Errno::ENOENT, 2),
        (Errno::EINTR, 4),
        (Errno::EIO, 5),
        (Errno::EAGAIN, 11),
        (Errno::ENOMEM, 12),
        (Errno::EBUSY, 16),
        (Errno::EINVAL, 22),
        (Errno::EPIPE, 32),
        (Errno::ENAMETOOLONG, 36),
        (Errno::ENOLCK, 37),
        (Errno::ENOMSG, 42),
        (Errno::EPROTO, 71),
        (Errno::EBADMSG, 74),
        (Errno::EMSGSIZE, 90),
        (Errno::EOPNOTSUPP, 95),
        (Errno::EADDRINUSE, 98),
        (Errno::EADDRNOTAVAIL, 99),
        (Errno::ECONNRESET, 104),
        (Errno::ESHUTDOWN, 108),
        (Errno::ETIMEDOUT, 110),
        (Errno::ECONNREFUSED, 111),
        (Errno::EALREADY, 114),
        (Errno::EDQUOT, 122),
    ];
    for (e, n) in expect {
        assert_eq!(e.number(), n, "{}", e.name());
        assert_eq!(Errno::from_number(n), Some(e));
        assert!(!e.strerror().is_empty());
        assert_eq!(e.to_string(), format!("{}: {}", e.name(), e.strerror()));
    }
    assert_eq!(Errno::from_number(0), None);
}

/// `CreateBus`: `ENOMEM` once the kernel holds its most buses; the others
/// keep working.
pub fn create_bus(make: &dyn Fn() -> Bus) {
    let bus = make();
    let mut made = 1u32;
    let err = loop {
        match bus.create_bus() {
            Ok(b) => {
                made += 1;
                assert_eq!(b.id().0 + 1, made);
                assert!(made <= 100_000, "no limit on buses");
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, Errno::ENOMEM);
    assert_err(bus.create_bus(), Errno::ENOMEM);
    assert_err(bus.bus(busbar::BusId(made)).open(), Errno::ENOENT);
    let last = bus.bus(busbar::BusId(made - 1));
    let [s, l] = open_n(&last);
    l.bind("$.a").unwrap();
    assert_eq!(s.announce("$.a", &b""[..]).unwrap(), serial(1));
    assert_eq!(next(&l).id, serial(1));
}

/// `Open`: `ENOENT` for a bus that does not exist.
pub fn open(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_no_effect(&bus, Errno::ENOENT, || bus.bus(busbar::BusId(1)).open());
    assert_no_effect(&bus, Errno::ENOENT, || bus.bus(busbar::BusId(7)).open());
}

/// `Bind`: `EBADMSG`, `ENAMETOOLONG`, `EADDRINUSE`, `EAGAIN`.
pub fn bind(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b, l] = open_n(&bus);
    a.bind_replier("$.r").unwrap();
    assert_no_effect(&bus, Errno::EBADMSG, || b.bind("$.a..b"));
    assert_no_effect(&bus, Errno::EBADMSG, || b.bind_replier("$.*.a"));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || b.bind(&too_long()));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || b.bind_replier(&too_long()));
    assert_no_effect(&bus, Errno::EADDRINUSE, || b.bind_replier("$.r"));
    l.bind(busbar::synthetic::REPLIER_BIND_EVENT).unwrap();
    l.set_queue_limit(1).unwrap();
    l.set_replier_bind_events(true).unwrap(); // dumps `$.r`: l is now full
    assert_eq!(l.stats().unwrap().queued, 1);
    assert_no_effect(&bus, Errno::EAGAIN, || b.bind_replier("$.s"));
}

/// `Unbind`: `EBADMSG`, `ENAMETOOLONG`, `EINVAL`, `EAGAIN`.
pub fn unbind(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, l] = open_n(&bus);
    a.bind_replier("$.r").unwrap();
    a.bind("$.l").unwrap();
    assert_no_effect(&bus, Errno::EBADMSG, || a.unbind("$.l."));
    assert_no_effect(&bus, Errno::EBADMSG, || a.unbind_replier("r"));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || a.unbind(&too_long()));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || a.unbind_replier(&too_long()));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind("$.r"));
    assert_no_effect(&bus, Errno::EINVAL, || a.unbind_replier("$.l"));
    assert_no_effect(&bus, Errno::EINVAL, || l.unbind("$.l"));
    l.bind(busbar::synthetic::REPLIER_BIND_EVENT).unwrap();
    l.set_queue_limit(1).unwrap();
    l.set_replier_bind_events(true).unwrap();
    assert_no_effect(&bus, Errno::EAGAIN, || a.unbind_replier("$.r"));
    // Listener unbinds send no events, so they cannot be EAGAIN.
    a.unbind("$.l").unwrap();
}

/// `Send`: every error it lists.
pub fn send(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, r, x, full] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    full.bind_replier("$.full").unwrap();
    full.bind("$.lfull").unwrap();
    full.set_queue_limit(1).unwrap();
    open_n::<1>(&bus)[0].request("$.full", &b""[..]).unwrap();
    // EINVAL: both ALL_OR flags; a request that is also a reply.
    assert_no_effect(&bus, Errno::EINVAL, || {
        s.send(
            Outgoing::announcement("$.a", &b""[..])
                .with_flags(Flags::ALL_OR_WAIT | Flags::ALL_OR_FAIL),
        )
    });
    assert_no_effect(&bus, Errno::EINVAL, || {
        s.send(Outgoing {
            in_reply_to: serial(1),
            ..Outgoing::request("$.svc", &b""[..])
        })
    });
    assert_no_effect(&bus, Errno::EBADMSG, || s.announce("$.", &b""[..]));
    assert_no_effect(&bus, Errno::EBADMSG, || s.announce("$.a.%", &b""[..]));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || {
        s.announce(&too_long(), &b""[..])
    });
    bus.set_max_message_size(100).unwrap();
    assert_no_effect(&bus, Errno::EMSGSIZE, || s.announce("$.a", vec![0; 98]));
    assert_no_effect(&bus, Errno::EADDRNOTAVAIL, || {
        s.request("$.nobody", &b""[..])
    });
    assert_no_effect(&bus, Errno::EBUSY, || s.request("$.full", &b""[..]));
    assert_no_effect(&bus, Errno::EBUSY, || {
        s.send(Outgoing::announcement("$.lfull", &b""[..]).with_flags(Flags::ALL_OR_FAIL))
    });
    assert_no_effect(&bus, Errno::EPIPE, || {
        s.send(Outgoing {
            to: x.id(),
            ..Outgoing::request("$.svc", &b""[..])
        })
    });
    s.request("$.svc", &b""[..]).unwrap();
    let req = next(&r);
    assert_no_effect(&bus, Errno::ECONNREFUSED, || x.reply(&req, &b""[..]));
    assert_no_effect(&bus, Errno::ECONNREFUSED, || {
        r.send(Outgoing {
            in_reply_to: MessageId {
                network: 0,
                serial: 777,
            },
            to: s.id(),
            ..Outgoing::announcement("$.svc", &b""[..])
        })
    });
    let q = crate::util::open(&bus);
    q.set_queue_limit(1).unwrap();
    q.request("$.svc", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::ENOLCK, || q.request("$.svc", &b""[..]));
    // EAGAIN (this one has an effect: the send is pending) and EALREADY.
    assert_err(
        x.send(Outgoing::announcement("$.lfull", &b""[..]).with_flags(Flags::ALL_OR_WAIT)),
        Errno::EAGAIN,
    );
    assert_no_effect(&bus, Errno::EALREADY, || x.announce("$.a", &b""[..]));
    // EADDRNOTAVAIL for a reply whose requester has gone (the one failed
    // operation with an effect: the replier's debt is cancelled).
    s.close().unwrap();
    assert_err(r.reply(&req, &b""[..]), Errno::EADDRNOTAVAIL);
}

/// `TakeReply`: `EINVAL` for a request we do not await.
pub fn take_reply(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    assert_no_effect(&bus, Errno::EINVAL, || q.take_reply(serial(1)));
    let id = q.request("$.svc", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EINVAL, || r.take_reply(id));
    assert_no_effect(&bus, Errno::EINVAL, || q.take_reply(MessageId::NONE));
    assert_eq!(q.take_reply(id).unwrap(), None);
}

/// `SetQueueLimit`: `EINVAL` for 0.
pub fn set_queue_limit(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [e] = open_n(&bus);
    assert_no_effect(&bus, Errno::EINVAL, || e.set_queue_limit(0));
}

/// `SetReplierBindEvents`: `EBUSY` when the dump does not fit.
pub fn set_replier_bind_events(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [r, c] = open_n(&bus);
    r.bind_replier("$.a").unwrap();
    r.bind_replier("$.b").unwrap();
    c.set_queue_limit(1).unwrap();
    assert_no_effect(&bus, Errno::EBUSY, || c.set_replier_bind_events(true));
    // Switching off never fails and dumps nothing.
    assert!(!c.set_replier_bind_events(false).unwrap());
    assert_empty(&c);
}

/// `SetMaxMessageSize`: `ENOENT`, `EINVAL`.
pub fn set_max_message_size(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_no_effect(&bus, Errno::ENOENT, || {
        bus.bus(busbar::BusId(3)).set_max_message_size(1000)
    });
    assert_no_effect(&bus, Errno::EINVAL, || bus.set_max_message_size(99));
    assert_no_effect(&bus, Errno::EINVAL, || {
        bus.set_max_message_size((64 << 20) + 1)
    });
}

/// `FindReplier`: `ENOENT`, `EBADMSG`, `ENAMETOOLONG`.
pub fn find_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_no_effect(&bus, Errno::ENOENT, || {
        bus.bus(busbar::BusId(3)).find_replier("$.a")
    });
    assert_no_effect(&bus, Errno::EBADMSG, || bus.find_replier("$.a."));
    assert_no_effect(&bus, Errno::EBADMSG, || bus.find_replier("$.a.*"));
    assert_no_effect(&bus, Errno::ENAMETOOLONG, || bus.find_replier(&too_long()));
}

/// `BusStats`: `ENOENT`.
pub fn bus_stats(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_err(bus.bus(busbar::BusId(1)).stats(), Errno::ENOENT);
    bus.create_bus().unwrap();
    assert_eq!(
        bus.bus(busbar::BusId(1)).stats().unwrap().bus,
        busbar::BusId(1)
    );
}
