//! The async API's request/reply round trip beside the blocking API's, in
//! the same run, in-process and through a private daemon (in a thread of
//! this process).
//!
//! `cargo bench -p busbar --features tokio --bench async_call` (set
//! `BUSBAR_BENCH_SCALE=0.1` for a quick run). A blocking replier thread
//! answers; the caller alternates rounds of blocking `Endpoint::call` and
//! `AsyncEndpoint::call` on a current-thread tokio runtime, so both see the
//! same machine noise. Prints p50/p99 per round trip and the async/blocking
//! ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use busbar::{AsyncEndpoint, Bus, TokioReactor};
use busbar_daemon::{Daemon, DaemonConfig};

const ROUNDS: u32 = 20;

fn scale() -> f64 {
    std::env::var("BUSBAR_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A private daemon on a fresh socket; its directory is removed when the
/// returned guard drops (the daemon thread ends with the process).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn daemon_bus() -> (Bus, TempDir) {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "busbar-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .unwrap();
    let socket = dir.join("bus.sock");
    let d = Daemon::bind(DaemonConfig::new(socket.clone())).unwrap();
    thread::spawn(move || d.run().unwrap());
    (Bus::connect(&socket).unwrap(), TempDir(dir))
}

fn measure(label: &str, bus: &Bus, calls: u32) {
    let replier = bus.open().unwrap();
    replier.bind_replier("$.bench.echo").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let server = thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Ok(Some(req)) = replier.recv_timeout(Some(Duration::from_millis(50))) {
                let _ = replier.reply(&req, req.data.clone());
            }
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blocking = bus.open().unwrap();
    let asynchronous =
        rt.block_on(async { AsyncEndpoint::<TokioReactor>::new(bus.open().unwrap()).unwrap() });
    let (mut b, mut a) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..calls {
            let t = Instant::now();
            blocking.call("$.bench.echo", "ping", None).unwrap();
            b.push(t.elapsed().as_nanos() as f64 / 1e3);
        }
        rt.block_on(async {
            for _ in 0..calls {
                let t = Instant::now();
                asynchronous.call("$.bench.echo", "ping").await.unwrap();
                a.push(t.elapsed().as_nanos() as f64 / 1e3);
            }
        });
    }
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let (b50, b99) = (percentile(&mut b, 0.5), percentile(&mut b, 0.99));
    let (a50, a99) = (percentile(&mut a, 0.5), percentile(&mut a, 0.99));
    println!("| {label}, blocking `call` | {b50:.2} µs | {b99:.2} µs | baseline |");
    println!(
        "| {label}, async `call` (current-thread tokio) | {a50:.2} µs | {a99:.2} µs | {:.3}× |",
        a50 / b50
    );
}

fn main() {
    // `cargo test --benches` runs this with `--bench`; `cargo bench` too.
    let calls = ((2_000.0 * scale()) as u32).max(10);
    println!(
        "{} round trips per API per transport, in {ROUNDS} alternating rounds\n",
        calls * ROUNDS
    );
    println!("| round trip | p50 | p99 | p50 vs blocking |");
    println!("|---|---|---|---|");
    measure("in-process", &Bus::in_process(), calls);
    let (bus, _dir) = daemon_bus();
    measure("through the daemon", &bus, calls);
}
