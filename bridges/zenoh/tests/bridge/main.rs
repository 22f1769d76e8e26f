//! Buses on one machine joined by real `busbar-zenoh` processes over Zenoh
//! (unix sockets), each daemon on its own socket: announcements, requests,
//! the reply guarantee when a replier, a bridge or a deadline fails, larger
//! topologies, and bad input.

#[path = "../support/mod.rs"]
mod support;

mod announcements;
mod input;
mod requests;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use busbar::{
    Bytes, Endpoint, EndpointId, Flags, Message, MessageId, OrigFrom, Outgoing, synthetic,
};
use busbar_zenoh::envelope::{Envelope, Kind};
use support::*;

/// Helper processes (this binary run again; see `support::Helper`).
#[test]
fn helper() {
    let Ok(role) = std::env::var("BBZ_HELPER") else {
        return;
    };
    let bus = Bus::connect(std::env::var("BBZ_SOCKET").unwrap()).unwrap();
    let arg = std::env::var("BBZ_ARG").unwrap();
    match role.as_str() {
        // Binds a replier, reads ARG requests without answering, then
        // waits to be killed.
        "hold" => {
            let (name, n) = arg.split_once(' ').unwrap();
            let r = bus.open().unwrap();
            r.bind_replier(name).unwrap();
            println!("bound");
            for i in 0..n.parse::<u32>().unwrap() {
                let m = r.recv().unwrap();
                assert!(m.wants_us_to_reply());
                println!("holding {i}");
            }
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown helper {other}"),
    }
}
use busbar::Bus;

/// Two daemons and two bridges joined over a unix socket.
struct Pair {
    a: TestDaemon,
    b: TestDaemon,
    ba: TestBridge,
    bb: TestBridge,
    dir: Dir,
}

fn pair(extra_a: &[&str], extra_b: &[&str]) -> Pair {
    let dir = Dir::new();
    let a = TestDaemon::start(&dir, "a");
    let b = TestDaemon::start(&dir, "b");
    let z = zsock(&dir, "z.sock");
    let mut args_a = vec!["--listen", z.as_str(), "--namespace", "t"];
    args_a.extend_from_slice(extra_a);
    let ba = TestBridge::start(&dir, &a, 1, &args_a);
    // Connect only once the listener is up.
    ba.wait_log("bridging bus");
    let mut args_b = vec!["--connect", z.as_str(), "--namespace", "t"];
    args_b.extend_from_slice(extra_b);
    let bb = TestBridge::start(&dir, &b, 2, &args_b);
    bb.wait_log("bridging bus");
    Pair { a, b, ba, bb, dir }
}

/// The next `n` messages named `name` (earlier probes may still come in
/// first: a sender's messages arrive in its order).
fn announcements(ep: &Endpoint, name: &str, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = next(ep);
        if &*m.name == name {
            got.push(m);
        }
    }
    got
}
