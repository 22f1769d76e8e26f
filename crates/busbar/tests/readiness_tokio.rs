//! `Endpoint::readiness_fd` driven by tokio's `AsyncFd` (edge-triggered
//! epoll), on both transports: a listener task receives 1,000 announcements
//! sent meanwhile from another thread. A missed wake-up leaves the task
//! waiting for an edge that never comes, which the overall timeout turns
//! into a failure.

use std::os::fd::OwnedFd;
use std::time::Duration;

use busbar::{Bus, Endpoint, Flags, Outgoing};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

mod support;

use support::daemon_bus;

const MESSAGES: u32 = 1_000;

/// Far longer than receiving 1,000 messages takes on a working bus.
const OVERALL: Duration = Duration::from_secs(60);

/// The endpoint's readiness fd registered with tokio (edge-triggered), read
/// interest only.
///
/// tokio 1.53.3 deprecated the safe constructors (tokio PR 8587) for
/// `unsafe` ones, whose condition is that the fd stays open for the
/// `AsyncFd`'s life; this workspace allows no `unsafe` outside busbar-sys.
/// Handing tokio an `OwnedFd` (a duplicate of the readiness fd, same open
/// file) meets that condition through ownership, so the deprecated safe
/// constructor is sound here.
#[allow(deprecated)]
fn async_fd(e: &Endpoint) -> AsyncFd<OwnedFd> {
    let fd = e.readiness_fd().unwrap().try_clone_to_owned().unwrap();
    AsyncFd::with_interest(fd, Interest::READABLE).unwrap()
}

/// Receives `MESSAGES` announcements sent meanwhile from another thread
/// through `AsyncFd`: wait for the fd, take with `try_recv` until empty, and
/// only then clear the readiness (tokio's contract for edge-triggered fds).
async fn announcements_through_async_fd(bus: Bus) {
    let l = bus.open().unwrap();
    l.set_queue_limit(4).unwrap();
    l.bind("$.a").unwrap();
    let s = bus.open().unwrap();
    // A small queue and ALL_OR_WAIT keep sender and receiver in step: the
    // queue goes from empty to not empty hundreds of times.
    let sender = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let out = Outgoing::announcement("$.a", i.to_le_bytes().to_vec())
                .with_flags(Flags::ALL_OR_WAIT);
            s.send_wait(out, Some(OVERALL))
                .map_err(|e| format!("send {i}: {e}"))?;
        }
        Ok::<(), String>(())
    });
    let fd = async_fd(&l);
    let mut got = 0;
    let all = tokio::time::timeout(OVERALL, async {
        while got < MESSAGES {
            let mut ready = fd.readable().await.unwrap();
            while let Some(m) = l.try_recv().unwrap() {
                let n = u32::from_le_bytes(m.data[..4].try_into().unwrap());
                assert_eq!((n, m.lost), (got, 0), "in order, none lost");
                got += 1;
            }
            ready.clear_ready();
        }
    })
    .await;
    // Before joining: a hung receiver leaves the sender waiting for room.
    assert!(
        all.is_ok(),
        "the AsyncFd loop hung after {got} of {MESSAGES} messages (stats: {:?})",
        l.stats()
    );
    sender.join().unwrap().unwrap();
    assert!(l.try_recv().unwrap().is_none());
}

#[tokio::test]
async fn in_process() {
    announcements_through_async_fd(Bus::in_process()).await;
}

#[tokio::test]
async fn daemon() {
    announcements_through_async_fd(daemon_bus()).await;
}
