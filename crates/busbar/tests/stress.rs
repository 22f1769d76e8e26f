//! Multi-threaded stress of the in-process bus: threads sending, calling,
//! receiving, binding, unbinding and closing at once. Checks that nothing
//! deadlocks (everything ends within a generous bound), that every call gets
//! exactly its own reply (real or synthetic), and that the bus ends clean.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use busbar::{Bus, Errno, Flags, Outgoing};

const CALLS_PER_REQUESTER: u64 = 1500;
const REQUESTERS: usize = 4;
/// A failure guard, not a synchronisation: the test normally ends in a second or two.
const BOUND: Duration = Duration::from_secs(120);

#[test]
fn threads_send_receive_bind_and_close_at_once() {
    let bus = Bus::in_process();
    let stop = Arc::new(AtomicBool::new(false));
    let real = Arc::new(AtomicU64::new(0));
    let synthetic = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();
    let mut handles = Vec::new();

    // Repliers: answer requests; now and then close and come back, so
    // requesters see GoneAway/Ignored, EADDRNOTAVAIL and real replies.
    for r in 0..2 {
        let (bus, stop, done) = (bus.clone(), stop.clone(), done_tx.clone());
        handles.push(thread::spawn(move || {
            let name = if r == 0 {
                "$.stress.svc.a"
            } else {
                "$.stress.svc.*"
            };
            let mut answered = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let ep = bus.open().unwrap();
                ep.bind_replier(name).unwrap();
                ep.bind("$.stress.news").unwrap();
                for _ in 0..200 {
                    match ep.recv_timeout(Some(Duration::from_millis(5))).unwrap() {
                        Some(m)
                            if m.wants_us_to_reply()
                            // Leave one in 50 unanswered: closing answers it `Ignored`.
                            && m.id.serial % 50 != 0 =>
                        {
                            ep.reply(&m, m.data.clone()).unwrap();
                            answered += 1;
                        }
                        _ => {}
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                ep.close().unwrap();
            }
            assert!(answered > 0);
            done.send("replier").unwrap();
        }));
    }

    // Requesters: call and check each reply is for that call.
    for t in 0..REQUESTERS {
        let (bus, real, synthetic, done) = (
            bus.clone(),
            real.clone(),
            synthetic.clone(),
            done_tx.clone(),
        );
        handles.push(thread::spawn(move || {
            let ep = bus.open().unwrap();
            let mut n = 0;
            while n < CALLS_PER_REQUESTER {
                let name = if n % 2 == 0 {
                    "$.stress.svc.a"
                } else {
                    "$.stress.svc.b.c"
                };
                let payload = format!("{t}:{n}");
                let id = match ep.request(name, payload.clone()) {
                    Ok(id) => id,
                    // Between a replier's close and its return there is no replier.
                    Err(Errno::EADDRNOTAVAIL | Errno::EBUSY) => {
                        thread::yield_now();
                        continue;
                    }
                    Err(e) => panic!("request failed: {e}"),
                };
                let reply = ep.wait_reply(id, Some(BOUND)).unwrap();
                assert_eq!(reply.in_reply_to, id);
                assert_eq!(reply.to, ep.id());
                if reply.is_synthetic() {
                    synthetic.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert_eq!(&reply.data[..], payload.as_bytes());
                    real.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            let s = ep.stats().unwrap();
            assert_eq!(s.outstanding_requests, 0);
            assert_eq!(s.queued, 0, "no stray replies");
            done.send("requester").unwrap();
        }));
    }

    // Announcers and churning listeners.
    {
        let (bus, stop, done) = (bus.clone(), stop.clone(), done_tx.clone());
        handles.push(thread::spawn(move || {
            let ep = bus.open().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let flags = if i.is_multiple_of(7) {
                    Flags::URGENT
                } else {
                    Flags::empty()
                };
                ep.send(
                    Outgoing::announcement("$.stress.news", i.to_le_bytes().to_vec())
                        .with_flags(flags),
                )
                .unwrap();
                i += 1;
                if i.is_multiple_of(64) {
                    thread::yield_now();
                }
            }
            done.send("announcer").unwrap();
        }));
    }
    {
        let (bus, stop, done) = (bus.clone(), stop.clone(), done_tx.clone());
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let ep = bus.open().unwrap();
                ep.set_queue_limit(3).unwrap();
                ep.bind("$.stress.*").unwrap();
                ep.bind("$.stress.news").unwrap();
                for _ in 0..20 {
                    let _ = ep.try_recv().unwrap();
                }
                ep.unbind("$.stress.*").unwrap();
                assert!(ep.stats().unwrap().queued <= 3);
                drop(ep);
            }
            done.send("listener").unwrap();
        }));
    }
    drop(done_tx);

    let start = Instant::now();
    let mut requesters_done = 0;
    while requesters_done < REQUESTERS {
        let left = BOUND.saturating_sub(start.elapsed());
        match done_rx.recv_timeout(left) {
            Ok("requester") => requesters_done += 1,
            Ok(other) => panic!("{other} thread ended early"),
            Err(_) => panic!("stress test did not finish in {BOUND:?}: deadlock?"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        let left = BOUND.saturating_sub(start.elapsed());
        done_rx
            .recv_timeout(left)
            .expect("background thread did not stop: deadlock?");
    }
    for h in handles {
        h.join().unwrap();
    }

    let total = real.load(Ordering::Relaxed) + synthetic.load(Ordering::Relaxed);
    assert_eq!(total, CALLS_PER_REQUESTER * REQUESTERS as u64);
    assert!(real.load(Ordering::Relaxed) > 0);
    let stats = bus.stats().unwrap();
    assert_eq!(stats.endpoints, 0, "every endpoint closed: {stats:?}");
    assert_eq!(stats.bindings, 0);
}

#[test]
fn blocked_receiver_does_not_stop_other_threads() {
    let bus = Bus::in_process();
    let waiter = bus.open().unwrap();
    waiter.bind("$.wake.up").unwrap();
    let t = thread::spawn(move || waiter.recv().unwrap());
    // While one thread is parked in recv, others use the bus freely.
    let other = bus.open().unwrap();
    other.bind("$.busy").unwrap();
    for _ in 0..1000 {
        other.announce("$.busy", "x").unwrap();
        other.try_recv().unwrap().unwrap();
    }
    other.announce("$.wake.up", "now").unwrap();
    let got = t.join().unwrap();
    assert_eq!(&got.data[..], b"now");
}
