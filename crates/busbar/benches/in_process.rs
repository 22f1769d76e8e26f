//! In-process benchmarks, each beside a raw baseline measured in the same run.
//!
//! `cargo bench -p busbar --bench in_process` (set `BUSBAR_BENCH_SCALE=0.1`
//! for a quick run). Prints a Markdown table: throughput, p50/p99 per
//! operation, and the ratio to the baseline.
//!
//! 1. announce send + recv on one thread, vs `std::sync::mpsc` send + recv
//!    on one thread; the same traffic sent with a reused name and received
//!    with `try_recv_batch`; and sent with `send_batch` too;
//! 2. request/reply round trip between two threads (`Endpoint::call`), vs a
//!    two-channel ping-pong between two threads;
//! 3. announce send + recv with 100,000 unrelated bindings (half exact,
//!    half wildcards) vs with none.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use busbar::Bus;

/// Per-sample timings in nanoseconds (each sample is `batch` operations).
struct Samples {
    per_op_ns: Vec<f64>,
    ops: u64,
    elapsed: Duration,
}

impl Samples {
    fn new() -> Self {
        Self {
            per_op_ns: Vec::new(),
            ops: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, batch: u64, took: Duration) {
        self.per_op_ns.push(took.as_nanos() as f64 / batch as f64);
        self.ops += batch;
        self.elapsed += took;
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.per_op_ns.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i]
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

fn scale() -> f64 {
    std::env::var("BUSBAR_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn n(base: u64) -> u64 {
    ((base as f64 * scale()) as u64).max(10)
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn row(name: &str, s: &Samples, base: Option<&Samples>) {
    let ratio = base
        .map(|b| format!("{:.2}×", s.percentile(0.5) / b.percentile(0.5)))
        .unwrap_or_else(|| "baseline".into());
    println!(
        "| {name} | {:.2} M/s | {} | {} | {ratio} |",
        s.rate() / 1e6,
        fmt_ns(s.percentile(0.5)),
        fmt_ns(s.percentile(0.99)),
    );
}

const BATCH: u64 = 1000;

fn one_thread_channel(batches: u64) -> Samples {
    let (tx, rx) = mpsc::channel::<u64>();
    let mut s = Samples::new();
    for _ in 0..batches {
        let t = Instant::now();
        for i in 0..BATCH {
            tx.send(i).unwrap();
            black_box(rx.try_recv().unwrap());
        }
        s.record(BATCH, t.elapsed());
    }
    s
}

fn one_thread_bus(batches: u64, unrelated_bindings: u32) -> Samples {
    let bus = Bus::in_process();
    let other = bus.open().unwrap();
    for i in 0..unrelated_bindings {
        if i % 2 == 0 {
            other.bind(&format!("$.other.n{i}")).unwrap();
        } else {
            other.bind(&format!("$.other.n{i}.*")).unwrap();
        }
    }
    let ep = bus.open().unwrap();
    ep.bind("$.bench.sensor.temperature").unwrap();
    let data = busbar::Bytes::from_static(b"21.5C");
    let mut s = Samples::new();
    for _ in 0..batches {
        let t = Instant::now();
        announce_and_recv(&ep, &data);
        s.record(BATCH, t.elapsed());
    }
    s
}

/// One batch of the one-thread announce row: `BATCH` announces, each taken
/// at once. Not inlined, so a profiler (`valgrind --tool=callgrind
/// --toggle-collect=in_process::announce_and_recv`) can count just this.
#[inline(never)]
fn announce_and_recv(ep: &busbar::Endpoint, data: &busbar::Bytes) {
    for _ in 0..BATCH {
        ep.announce("$.bench.sensor.temperature", data.clone())
            .unwrap();
        black_box(ep.try_recv().unwrap().unwrap());
    }
}

/// An endpoint bound to the benchmark name with room for a whole batch, and
/// the announcement the batch rows send (the bus must outlive the endpoint).
fn batch_endpoint() -> (Bus, busbar::Endpoint, busbar::Outgoing) {
    let bus = Bus::in_process();
    let ep = bus.open().unwrap();
    ep.set_queue_limit(BATCH as u32).unwrap();
    ep.bind("$.bench.sensor.temperature").unwrap();
    let data = busbar::Bytes::from_static(b"21.5C");
    let out = busbar::Outgoing::announcement("$.bench.sensor.temperature", data);
    (bus, ep, out)
}

fn one_thread_bus_batched(batches: u64) -> Samples {
    let (_bus, ep, out) = batch_endpoint();
    let mut s = Samples::new();
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..BATCH / 100 {
            for _ in 0..100 {
                ep.send(out.clone()).unwrap();
            }
            black_box(ep.try_recv_batch(100).unwrap());
        }
        s.record(BATCH, t.elapsed());
    }
    s
}

fn one_thread_bus_both_batched(batches: u64) -> Samples {
    let (_bus, ep, out) = batch_endpoint();
    let mut s = Samples::new();
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..BATCH / 100 {
            black_box(ep.send_batch(vec![out.clone(); 100]).unwrap());
            black_box(ep.try_recv_batch(100).unwrap());
        }
        s.record(BATCH, t.elapsed());
    }
    s
}

fn ping_pong_channel(rounds: u64) -> Samples {
    let (to_tx, to_rx) = mpsc::channel::<u64>();
    let (back_tx, back_rx) = mpsc::channel::<u64>();
    let echo = thread::spawn(move || {
        while let Ok(v) = to_rx.recv() {
            back_tx.send(v).unwrap();
        }
    });
    let mut s = Samples::new();
    for i in 0..rounds {
        let t = Instant::now();
        to_tx.send(i).unwrap();
        black_box(back_rx.recv().unwrap());
        s.record(1, t.elapsed());
    }
    drop(to_tx);
    echo.join().unwrap();
    s
}

fn request_reply_bus(rounds: u64) -> Samples {
    let bus = Bus::in_process();
    let replier = bus.open().unwrap();
    replier.bind_replier("$.bench.echo").unwrap();
    let server = thread::spawn(move || {
        loop {
            let m = replier.recv().unwrap();
            if &m.data[..] == b"stop" {
                replier.reply(&m, "").unwrap();
                return;
            }
            replier.reply(&m, m.data.clone()).unwrap();
        }
    });
    let client = bus.open().unwrap();
    let data = busbar::Bytes::from_static(b"ping");
    let mut s = Samples::new();
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(client.call("$.bench.echo", data.clone(), None).unwrap());
        s.record(1, t.elapsed());
    }
    client.call("$.bench.echo", "stop", None).unwrap();
    server.join().unwrap();
    s
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args; be quick then.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let batches = n(2000);
    let rounds = n(50_000);
    println!("## in-process (BUSBAR_BENCH_SCALE={})\n", scale());
    println!("| benchmark | throughput | p50 / op | p99 / op | vs baseline (p50) |");
    println!("|---|---|---|---|---|");

    // Warm up caches and the allocator.
    one_thread_channel(batches / 10);
    one_thread_bus(batches / 10, 0);

    let ch = one_thread_channel(batches);
    let bus = one_thread_bus(batches, 0);
    row("channel send+recv, 1 thread (baseline)", &ch, None);
    row("bus announce send+recv, 1 thread", &bus, Some(&ch));
    let batched = one_thread_bus_batched(batches);
    row(
        "bus send ×100 (reused name) + recv_batch(100), 1 thread",
        &batched,
        Some(&ch),
    );
    let both = one_thread_bus_both_batched(batches);
    row(
        "bus send_batch(100) + recv_batch(100), 1 thread",
        &both,
        Some(&ch),
    );

    let many = one_thread_bus(batches, 100_000);
    let none = one_thread_bus(batches, 0);
    row("bus announce, 0 other bindings (baseline)", &none, None);
    row(
        "bus announce, 100,000 unrelated bindings",
        &many,
        Some(&none),
    );

    let pp = ping_pong_channel(rounds);
    let rr = request_reply_bus(rounds);
    row("channel ping-pong, 2 threads (baseline)", &pp, None);
    row("bus request/reply (call), 2 threads", &rr, Some(&pp));
    println!("\nthroughput for 2-thread rows is round trips/s; p50/p99 are per round trip.");
    println!("one-thread rows: p50/p99 are over batches of {BATCH} operations.");
}
