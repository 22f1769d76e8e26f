//! Readiness: the fd polls readable exactly while there is something to take;
//! `recv_timeout` returns `None` on timeout.

use std::time::{Duration, Instant};

use busbar::{Bus, Endpoint, Flags, Message, Outgoing, synthetic};

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

/// How long a poller may sleep with something to take before the case
/// fails: far longer than any wake-up takes on a working bus.
const POLL_GUARD: Duration = Duration::from_secs(5);

/// Messages in the concurrent readiness cases.
const MESSAGES: u32 = 1_000;

/// Waits for the readiness fd as a poller would; a poll that times out
/// means a missed wake-up.
#[track_caller]
fn poll_or_fail(e: &Endpoint, got: u32, what: &str) {
    assert!(
        poll_readable(e.readiness_fd().expect("readiness fd"), POLL_GUARD),
        "poll slept {POLL_GUARD:?} with {got} of {MESSAGES} {what} received: missed wake-up \
         (stats: {:?})",
        e.stats().ok()
    );
}

/// The `u32` a concurrent case's message carries.
fn number(m: &Message) -> u32 {
    u32::from_le_bytes(m.data[..4].try_into().expect("4 data bytes"))
}

/// A poller (poll the readiness fd, then take with `try_recv` until empty)
/// receives every one of 1,000 announcements sent meanwhile by another
/// thread, in order, and never sleeps with one queued. The listener's small
/// queue and `ALL_OR_WAIT` keep the two in step, so the queue goes from
/// empty to not empty hundreds of times while the poller works.
pub fn poll_while_sending(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.set_queue_limit(4).unwrap();
    l.bind("$.a").unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for i in 0..MESSAGES {
                let out = Outgoing::announcement("$.a", i.to_le_bytes().to_vec())
                    .with_flags(Flags::ALL_OR_WAIT);
                s.send_wait(out, Some(GUARD)).unwrap();
            }
        });
        let mut got = 0;
        while got < MESSAGES {
            poll_or_fail(&l, got, "announcements");
            while let Some(m) = l.try_recv().unwrap() {
                assert_eq!((number(&m), m.lost), (got, 0), "in order, none lost");
                got += 1;
            }
        }
    });
    assert_empty(&l);
    assert!(!is_readable(&l), "everything taken");
}

/// The same with four senders at once, sending as fast as they can into a
/// queue that holds them all, and `try_recv_batch`: each sender's messages
/// arrive complete and in its order.
pub fn poll_concurrent_senders(make: &dyn Fn() -> Bus) {
    const SENDERS: u32 = 4;
    let bus = make();
    let l = open(&bus);
    l.set_queue_limit(MESSAGES + 1).unwrap();
    l.bind("$.a.*").unwrap();
    let senders: Vec<Endpoint> = (0..SENDERS).map(|_| open(&bus)).collect();
    std::thread::scope(|sc| {
        for (k, s) in senders.iter().enumerate() {
            sc.spawn(move || {
                let name = format!("$.a.s{k}");
                for i in 0..MESSAGES / SENDERS {
                    s.announce(&name, i.to_le_bytes().to_vec()).unwrap();
                }
            });
        }
        let mut next_of: Vec<u32> = vec![0; SENDERS as usize];
        let mut got = 0;
        while got < MESSAGES {
            poll_or_fail(&l, got, "announcements");
            loop {
                let batch = l.try_recv_batch(64).unwrap();
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let k = senders
                        .iter()
                        .position(|s| s.id() == m.from)
                        .expect("from a sender");
                    assert_eq!((number(&m), m.lost), (next_of[k], 0), "sender {k}'s order");
                    next_of[k] += 1;
                    got += 1;
                }
            }
        }
    });
    assert!(!is_readable(&l), "everything taken");
}

/// A replier that polls its readiness fd, takes requests with `try_recv`
/// and replies to each, answers 1,000 calls made one after another from
/// another thread without ever sleeping with a request queued.
pub fn poll_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for i in 0..MESSAGES {
                let rep = q.call("$.svc", i.to_le_bytes().to_vec(), Some(GUARD));
                let rep = rep.unwrap_or_else(|e| panic!("call {i}: {e}"));
                assert_eq!(number(&rep), i + 1);
            }
        });
        let mut got = 0;
        while got < MESSAGES {
            poll_or_fail(&r, got, "requests");
            while let Some(req) = r.try_recv().unwrap() {
                assert!(req.wants_us_to_reply());
                assert_eq!(number(&req), got);
                got += 1;
                r.reply(&req, got.to_le_bytes().to_vec()).unwrap();
            }
        }
    });
    assert!(!is_readable(&r), "everything taken");
}

/// One thread waits for a reply (parked in the daemon) while another polls
/// the same endpoint's readiness fd: an announcement arriving meanwhile
/// makes the fd readable (the waiting request does not take it), and the
/// reply still reaches the waiter.
pub fn poll_while_waiting_reply(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, other] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    q.bind("$.news").unwrap();
    std::thread::scope(|sc| {
        let caller = sc.spawn(|| q.call("$.svc", &b"ask"[..], Some(GUARD)));
        let req = r.recv_timeout(Some(GUARD)).unwrap().expect("the request");
        other.announce("$.news", &b"hot"[..]).unwrap();
        assert!(
            poll_readable(q.readiness_fd().expect("readiness fd"), POLL_GUARD),
            "an announcement arrived while a reply was awaited, and the readiness fd stayed quiet"
        );
        let m = q.try_recv().unwrap().expect("the announcement");
        assert_eq!(&*m.name, "$.news");
        r.reply(&req, &b"answer"[..]).unwrap();
        let reply = caller.join().unwrap().unwrap();
        assert_eq!(&reply.data[..], b"answer");
    });
}
