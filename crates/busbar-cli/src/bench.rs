//! `busbar bench`: the daemon measured against raw Unix sockets, by the same
//! tool in the same run.
//!
//! 1. Request/reply: a replier process answers `call`s made through the
//!    daemon (a brokered call is four socket hops), beside a raw Unix-socket
//!    ping-pong between two processes (two hops). p50/p99 per round trip.
//! 2. One-way announcements: one sender process to one listener process
//!    through the daemon, sender batching with `send_batch`, listener with
//!    `try_recv_batch`; beside raw one-way throughput of frames of the same
//!    size over a Unix socket. Messages per second.
//!
//! Unless `--socket` names a running daemon, the bench starts its own
//! (`busbar daemon` on a private socket) and stops it at the end. Helper
//! processes are this same binary run with the hidden `--role` flag.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use busbar::{Bus, Errno, Outgoing};
use clap::Args;

/// The listener's queue limit in the throughput run.
const LISTENER_QUEUE: u32 = 1 << 16;

/// Options of `busbar bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Use the daemon at this socket instead of starting a private one.
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Round trips to time for request/reply [default: 20000, fewer for
    /// large sizes: about 2 GiB of data].
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
    /// Messages to send for the throughput runs [default: 1000000, or about
    /// 4 GiB of data for sizes from the memfd threshold (256 KiB) up].
    #[arg(long, value_name = "N")]
    pub(crate) messages: Option<u64>,
    /// Payload bytes per message (and per raw frame). From the memfd
    /// threshold (256 KiB) up, the throughput runs measure delivered data
    /// (GB/s) to one and to four listeners, every byte written and read.
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub(crate) size: usize,
    /// Messages per send_batch / recv_batch.
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run as a helper process.
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: the raw socket a helper uses.
    #[arg(long, hide = true)]
    pub(crate) raw: Option<PathBuf>,
}

pub(crate) fn err(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |e| format!("{what}: {} ({})", e.strerror(), e.name())
}

pub(crate) fn io_err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Percentiles {
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A child process killed when dropped.
pub(crate) struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn(args: &[&str]) -> Result<Helper, String> {
    let exe = std::env::current_exe().map_err(io_err("current_exe"))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(io_err("spawn helper"))?;
    Ok(Helper(child))
}

/// Waits for a helper to print its first line (it is ready) and returns it.
pub(crate) fn ready_line(h: &mut Helper) -> Result<String, String> {
    let out = h.0.stdout.as_mut().ok_or("helper has no stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(io_err("helper output"))?;
    if line.is_empty() {
        return Err("helper exited before it was ready".into());
    }
    Ok(line.trim().to_owned())
}

fn wait_for_socket(path: &Path) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if Bus::connect(path).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("daemon did not come up at {}", path.display()))
}

/// A directory removed (with what it holds) when this is dropped.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: BenchArgs) -> Result<std::process::ExitCode, String> {
    if let Some(role) = args.role.clone() {
        helper(&role, &args)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let dir = std::env::temp_dir().join(format!("busbar-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // 0700 whatever the umask: the daemon refuses a socket directory others can write.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .map_err(io_err("temp dir"))?;
    // Removed however the run ends (after the daemon, declared below, stops).
    let _dir = RemoveDir(dir.clone());
    let (socket, _daemon) = match &args.socket {
        Some(s) => (s.clone(), None),
        None => {
            let s = dir.join("bus.sock");
            let exe = std::env::current_exe().map_err(io_err("current_exe"))?;
            let d = Command::new(exe)
                .args(["daemon", "--socket"])
                .arg(&s)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(io_err("start daemon"))?;
            let d = Helper(d);
            wait_for_socket(&s)?;
            (s, Some(d))
        }
    };
    let sock = socket.to_string_lossy().into_owned();
    let payload = vec![b'x'; args.size];
    let large = args.size >= busbar::memfd_threshold();
    let rounds = args.rounds.unwrap_or(if large {
        ((2u64 << 30) / args.size as u64).clamp(100, 20_000)
    } else {
        20_000
    });
    let messages = args.messages.unwrap_or(if large {
        crate::bench_data::default_messages(args.size)
    } else {
        1_000_000
    });

    // 1a. raw ping-pong between two processes.
    let raw_path = dir.join("raw.sock");
    let raw_listener = UnixListener::bind(&raw_path).map_err(io_err("bind raw socket"))?;
    let raw_str = raw_path.to_string_lossy().into_owned();
    let mut echo = spawn(&[
        "bench",
        "--role",
        "raw-echo",
        "--raw",
        &raw_str,
        "--size",
        &args.size.to_string(),
    ])?;
    let (mut s, _) = raw_listener.accept().map_err(io_err("accept raw"))?;
    ready_line(&mut echo)?;
    let mut buf = vec![0u8; args.size.max(1)];
    let frame = vec![b'x'; args.size.max(1)];
    let mut raw_rtt = Vec::with_capacity(rounds as usize);
    for i in 0..rounds + rounds / 10 {
        let t = Instant::now();
        s.write_all(&frame).map_err(io_err("raw write"))?;
        s.read_exact(&mut buf).map_err(io_err("raw read"))?;
        if i >= rounds / 10 {
            raw_rtt.push(t.elapsed());
        }
    }
    drop(s);
    drop(echo);
    let raw = percentiles(raw_rtt);

    // 1b. request/reply through the daemon.
    let mut replier = spawn(&["bench", "--role", "replier", "--socket", &sock])?;
    ready_line(&mut replier)?;
    let bus = Bus::connect(&socket).map_err(err("connect"))?;
    let client = bus.open().map_err(err("open"))?;
    let mut bus_rtt = Vec::with_capacity(rounds as usize);
    for i in 0..rounds + rounds / 10 {
        let t = Instant::now();
        let r = client
            .call(
                "$.bench.echo",
                payload.clone(),
                Some(Duration::from_secs(30)),
            )
            .map_err(err("call"))?;
        if r.is_synthetic() {
            return Err(format!("replier answered {}", r.name));
        }
        if i >= rounds / 10 {
            bus_rtt.push(t.elapsed());
        }
    }
    drop(replier);
    let brokered = percentiles(bus_rtt);

    if large {
        let rates = crate::bench_data::run(&args, &socket, &raw_listener, &raw_path)?;
        print_data(&args, rounds, messages, &raw, &brokered, &rates);
        return Ok(std::process::ExitCode::SUCCESS);
    }

    // 2a. raw one-way throughput.
    let mut sink = spawn(&[
        "bench",
        "--role",
        "raw-sink",
        "--raw",
        &raw_str,
        "--size",
        &args.size.to_string(),
        "--messages",
        &messages.to_string(),
    ])?;
    let (mut s, _) = raw_listener.accept().map_err(io_err("accept raw"))?;
    ready_line(&mut sink)?;
    let chunk: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * args.batch as usize)
        .collect();
    let t = Instant::now();
    let mut left = messages;
    while left > 0 {
        let n = left.min(u64::from(args.batch));
        s.write_all(&chunk[..n as usize * frame.len()])
            .map_err(io_err("raw write"))?;
        left -= n;
    }
    let done = ready_line(&mut sink)?;
    let raw_secs = t.elapsed().as_secs_f64();
    if done != "done" {
        return Err(format!("raw sink said {done:?}"));
    }
    drop(sink);
    let raw_rate = messages as f64 / raw_secs;

    // 2b. announcements through the daemon.
    let mut listener = spawn(&[
        "bench",
        "--role",
        "listener",
        "--socket",
        &sock,
        "--messages",
        &messages.to_string(),
        "--batch",
        &args.batch.to_string(),
    ])?;
    ready_line(&mut listener)?;
    let sender = bus.open().map_err(err("open"))?;
    let out = Outgoing::announcement("$.bench.stream", payload.clone());
    let t = Instant::now();
    let mut sent = 0;
    let mut full = 0u64;
    while sent < messages {
        let n = (messages - sent).min(u64::from(args.batch));
        let batch = vec![out.clone(); n as usize];
        for r in sender.send_batch(batch).map_err(err("send_batch"))? {
            r.map_err(err("send"))?;
        }
        sent += n;
        // Flow control, so the run measures delivery and not loss: every
        // 32 batches, wait while the listener is more than half a queue behind.
        if (sent / n) % 32 == 0 {
            loop {
                let st = bus.stats().map_err(err("stats"))?;
                let q = st
                    .endpoint_stats
                    .iter()
                    .map(|e| e.queued)
                    .max()
                    .unwrap_or(0);
                if q <= LISTENER_QUEUE / 2 {
                    break;
                }
                full += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let done = ready_line(&mut listener)?;
    let bus_secs = t.elapsed().as_secs_f64();
    let lost: u64 = done
        .strip_prefix("done lost=")
        .and_then(|s| s.parse().ok())
        .ok_or(format!("listener said {done:?}"))?;
    let bus_rate = messages as f64 / bus_secs;

    let ratio = us(brokered.p50) / us(raw.p50);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "size": args.size,
                "rounds": rounds,
                "messages": messages,
                "batch": args.batch,
                "raw_pingpong_p50_us": us(raw.p50),
                "raw_pingpong_p99_us": us(raw.p99),
                "bus_request_reply_p50_us": us(brokered.p50),
                "bus_request_reply_p99_us": us(brokered.p99),
                "request_reply_ratio_p50": ratio,
                "raw_oneway_msgs_per_s": raw_rate,
                "bus_announce_msgs_per_s": bus_rate,
                "bus_announce_lost": lost,
                "sender_throttled": full,
            })
        );
    } else {
        println!(
            "## busbar bench: daemon vs raw Unix sockets ({} B payload)\n",
            args.size
        );
        println!("| benchmark | p50 | p99 | throughput | vs raw |");
        println!("|---|---|---|---|---|");
        println!(
            "| raw Unix-socket ping-pong, 2 processes (baseline) | {:.1} µs | {:.1} µs | {:.0} round trips/s | baseline |",
            us(raw.p50),
            us(raw.p99),
            1e6 / us(raw.p50)
        );
        println!(
            "| request/reply through the daemon (`call`), 2 processes + daemon | {:.1} µs | {:.1} µs | {:.0} round trips/s | {ratio:.2}× (p50) |",
            us(brokered.p50),
            us(brokered.p99),
            1e6 / us(brokered.p50)
        );
        println!(
            "| raw one-way Unix-socket frames (baseline) | | | {:.2} M msgs/s | baseline |",
            raw_rate / 1e6
        );
        println!(
            "| announcements through the daemon, 1 sender → 1 listener (batch {}) | | | {:.2} M msgs/s | {:.2}× |",
            args.batch,
            bus_rate / 1e6,
            raw_rate / bus_rate
        );
        println!(
            "\n{} round trips timed (after {} warm-up), {} messages streamed; listener lost {lost}.",
            rounds,
            rounds / 10,
            messages
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The report of a large-data run.
fn print_data(
    args: &BenchArgs,
    rounds: u64,
    messages: u64,
    raw: &Percentiles,
    brokered: &Percentiles,
    rates: &crate::bench_data::Rates,
) {
    let crate::bench_data::Rates {
        memcpy,
        fresh_memfd,
        stream,
        one,
        four,
    } = rates;
    let huge = crate::bench_data::shmem_huge_pages();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "size": args.size,
                "rounds": rounds,
                "messages": messages,
                "raw_pingpong_p50_us": us(raw.p50),
                "raw_pingpong_p99_us": us(raw.p99),
                "bus_request_reply_p50_us": us(brokered.p50),
                "bus_request_reply_p99_us": us(brokered.p99),
                "memcpy_gb_per_s": memcpy.gb_per_s(),
                "fresh_memfd_gb_per_s": fresh_memfd.gb_per_s(),
                "shmem_huge_pages": huge,
                "raw_stream_gb_per_s": stream.gb_per_s(),
                "bus_1_listener_gb_per_s": one.gb_per_s(),
                "bus_4_listeners_gb_per_s": four.gb_per_s(),
            })
        );
        return;
    }
    println!(
        "## busbar bench: large data through the daemon ({} B per message)\n",
        args.size
    );
    println!("| benchmark | p50 | p99 | throughput | vs raw stream |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw Unix-socket ping-pong of the data, 2 processes | {:.1} µs | {:.1} µs | | |",
        us(raw.p50),
        us(raw.p99)
    );
    println!(
        "| request/reply through the daemon (`call`) | {:.1} µs | {:.1} µs | | |",
        us(brokered.p50),
        us(brokered.p99)
    );
    let row = |name: &str, r: &crate::bench_data::Rate| {
        println!(
            "| {name} | | | {:.2} GB/s | {:.2}× |",
            r.gb_per_s(),
            r.gb_per_s() / stream.gb_per_s()
        );
    };
    row("memcpy of the same bytes, one thread (baseline)", memcpy);
    row(
        "fresh sealed memfds written whole, one thread, no bus (baseline)",
        fresh_memfd,
    );
    row(
        "raw Unix-socket stream, 2 processes, written and read whole (baseline)",
        stream,
    );
    row(
        "through the daemon, 1 sender → 1 listener (sealed memfds)",
        one,
    );
    row(
        "through the daemon, 1 sender → 4 listeners (bytes delivered)",
        four,
    );
    println!(
        "\n{rounds} round trips timed; {messages} messages of {} bytes per run, every byte \
         written by the sender and read (checksummed) by every receiver; none lost.\n\
         Shared-memory huge pages: {huge} (from 2 MiB a payload buffer asks for them; \
         with `never` every 4 KiB page of a fresh memfd is allocated and zeroed on its own).",
        args.size
    );
}

/// The helper processes.
fn helper(role: &str, args: &BenchArgs) -> Result<(), String> {
    let say = |s: &str| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    };
    if let Some(r) = crate::bench_data::helper(role, args, &say) {
        return r;
    }
    let messages = args.messages.unwrap_or(0);
    match role {
        "raw-echo" => {
            let mut s = UnixStream::connect(args.raw.as_ref().ok_or("--raw")?)
                .map_err(io_err("connect raw"))?;
            say("ready");
            let mut buf = vec![0u8; args.size.max(1)];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
            Ok(())
        }
        "raw-sink" => {
            let mut s = UnixStream::connect(args.raw.as_ref().ok_or("--raw")?)
                .map_err(io_err("connect raw"))?;
            say("ready");
            let total = messages * args.size.max(1) as u64;
            let mut got = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            while got < total {
                let n = s.read(&mut buf).map_err(io_err("raw read"))?;
                if n == 0 {
                    return Err("raw stream ended early".into());
                }
                got += n as u64;
            }
            say("done");
            Ok(())
        }
        "replier" => {
            let bus =
                Bus::connect(args.socket.as_ref().ok_or("--socket")?).map_err(err("connect"))?;
            let ep = bus.open().map_err(err("open"))?;
            ep.bind_replier("$.bench.echo").map_err(err("bind"))?;
            say("ready");
            ep.serve(None, |m| m.data.clone()).map_err(err("serve"))?;
            Ok(())
        }
        "listener" => {
            let bus =
                Bus::connect(args.socket.as_ref().ok_or("--socket")?).map_err(err("connect"))?;
            let ep = bus.open().map_err(err("open"))?;
            ep.set_queue_limit(LISTENER_QUEUE).map_err(err("limit"))?;
            ep.bind("$.bench.stream").map_err(err("bind"))?;
            say("ready");
            let mut got = 0u64;
            let mut lost = 0u64;
            while got + lost < messages {
                let batch = ep.try_recv_batch(args.batch).map_err(err("recv"))?;
                if batch.is_empty() {
                    match ep
                        .recv_timeout(Some(Duration::from_secs(30)))
                        .map_err(err("recv"))?
                    {
                        Some(m) => {
                            got += 1;
                            lost += u64::from(m.lost);
                        }
                        None => return Err("listener starved for 30 s".into()),
                    }
                    continue;
                }
                for m in &batch {
                    lost += u64::from(m.lost);
                }
                got += batch.len() as u64;
            }
            say(&format!("done lost={lost}"));
            Ok(())
        }
        other => Err(format!("unknown bench role {other:?}")),
    }
}
