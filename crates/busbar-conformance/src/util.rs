//! Helpers shared by the cases. Public `busbar` API only.

use std::fmt::Debug;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use busbar::{
    Bus, Credentials, Endpoint, EndpointId, Errno, Flags, Message, MessageId, OrigFrom,
    ReplierBindEvent,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// A failure guard for blocking calls: long enough never to fire on a
/// working bus, short enough that a broken one fails the test.
pub(crate) const GUARD: Duration = Duration::from_secs(10);

/// The id with network 0 and this serial.
pub(crate) const fn serial(n: u32) -> MessageId {
    MessageId {
        network: 0,
        serial: n,
    }
}

pub(crate) const fn ep(n: u32) -> EndpointId {
    EndpointId(n)
}

#[track_caller]
pub(crate) fn open(bus: &Bus) -> Endpoint {
    bus.open().expect("open an endpoint")
}

/// Opens `n` endpoints.
#[track_caller]
pub(crate) fn open_n<const N: usize>(bus: &Bus) -> [Endpoint; N] {
    std::array::from_fn(|_| open(bus))
}

/// The next queued message (there must be one).
#[track_caller]
pub(crate) fn next(e: &Endpoint) -> Message {
    match e.try_recv() {
        Ok(Some(m)) => m,
        Ok(None) => panic!("endpoint {} has no message queued", e.id()),
        Err(err) => panic!("recv on endpoint {} failed: {err}", e.id()),
    }
}

/// Asserts the queue is empty.
#[track_caller]
pub(crate) fn assert_empty(e: &Endpoint) {
    let m = e.try_recv().expect("recv");
    assert!(
        m.is_none(),
        "endpoint {} should have nothing queued, got {m:#?}",
        e.id()
    );
}

/// Takes everything queued.
pub(crate) fn drain(e: &Endpoint) -> Vec<Message> {
    let mut v = Vec::new();
    while let Some(m) = e.try_recv().expect("recv") {
        v.push(m);
    }
    v
}

/// The ids of some messages.
pub(crate) fn ids(msgs: &[Message]) -> Vec<MessageId> {
    msgs.iter().map(|m| m.id).collect()
}

/// The names of some messages.
pub(crate) fn names(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| &*m.name).collect()
}

/// Asserts a call failed with exactly `expected`.
#[track_caller]
pub(crate) fn assert_err<T: Debug>(r: Result<T, Errno>, expected: Errno) {
    match r {
        Err(e) => assert_eq!(e, expected, "wrong error"),
        Ok(v) => panic!("expected {expected}, got Ok({v:?})"),
    }
}

/// Asserts `f` fails with `expected` and leaves the bus exactly as it was
/// (every bus and endpoint statistic unchanged, the serial counter
/// included), but for the bus's counters: a refused send counts one more
/// refusal with that errno, anything else counts nothing.
#[track_caller]
pub(crate) fn assert_no_effect<T: Debug>(
    bus: &Bus,
    expected: Errno,
    f: impl FnOnce() -> Result<T, Errno>,
) {
    let mut before = bus.stats().expect("bus stats");
    assert_err(f(), expected);
    let mut after = bus.stats().expect("bus stats");
    let refused = |s: &busbar::BusStats| {
        s.counters
            .refused
            .iter()
            .find(|c| c.errno == expected.number())
            .map_or(0, |c| c.count)
    };
    let grew = refused(&after) - refused(&before);
    assert!(grew <= 1, "one failure counted {grew} times");
    let (mut cb, mut ca) = (before.counters.clone(), after.counters.clone());
    cb.refused.retain(|c| c.errno != expected.number());
    ca.refused.retain(|c| c.errno != expected.number());
    assert_eq!(
        cb, ca,
        "a failed operation ({expected}) changed other counters"
    );
    before.counters = Default::default();
    after.counters = Default::default();
    assert_eq!(
        before, after,
        "a failed operation ({expected}) changed the bus"
    );
}

/// The serial the bus will give the next message.
#[track_caller]
pub(crate) fn next_serial(bus: &Bus) -> u32 {
    bus.stats().expect("bus stats").next_serial
}

/// Asserts `m` is the synthetic message `name` with these addresses, the
/// `SYNTHETIC` flag only and no data.
#[track_caller]
pub(crate) fn assert_synthetic(
    m: &Message,
    name: &str,
    from: EndpointId,
    to: EndpointId,
    in_reply_to: MessageId,
) {
    assert_eq!(&*m.name, name, "name of {m:#?}");
    assert_eq!(m.from, from, "from of {m:#?}");
    assert_eq!(m.to, to, "to of {m:#?}");
    assert_eq!(m.in_reply_to, in_reply_to, "in_reply_to of {m:#?}");
    assert_eq!(m.flags, Flags::SYNTHETIC, "flags of {m:#?}");
    assert!(m.data.is_empty(), "synthetic {name} carries no data");
    assert_eq!(m.id.network, 0, "synthetic messages are local");
    assert_ne!(m.id.serial, 0, "synthetic messages get a serial");
    assert_eq!(m.orig_from, OrigFrom::default());
    assert_eq!(m.final_to, OrigFrom::default());
}

/// Asserts `m` is a replier bind event with this content.
#[track_caller]
pub(crate) fn assert_bind_event(m: &Message, is_bind: bool, binder: EndpointId, name: &str) {
    assert_eq!(&*m.name, busbar::synthetic::REPLIER_BIND_EVENT, "{m:#?}");
    assert_eq!(m.from, EndpointId::BUS);
    assert_eq!(m.to, EndpointId::BUS);
    assert_eq!(m.in_reply_to, MessageId::NONE);
    assert_eq!(m.flags, Flags::SYNTHETIC | Flags::ALL_OR_FAIL);
    assert_eq!(m.data.len(), 12 + (name.len() + 1).div_ceil(4) * 4);
    assert_eq!(
        ReplierBindEvent::decode(&m.data),
        Some(ReplierBindEvent {
            is_bind,
            binder,
            name: name.to_owned(),
        })
    );
}

/// Is the fd readable, waiting at most `timeout`?
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&ts)) {
            Ok(n) => return n > 0 && fds[0].revents().contains(PollFlags::IN),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Is the endpoint readable right now?
#[track_caller]
pub(crate) fn is_readable(e: &Endpoint) -> bool {
    poll_readable(e.readiness_fd().expect("readiness fd"), Duration::ZERO)
}

/// Does the endpoint become readable (within the guard)?
#[track_caller]
pub(crate) fn becomes_readable(e: &Endpoint) -> bool {
    poll_readable(e.readiness_fd().expect("readiness fd"), GUARD)
}

/// Waits (spinning on the bus's own state, not on time) until `cond` holds.
#[track_caller]
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// This process's credentials, as the bus must stamp them.
pub(crate) fn my_creds() -> Credentials {
    Credentials {
        pid: rustix::process::getpid().as_raw_nonzero().get() as u32,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    }
}
