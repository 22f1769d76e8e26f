//! What a bridge adds to Zenoh, measured in one run on one machine:
//!
//! - request/reply round trip: a busbar `call` from a requester on daemon A
//!   to a replier on daemon B through two bridges, beside a raw Zenoh
//!   `get` to a queryable in another process, and a `call` on one daemon;
//! - announcement throughput, 64-byte messages, A → B through the bridges
//!   (every message received), beside raw Zenoh `put` to a subscriber in
//!   another process (congestion control `Block`, every message counted).
//!
//! Run: `cargo bench --manifest-path bridges/zenoh/Cargo.toml`. Both links
//! are Zenoh over a unix socket, in peer mode. Daemons run in this process,
//! bridges and the raw Zenoh peer in their own.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use busbar::{Bus, Outgoing};
use support::*;
use zenoh::Wait;
use zenoh::qos::CongestionControl;

const ROUNDS: usize = 5_000;
const WARMUP: usize = 500;
const MESSAGES: u32 = 51_200;
const SIZE: usize = 64;

fn main() {
    if let Ok(endpoint) = std::env::var("BBZ_RAW_PEER") {
        raw_peer(&endpoint);
        return;
    }
    let dir = Dir::new();
    println!("busbar-zenoh bench: {ROUNDS} round trips, {MESSAGES} announcements of {SIZE} B");
    let raw = raw_zenoh(&dir);
    let bridged = bridged(&dir);
    println!();
    println!("| measure | raw Zenoh | through the bridges | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| round trip p50 | {:.1} µs | {:.1} µs | {:.2}× |",
        raw.rtt.0,
        bridged.rtt.0,
        bridged.rtt.0 / raw.rtt.0
    );
    println!(
        "| round trip p99 | {:.1} µs | {:.1} µs | {:.2}× |",
        raw.rtt.1,
        bridged.rtt.1,
        bridged.rtt.1 / raw.rtt.1
    );
    println!(
        "| announcements, 64 B | {:.0} msg/s | {:.0} msg/s | {:.2}× |",
        raw.rate,
        bridged.rate,
        bridged.rate / raw.rate
    );
    println!(
        "| one daemon, no bridge (reference) | | call p50 {:.1} µs, p99 {:.1} µs; {:.0} msg/s | |",
        bridged.local.0, bridged.local.1, bridged.local_rate
    );
}

struct Figures {
    rtt: (f64, f64),
    rate: f64,
    local: (f64, f64),
    local_rate: f64,
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn time_rounds(mut round: impl FnMut()) -> (f64, f64) {
    for _ in 0..WARMUP {
        round();
    }
    let mut v = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        round();
        v.push(t.elapsed());
    }
    percentiles(v)
}

fn session(connect: &str) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    c.insert_json5("connect/endpoints", &format!("[{connect:?}]"))
        .unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    zenoh::open(c).wait().unwrap()
}

/// The other process of the raw baseline: a queryable that echoes and a
/// subscriber that says `bench/done` after [`MESSAGES`] samples.
fn raw_peer(endpoint: &str) {
    let mut c = zenoh::Config::default();
    c.insert_json5("listen/endpoints", &format!("[{endpoint:?}]"))
        .unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let s = zenoh::open(c).wait().unwrap();
    let _q = s
        .declare_queryable("bench/q")
        .callback(|q| {
            let data = q
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            q.reply(q.key_expr().clone(), data).wait().unwrap();
        })
        .wait()
        .unwrap();
    let sd = s.clone();
    let mut n = 0u32;
    let _sub = s
        .declare_subscriber("bench/p")
        .callback_mut(move |_| {
            n += 1;
            if n == MESSAGES {
                sd.put("bench/done", "").wait().unwrap();
                n = 0;
            }
        })
        .wait()
        .unwrap();
    println!("ready");
    // Until the bench kills it.
    loop {
        std::thread::park();
    }
}

fn raw_zenoh(dir: &Dir) -> Figures {
    let endpoint = zsock(dir, "raw.sock");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BBZ_RAW_PEER", &endpoint)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let s = session(&endpoint);
    let done = s.declare_subscriber("bench/done").wait().unwrap();
    // Wait until the queryable answers (the link comes up asynchronously).
    let end = Instant::now() + PATIENCE;
    loop {
        let r = s.get("bench/q").payload(vec![0u8; SIZE]).wait().unwrap();
        if r.recv().is_ok_and(|r| r.result().is_ok()) {
            break;
        }
        assert!(Instant::now() < end, "the raw peer never answered");
    }
    let rtt = time_rounds(|| {
        let r = s.get("bench/q").payload(vec![0u8; SIZE]).wait().unwrap();
        let reply = r.recv().unwrap();
        assert_eq!(reply.result().unwrap().payload().len(), SIZE);
    });
    let publisher = s
        .declare_publisher("bench/p")
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    while !publisher.matching_status().wait().unwrap().matching() {
        assert!(
            Instant::now() < end,
            "the raw peer's subscriber never showed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    for _ in 0..MESSAGES {
        publisher.put(vec![1u8; SIZE]).wait().unwrap();
    }
    done.recv().unwrap();
    let rate = f64::from(MESSAGES) / t.elapsed().as_secs_f64();
    println!(
        "raw Zenoh: get/queryable p50 {:.1} µs p99 {:.1} µs; put/subscribe {rate:.0} msg/s",
        rtt.0, rtt.1
    );
    let _ = child.kill();
    let _ = child.wait();
    Figures {
        rtt,
        rate,
        local: (0.0, 0.0),
        local_rate: 0.0,
    }
}

fn bridged(dir: &Dir) -> Figures {
    let a = TestDaemon::start(dir, "a");
    let b = TestDaemon::start(dir, "b");
    let z = zsock(dir, "z.sock");
    let ba = TestBridge::start(dir, &a, 1, &["--listen", &z, "--namespace", "bench"]);
    ba.wait_log("bridging bus");
    let bb = TestBridge::start(dir, &b, 2, &["--connect", &z, "--namespace", "bench"]);
    bb.wait_log("bridging bus");
    let (bus_a, bus_b): (Bus, Bus) = (a.bus(), b.bus());

    // Repliers on B (through the bridges) and on A (the local reference).
    let serve = |bus: &Bus, name: &str| {
        let r = bus.open().unwrap();
        r.bind_replier(name).unwrap();
        std::thread::spawn(move || {
            let mut pending = r.recv().unwrap();
            loop {
                match r.reply_then_recv(&pending, pending.data.clone(), None) {
                    Ok((_, Some(m))) => pending = m,
                    _ => return,
                }
            }
        })
    };
    let _remote = serve(&bus_b, "$.bench.rtt");
    let _local = serve(&bus_a, "$.bench.local");
    until_served(&bus_a, "$.bench.rtt");
    let q = bus_a.open().unwrap();
    let data = vec![0u8; SIZE];
    let rtt = time_rounds(|| {
        let r = q.call("$.bench.rtt", data.clone(), Some(PATIENCE)).unwrap();
        assert_eq!(r.data.len(), SIZE);
    });
    let local = time_rounds(|| {
        let r = q
            .call("$.bench.local", data.clone(), Some(PATIENCE))
            .unwrap();
        assert_eq!(r.data.len(), SIZE);
    });

    let rate = flood(&bus_a, &bus_b, "$.bench.flood");
    let local_rate = flood(&bus_a, &bus_a, "$.bench.here");
    println!(
        "through the bridges: call p50 {:.1} µs p99 {:.1} µs; announcements {rate:.0} msg/s",
        rtt.0, rtt.1
    );
    println!(
        "on one daemon (same run): call p50 {:.1} µs p99 {:.1} µs; announcements {local_rate:.0} msg/s",
        local.0, local.1
    );
    drop((ba, bb));
    Figures {
        rtt,
        rate,
        local,
        local_rate,
    }
}

/// Announcements per second from a sender on `from` to a listener on `to`
/// (batches of 64; every message received).
fn flood(from: &Bus, to: &Bus, name: &'static str) -> f64 {
    let l = to.open().unwrap();
    l.set_queue_limit(65_536).unwrap();
    l.bind(name).unwrap();
    let s = from.open().unwrap();
    until_crossing(&s, &l, name);
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        for _ in 0..MESSAGES / 64 {
            let batch = (0..64)
                .map(|_| Outgoing::announcement(name, vec![1u8; SIZE]))
                .collect();
            for r in s.send_batch(batch).unwrap() {
                r.unwrap();
            }
        }
    });
    let mut n = 0u32;
    while n < MESSAGES {
        let batch = l.recv_batch_timeout(256, Some(PATIENCE)).unwrap();
        assert!(!batch.is_empty(), "announcements stopped arriving");
        n += batch.len() as u32;
    }
    let rate = f64::from(MESSAGES) / t.elapsed().as_secs_f64();
    sender.join().unwrap();
    rate
}
