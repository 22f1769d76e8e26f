//! Test support: a `busbar daemon` child process on a private socket, and
//! running the `busbar` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use busbar_wire::{FrameReader, GOODBYE, emit_hello, parse_welcome};

/// A generous bound for anything to happen on a slow, busy machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_busbar")
}

/// A fresh directory for one test's socket.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "busbar-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    // 0700 whatever the umask: the daemon refuses a socket directory others can write.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&d)
        .unwrap();
    d
}

/// A running daemon, killed (SIGKILL) on drop unless stopped.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts `busbar daemon` with `args` and waits until it listens (it
    /// logs "busbar daemon listening" after binding the socket).
    pub fn start(tag: &str, args: &[&str]) -> Self {
        let dir = temp_dir(tag);
        let socket = dir.join("bus.sock");
        Self::start_at(dir, socket, args)
    }

    pub fn start_at(dir: PathBuf, socket: PathBuf, args: &[&str]) -> Self {
        Self::start_logged(dir, socket, args, &[]).0
    }

    /// Starts `WRAPPER... busbar daemon --socket SOCKET ARGS...` (e.g.
    /// `prlimit --nofile=48:48`) and keeps its log lines.
    pub fn start_logged(
        dir: PathBuf,
        socket: PathBuf,
        args: &[&str],
        wrapper: &[&str],
    ) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(exe());
                c
            }
            None => Command::new(exe()),
        };
        let mut child = cmd
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("busbar daemon listening") => break,
                Some(Ok(_)) => continue,
                _ => panic!("daemon exited before listening: {:?}", child.wait()),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(l);
            }
        });
        (Self { child, socket, dir }, log)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `busbar ARGS --socket <this daemon>`.
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_socket(&self.socket, args)
    }

    pub fn bus(&self) -> busbar::Bus {
        busbar::Bus::connect(&self.socket).unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let s = self.child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::mem::forget(self);
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `busbar CMD --socket S REST...` with stdin closed (`args` = CMD, REST...).
fn busbar_command(socket: &Path, args: &[&str]) -> Command {
    let (cmd, rest) = args.split_first().unwrap();
    let mut c = Command::new(exe());
    c.arg(cmd)
        .arg("--socket")
        .arg(socket)
        .args(rest)
        .stdin(Stdio::null());
    c
}

pub fn run_with_socket(socket: &Path, args: &[&str]) -> Output {
    busbar_command(socket, args).output().unwrap()
}

/// Spawns `busbar ARGS --socket S` with piped stdout.
pub fn spawn(socket: &Path, args: &[&str]) -> Child {
    busbar_command(socket, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `kill -SIG pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Polls `cond` until it holds (failing after [`PATIENCE`]). For conditions
/// on another process's state that no event announces.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= PATIENCE {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open socket fds of a process (its connections, listener and wake-up pair).
pub fn socket_fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The daemon answers a call from a fresh client.
pub fn still_serves(d: &Daemon) {
    let bus = d.bus();
    let r = bus.open().unwrap();
    r.bind_replier("$.ping").unwrap();
    let c = bus.open().unwrap();
    let id = c.request("$.ping", "?").unwrap();
    let m = r.recv_timeout(Some(PATIENCE)).unwrap().unwrap();
    r.reply(&m, "pong").unwrap();
    assert_eq!(&c.wait_reply(id, Some(PATIENCE)).unwrap().data[..], b"pong");
}

/// Connects and says hello; returns the stream and a reader past the welcome.
pub fn greeted(d: &Daemon) -> (UnixStream, FrameReader) {
    greeted_at(&d.socket)
}

/// Connects to `socket` raw (no check of the daemon's uid) and says hello.
pub fn greeted_at(socket: &Path) -> (UnixStream, FrameReader) {
    let mut s = UnixStream::connect(socket).unwrap();
    let mut out = Vec::new();
    emit_hello(&mut out);
    s.write_all(&out).unwrap();
    let mut r = FrameReader::new(1 << 24);
    let f = next_frame(&mut s, &mut r).unwrap();
    parse_welcome(&f).unwrap();
    (s, r)
}

pub fn next_frame(s: &mut UnixStream, r: &mut FrameReader) -> Option<busbar_wire::Frame> {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    loop {
        if let Some(f) = r.next_frame().unwrap() {
            return Some(f);
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => r.buffer().extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads frames until the daemon closes; returns the Goodbye status if any.
pub fn goodbye_then_eof(s: &mut UnixStream, r: &mut FrameReader) -> Option<i32> {
    let mut status = None;
    while let Some(f) = next_frame(s, r) {
        if f.header.kind == GOODBYE {
            status = Some(f.header.status);
        }
    }
    status
}

/// Writes `text` as `busbar.toml` in `d`; returns its path.
pub fn config(d: &Path, text: &str) -> String {
    let p = d.join("busbar.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Sends one raw request, its `fds` on its first byte, and waits for its
/// response (skipping `Wake`s and other answers).
pub fn raw_call(
    s: &mut UnixStream,
    r: &mut FrameReader,
    seq: u32,
    ep: u32,
    req: busbar_kernel::Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<busbar_kernel::Response, busbar::Errno> {
    let mut out = Vec::new();
    busbar_wire::emit_request(&mut out, seq, 0, ep, &req, None, 0);
    busbar_sys::send_with_fds(&*s, &out[..1], fds).unwrap();
    s.write_all(&out[1..]).unwrap();
    loop {
        let f = next_frame(s, r).expect("a response");
        if f.header.kind & busbar_wire::RESPONSE != 0 && f.header.seq == seq {
            return busbar_wire::parse_response(&f).unwrap();
        }
    }
}

/// Opens an endpoint raw; its id.
pub fn raw_open(s: &mut UnixStream, r: &mut FrameReader) -> u32 {
    match raw_call(
        s,
        r,
        1,
        0,
        busbar_kernel::Request::Open(Default::default()),
        &[],
    ) {
        Ok(busbar_kernel::Response::Open(ep)) => ep.0,
        other => panic!("open: {other:?}"),
    }
}

/// Writes `n` waiting receives (no time limit) for `ep`, seqs from `first`;
/// reads nothing.
pub fn park_recvs(s: &mut UnixStream, ep: u32, first: u32, n: u32) {
    let mut out = Vec::new();
    for seq in first..first + n {
        busbar_wire::emit_request(
            &mut out,
            seq,
            0,
            ep,
            &busbar_kernel::Request::Recv(()),
            Some(busbar_wire::WAIT_FOREVER),
            0,
        );
    }
    s.write_all(&out).unwrap();
}

/// Waits until a `busbar monitor` started on `bus` is monitoring (it sets
/// its queue limit to 100,000 right after becoming a monitor).
pub fn wait_for_monitor(bus: &busbar::Bus) {
    wait_until("the monitor", || {
        bus.stats()
            .unwrap()
            .endpoint_stats
            .iter()
            .any(|e| e.queue_limit == 100_000)
    });
}
