//! The async API (`AsyncEndpoint<TokioReactor>`): the core rules
//! (request/reply, each synthetic reply, full queues with `ALL_OR_WAIT`,
//! order) and cancellation, on both transports and on tokio's
//! current-thread and multi-thread runtimes: every case runs four times.

#![cfg(feature = "tokio")]

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use busbar::{AsyncEndpoint, Bus, Errno, Flags, Outgoing, TokioReactor, synthetic};
use futures_core::Stream;
use tokio::task::JoinSet;
use tokio::time::timeout;

mod support;

type Aep = AsyncEndpoint<TokioReactor>;

/// Far longer than any case takes on a working bus.
const OVERALL: Duration = Duration::from_secs(120);
/// For waits that must succeed.
const LONG: Duration = Duration::from_secs(30);

fn aep(bus: &Bus) -> Aep {
    AsyncEndpoint::new(bus.open().unwrap()).unwrap()
}

/// A tokio runtime: multi-thread (two workers) or current-thread.
fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap()
}

/// Each case on both transports and both runtimes.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;

            fn run(multi: bool, bus: fn() -> Bus) {
                runtime(multi).block_on(async {
                    timeout(OVERALL, super::$case(bus())).await.expect("the case hung");
                });
            }

            #[test]
            fn in_process_current_thread() {
                run(false, Bus::in_process);
            }

            #[test]
            fn in_process_multi_thread() {
                run(true, Bus::in_process);
            }

            #[test]
            fn daemon_current_thread() {
                run(false, support::daemon_bus);
            }

            #[test]
            fn daemon_multi_thread() {
                run(true, support::daemon_bus);
            }
        }
    )*};
}

cases!(
    many_concurrent_calls,
    each_synthetic_reply,
    send_wait_waits_for_room,
    order_through_the_stream,
    cancelled_recvs_lose_nothing,
    a_cancelled_call_keeps_its_reply,
    a_dropped_send_wait_gives_up,
    a_full_inbox_leaves_the_queue_to_hold,
    one_wait_per_reply,
);

/// Through a daemon an async `call` has the daemon park the wait for its
/// reply with the request (one round trip). Beyond the daemon's limit of
/// parked waits per connection the call still completes: its reply is
/// then looked for in the queue. Both runtimes.
#[test]
fn calls_beyond_the_parked_limit() {
    for multi in [false, true] {
        let rt = runtime(multi);
        rt.block_on(async {
            let bus = support::daemon_bus_with(|c| c.limits.max_parked_per_connection = 2);
            let r = bus.open().unwrap();
            r.bind_replier("$.later").unwrap();
            let client = Arc::new(aep(&bus));
            let mut calls = JoinSet::new();
            for i in 0..10u32 {
                let c = client.clone();
                calls.spawn(async move { (i, c.call("$.later", i.to_string()).await) });
            }
            // Every request arrives before any is answered: all ten wait
            // at once, eight of them beyond the limit.
            let replier = std::thread::spawn(move || {
                let mut reqs = Vec::new();
                while reqs.len() < 10 {
                    reqs.push(r.recv_timeout(Some(LONG)).unwrap().expect("a request"));
                }
                for q in &reqs {
                    r.reply(q, q.data.clone()).unwrap();
                }
                r
            });
            let all = timeout(OVERALL, async {
                let mut got = Vec::new();
                while let Some(j) = calls.join_next().await {
                    let (i, m) = j.unwrap();
                    let m = m.unwrap();
                    assert_eq!(m.data, i.to_string().as_bytes(), "call {i}");
                    got.push(i);
                }
                got
            })
            .await
            .expect("every call answered");
            assert_eq!(all.len(), 10);
            drop(replier.join().unwrap());
            assert_eq!(client.endpoint().stats().unwrap().outstanding_requests, 0);
            assert_eq!(client.inbox_len(), 0);
        });
    }
}

/// A call whose wait the daemon holds, and a call given up earlier, when
/// the daemon stops: the waiting call ends (its synthetic reply, or the
/// daemon's reason, `ESHUTDOWN`) instead of waiting forever, and the next
/// call fails at once.
/// Both runtimes.
#[test]
fn a_call_ends_when_the_daemon_stops() {
    for multi in [false, true] {
        let rt = runtime(multi);
        rt.block_on(async {
            let (bus, stop) = support::daemon_bus_and_stop(|_| {});
            let r = bus.open().unwrap();
            r.bind_replier("$.never").unwrap();
            let client = Arc::new(aep(&bus));
            assert!(
                timeout(Duration::from_millis(20), client.call("$.never", "dropped"))
                    .await
                    .is_err()
            );
            let c = client.clone();
            let waiting = tokio::spawn(async move { c.call("$.never", "waits").await });
            // Both requests have reached the replier: the call is waiting.
            let r = tokio::task::spawn_blocking(move || {
                for _ in 0..2 {
                    r.recv_timeout(Some(LONG)).unwrap().expect("a request");
                }
                r
            })
            .await
            .unwrap();
            stop.shutdown();
            let ended = timeout(LONG, waiting)
                .await
                .expect("the call ended")
                .unwrap();
            // The daemon may first close the replier, which owes the call a
            // reply: then the guarantee answers it (synthetic, `Ignored`).
            match &ended {
                Ok(m) => assert_eq!(m.name.as_ref(), synthetic::IGNORED, "{m:?}"),
                Err(e) => assert!(matches!(e, Errno::ESHUTDOWN | Errno::ECONNRESET), "{e:?}"),
            }
            let next = timeout(LONG, client.call("$.never", "after"))
                .await
                .unwrap();
            assert!(
                matches!(next, Err(Errno::ESHUTDOWN | Errno::ECONNRESET)),
                "{next:?}"
            );
            drop(r);
        });
    }
}

/// An async replier serving 1,000 concurrent calls from one client
/// endpoint shared by 1,000 tasks.
async fn many_concurrent_calls(bus: Bus) {
    const N: u32 = 1_000;
    let replier = aep(&bus);
    replier.endpoint().bind_replier("$.echo").unwrap();
    replier.endpoint().set_queue_limit(N + 10).unwrap();
    let client = Arc::new(aep(&bus));
    // Each outstanding request holds a slot in the client's queue.
    client.endpoint().set_queue_limit(N + 10).unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..N {
            let req = replier.recv().await.unwrap();
            replier.endpoint().reply(&req, req.data.clone()).unwrap();
        }
        replier
    });
    let mut calls = JoinSet::new();
    for i in 0..N {
        let c = client.clone();
        calls.spawn(async move {
            let r = c.call("$.echo", i.to_le_bytes().to_vec()).await.unwrap();
            assert!(!r.is_synthetic());
            assert_eq!(r.data[..], i.to_le_bytes());
        });
    }
    let all = timeout(Duration::from_secs(20), async {
        while let Some(r) = calls.join_next().await {
            r.unwrap();
        }
    })
    .await;
    if all.is_err() {
        let fd = client.endpoint().readiness_fd().unwrap();
        let mut p = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let n = rustix::event::poll(
            &mut p,
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        )
        .unwrap();
        panic!(
            "hung: {} calls left; {:?}; stats {:?}; readiness fd readable: {n}; refresh: {:?}",
            calls.len(),
            client,
            client.endpoint().stats(),
            client.endpoint().refresh()
        );
    }
    server.await.unwrap();
    assert_eq!(client.endpoint().stats().unwrap().outstanding_requests, 0);
    assert_eq!(client.inbox_len(), 0);
}

/// GoneAway, Ignored and Unbound, each to a call awaiting it.
async fn each_synthetic_reply(bus: Bus) {
    let client = aep(&bus);
    for (how, name) in [
        ("close", synthetic::GONE_AWAY),
        ("read then close", synthetic::IGNORED),
        ("unbind", synthetic::UNBOUND),
    ] {
        let r = bus.open().unwrap();
        r.bind_replier("$.g").unwrap();
        let id = client.endpoint().request("$.g", "").unwrap();
        match how {
            "close" => r.close().unwrap(),
            "read then close" => {
                assert_eq!(r.recv().unwrap().id, id);
                r.close().unwrap();
            }
            _ => {
                r.unbind_replier("$.g").unwrap();
                r.close().unwrap();
            }
        }
        let m = timeout(LONG, client.wait_reply(id)).await.unwrap().unwrap();
        assert_eq!(
            (&*m.name, m.is_synthetic(), m.in_reply_to),
            (name, true, id),
            "{how}"
        );
    }
}

/// `send_wait` waits while a listener's queue is full, then delivers.
async fn send_wait_waits_for_room(bus: Bus) {
    let listener = aep(&bus);
    listener.endpoint().bind("$.q").unwrap();
    listener.endpoint().set_queue_limit(1).unwrap();
    let sender = Arc::new(aep(&bus));
    sender.endpoint().announce("$.q", "1").unwrap();
    let s = sender.clone();
    let waiting =
        tokio::spawn(async move { s.send_wait(Outgoing::announcement("$.q", "2")).await });
    // Until the send is pending (nothing else can make room for it).
    while sender.endpoint().stats().unwrap().pending_send.is_none() {
        tokio::task::yield_now().await;
    }
    assert_eq!(&listener.recv().await.unwrap().data[..], b"1");
    let id = timeout(LONG, waiting).await.unwrap().unwrap().unwrap();
    let m = listener.recv().await.unwrap();
    assert_eq!((&m.data[..], m.id, m.lost), (&b"2"[..], id, 0));
}

/// 500 announcements sent from a thread arrive in order, none lost, through
/// the stream.
async fn order_through_the_stream(bus: Bus) {
    const N: u32 = 500;
    let listener = aep(&bus);
    listener.endpoint().bind("$.o").unwrap();
    listener.endpoint().set_queue_limit(8).unwrap();
    let s = bus.open().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let m = Outgoing::announcement("$.o", i.to_le_bytes().to_vec())
                .with_flags(Flags::ALL_OR_WAIT);
            s.send_wait(m, Some(LONG)).unwrap();
        }
    });
    let mut stream = listener.messages();
    for i in 0..N {
        let m = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&m.data[..], m.lost), (&i.to_le_bytes()[..], 0));
    }
    sender.join().unwrap();
}

/// `recv` futures dropped at every point while messages flow: every
/// message still arrives once, in order.
async fn cancelled_recvs_lose_nothing(bus: Bus) {
    const N: u32 = 300;
    let listener = aep(&bus);
    listener.endpoint().bind("$.c").unwrap();
    listener.endpoint().set_queue_limit(4).unwrap();
    let s = bus.open().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let m = Outgoing::announcement("$.c", i.to_le_bytes().to_vec())
                .with_flags(Flags::ALL_OR_WAIT);
            s.send_wait(m, Some(LONG)).unwrap();
        }
    });
    let (mut got, mut cancelled) = (0, 0);
    while got < N {
        match timeout(Duration::from_micros(50), listener.recv()).await {
            Ok(m) => {
                assert_eq!(&m.unwrap().data[..], got.to_le_bytes());
                got += 1;
            }
            Err(_) => cancelled += 1,
        }
    }
    sender.join().unwrap();
    assert!(listener.endpoint().try_recv().unwrap().is_none());
    let _ = cancelled; // how many depends on the machine's speed
}

/// A call dropped (timed out) before its reply: the reply comes to `recv`,
/// and the request's slot is released.
async fn a_cancelled_call_keeps_its_reply(bus: Bus) {
    let r = bus.open().unwrap();
    r.bind_replier("$.slow").unwrap();
    let client = aep(&bus);
    assert!(
        timeout(Duration::from_millis(20), client.call("$.slow", "q"))
            .await
            .is_err()
    );
    let req = r.recv_timeout(Some(LONG)).unwrap().unwrap();
    r.reply(&req, "kept").unwrap();
    let m = timeout(LONG, client.recv()).await.unwrap().unwrap();
    assert_eq!((&m.data[..], m.in_reply_to), (&b"kept"[..], req.id));
    assert_eq!(client.endpoint().stats().unwrap().outstanding_requests, 0);
    // A wait dropped after its reply was routed to it (by another task's
    // wait) but before it returned it: the reply goes to `recv`.
    let id1 = client.endpoint().request("$.slow", "1").unwrap();
    let mut first = Box::pin(client.wait_reply(id1));
    assert!(
        poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx)))
            .await
            .is_pending()
    );
    let id2 = client.endpoint().request("$.slow", "2").unwrap();
    for _ in 0..2 {
        let req = r.recv_timeout(Some(LONG)).unwrap().unwrap();
        r.reply(&req, req.data.clone()).unwrap();
    }
    let m2 = timeout(LONG, client.wait_reply(id2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m2.in_reply_to, id2);
    drop(first);
    let m1 = timeout(LONG, client.recv()).await.unwrap().unwrap();
    assert_eq!((&m1.data[..], m1.in_reply_to), (&b"1"[..], id1));
    assert_eq!(client.endpoint().stats().unwrap().outstanding_requests, 0);
}

/// A `send_wait` future dropped while pending: the send is given up.
async fn a_dropped_send_wait_gives_up(bus: Bus) {
    let listener = aep(&bus);
    listener.endpoint().bind("$.q").unwrap();
    listener.endpoint().set_queue_limit(1).unwrap();
    let sender = aep(&bus);
    sender.endpoint().announce("$.q", "1").unwrap();
    assert!(
        timeout(
            Duration::from_millis(20),
            sender.send_wait(Outgoing::announcement("$.q", "never"))
        )
        .await
        .is_err()
    );
    assert_eq!(sender.endpoint().stats().unwrap().pending_send, None);
    assert_eq!(&listener.recv().await.unwrap().data[..], b"1");
    assert!(listener.endpoint().try_recv().unwrap().is_none());
}

/// An inbox limit of 2 with 10 announcements queued: the wait fills the
/// inbox and leaves the rest in the bus queue, still gets its reply, and
/// `recv` then hands out all 10 in order.
async fn a_full_inbox_leaves_the_queue_to_hold(bus: Bus) {
    let r = bus.open().unwrap();
    r.bind_replier("$.svc").unwrap();
    let client = aep(&bus);
    client.set_inbox_limit(2);
    client.endpoint().bind("$.flood").unwrap();
    let id = client.endpoint().request("$.svc", "q").unwrap();
    for i in 0..10u8 {
        r.announce("$.flood", vec![i]).unwrap();
    }
    let mut wait = Box::pin(client.wait_reply(id));
    assert!(
        poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx)))
            .await
            .is_pending()
    );
    assert_eq!(client.inbox_len(), 2, "filled to its limit, no further");
    assert_eq!(
        client.endpoint().stats().unwrap().queued,
        8,
        "the rest stay queued"
    );
    let req = r.recv().unwrap();
    r.reply(&req, "a").unwrap();
    let m = timeout(LONG, wait).await.unwrap().unwrap();
    assert_eq!(&m.data[..], b"a");
    for i in 0..10u8 {
        assert_eq!(client.recv().await.unwrap().data[..], [i]);
    }
}

/// Two waits for one reply: the second is refused with `EALREADY`.
async fn one_wait_per_reply(bus: Bus) {
    let r = bus.open().unwrap();
    r.bind_replier("$.one").unwrap();
    let client = aep(&bus);
    let id = client.endpoint().request("$.one", "").unwrap();
    let mut first = Box::pin(client.wait_reply(id));
    assert!(
        poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx)))
            .await
            .is_pending()
    );
    assert_eq!(client.wait_reply(id).await.unwrap_err(), Errno::EALREADY);
    let req = r.recv().unwrap();
    r.reply(&req, "x").unwrap();
    assert_eq!(&timeout(LONG, first).await.unwrap().unwrap().data[..], b"x");
}

/// Counts its wake-ups.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Count {
    fn new() -> (Arc<Self>, std::task::Waker) {
        let c = Arc::new(Self(std::sync::atomic::AtomicUsize::new(0)));
        let w = std::task::Waker::from(c.clone());
        (c, w)
    }

    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A `recv` waiting when a dropped reply wait hands over its reply (which
/// that very `recv` had taken from the bus and routed to the wait): no bus
/// event comes for it, yet the `recv` is woken and returns it. In-process,
/// polled by hand, so the order of events is exact.
#[test]
fn a_waiting_recv_is_woken_by_a_handed_over_reply() {
    use std::task::Context;
    runtime(false).block_on(async {
        let bus = Bus::in_process();
        let r = bus.open().unwrap();
        r.bind_replier("$.hand").unwrap();
        let client = aep(&bus);
        let id = client.endpoint().request("$.hand", "q").unwrap();
        let (waits, wait_waker) = Count::new();
        let (recvs, recv_waker) = Count::new();
        let mut wait = Box::pin(client.wait_reply(id));
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&wait_waker))
                .is_pending()
        );
        let mut rx = Box::pin(client.recv());
        let mut poll_rx = || rx.as_mut().poll(&mut Context::from_waker(&recv_waker));
        assert!(poll_rx().is_pending());
        let req = r.recv_timeout(Some(LONG)).unwrap().unwrap();
        r.reply(&req, "handed").unwrap();
        // The recv runs first: it takes the reply and routes it to the wait.
        assert!(poll_rx().is_pending());
        assert!(waits.get() > 0, "the wait is told its reply came");
        let before = recvs.get();
        // The wait is dropped before it runs again: the reply goes to recv.
        drop(wait);
        assert!(recvs.get() > before, "the waiting recv is not woken");
        match poll_rx() {
            Poll::Ready(Ok(m)) => assert_eq!((&m.data[..], m.in_reply_to), (&b"handed"[..], id)),
            other => panic!("recv: {other:?}"),
        }
    });
}
