//! The daemon against hostile and careless clients: one case per way a
//! client could make it hold something, work for a long time, or act for
//! everyone (see docs/security.md). Each case attacks a real `busbar
//! daemon` at a size that showed the effect before the limits existed, and
//! checks the secure outcome: the offender gets the error (or is cut off),
//! the daemon's memory stays bounded (RSS growth measured from
//! /proc/PID/status), and another client is still answered promptly.
//!
//! Cases needing another user are in `other_users.rs`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busbar::{Errno, Outgoing};
use busbar_kernel::{BindArgs, Credentials, OpCode, Request, Response, SendArgs};
use busbar_wire::{FrameReader, emit_request, parse_response};
use common::*;

/// The slowest a probe call may be answered while an attack runs: far
/// below the freezes these attacks caused (3 to 15 s), with room for a
/// busy 2-core machine.
const PROBE_LIMIT: Duration = Duration::from_millis(200);

/// The longest one attack step (a close, a disconnect) may hold the loop,
/// measured from the step to the answer of a call sent right after it
/// (the freezes it replaces took 3 to 15 s).
const SINGLE_EVENT_LIMIT: Duration = Duration::from_secs(1);

/// A replier and a caller on their own connections, for measuring how
/// quickly the daemon serves an innocent client.
struct Probe {
    _bus: busbar::Bus,
    replier: std::thread::JoinHandle<()>,
    caller: busbar::Endpoint,
    stop: busbar::Endpoint,
}

impl Probe {
    fn new(d: &Daemon) -> Self {
        let bus = d.bus();
        let r = bus.open().unwrap();
        r.bind_replier("$.probe").unwrap();
        let replier = std::thread::spawn(move || {
            while let Ok(Some(m)) = r.recv_timeout(Some(PATIENCE)) {
                if &m.data[..] == b"stop" {
                    return;
                }
                let _ = r.reply(&m, "pong");
            }
        });
        let caller = d.bus().open().unwrap();
        let stop = d.bus().open().unwrap();
        Self {
            _bus: bus,
            replier,
            caller,
            stop,
        }
    }

    /// The fastest of three calls: a loop frozen by an attack delays all
    /// of them; one unlucky scheduling delay does not fail the case.
    fn best_of_three(&self) -> Duration {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let m = self.caller.call("$.probe", "ping", Some(PATIENCE)).unwrap();
                assert_eq!(&m.data[..], b"pong");
                t.elapsed()
            })
            .min()
            .unwrap()
    }

    /// How long after `since` (an attack's last step) one call is
    /// answered: catches a freeze that a single event (a close, a
    /// disconnect) causes, which later calls would not see.
    #[track_caller]
    fn assert_answered_soon_after(&self, since: Instant, when: &str) {
        let m = self.caller.call("$.probe", "ping", Some(PATIENCE)).unwrap();
        assert_eq!(&m.data[..], b"pong");
        let t = since.elapsed();
        assert!(
            t < SINGLE_EVENT_LIMIT,
            "{when}: the first call was answered after {t:?}"
        );
    }

    #[track_caller]
    fn assert_prompt(&self, when: &str) {
        let t = self.best_of_three();
        assert!(t < PROBE_LIMIT, "{when}: a probe call took {t:?}");
    }

    fn finish(self) {
        let _ = self.stop.request("$.probe", "stop");
        self.replier.join().unwrap();
    }
}

/// A daemon with a config file, its log kept for inspection.
fn daemon_with(tag: &str, cfg: &str, wrapper: &[&str]) -> (Daemon, Arc<Mutex<Vec<String>>>) {
    let dir = temp_dir(tag);
    let socket = dir.join("bus.sock");
    let cfg = config(&dir, cfg);
    Daemon::start_logged(dir, socket, &["--config", &cfg], wrapper)
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

// ---------------------------------------------------------------- finding 1

/// Out of fds: the daemon stops accepting for a back-off instead of
/// spinning on a listener that stays readable, logs it once, refuses a
/// waiting client cleanly, and accepts again once fds are free.
#[test]
fn out_of_fds_pauses_accepting_instead_of_spinning() {
    let (d, log) = daemon_with("emfile", "", &["prlimit", "--nofile=48:48"]);
    let probe = Probe::new(&d);
    // One client parks fds ahead of a frame until the daemon's table is full.
    let (s, _r) = greeted(&d);
    let files: Vec<std::fs::File> = (0..60)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let fds: Vec<std::os::fd::BorrowedFd<'_>> =
        files.iter().map(std::os::fd::AsFd::as_fd).collect();
    busbar_sys::send_with_fds(&s, &[0u8], &fds).unwrap();
    wait_until("the daemon's fd table to fill", || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .count()
            >= 46
    });
    // Clients keep knocking: each gets an answer or a timeout, never a hang.
    let before = cpu_ticks(d.pid());
    let t = Instant::now();
    let knockers: Vec<_> = (0..3).map(|_| spawn(&d.socket, &["stats"])).collect();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(d.pid()) - before;
    for k in knockers {
        let o = k.wait_with_output().unwrap();
        assert!(
            !o.status.success(),
            "a client was served with no fd to spare"
        );
        assert!(
            stderr(&o).contains("EMFILE") || stderr(&o).contains("ETIMEDOUT"),
            "the refused client must hear why: {}\nlog: {:?}",
            stderr(&o),
            log.lock().unwrap()
        );
    }
    assert!(t.elapsed() < PATIENCE);
    // 100 ticks a second: a spinning loop burns ~100 in that second.
    assert!(
        used < 30,
        "the daemon used {used} CPU ticks in 1 s while out of fds"
    );
    let accept_lines = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        accept_lines <= 3,
        "{accept_lines} log lines about accept failing"
    );
    drop(s);
    drop(files);
    still_serves(&d);
    probe.assert_prompt("after the fds came back");
    probe.finish();
}

/// Fds sent ahead of the frames that claim them are bounded per user, all
/// connections together: the connection that passes the bound is cut off.
#[test]
fn unclaimed_fds_are_bounded_per_user() {
    let (d, _log) = daemon_with("fds-uid", "max_fds_per_uid = 1500\n", &[]);
    let files: Vec<std::fs::File> = (0..700)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let fds: Vec<std::os::fd::BorrowedFd<'_>> =
        files.iter().map(std::os::fd::AsFd::as_fd).collect();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let (s, r) = greeted(&d);
        let mut sent = 0;
        while sent < fds.len() {
            // The daemon may cut the third connection off mid-way.
            match busbar_sys::send_with_fds(&s, &[0u8], &fds[sent..]) {
                Ok((_, n)) => sent += n,
                Err(_) => break,
            }
        }
        conns.push((s, r));
    }
    let (mut s, mut r) = conns.pop().unwrap();
    assert_eq!(
        goodbye_then_eof(&mut s, &mut r),
        Some(Errno::ENOBUFS.number())
    );
    still_serves(&d);
}

// ---------------------------------------------------------------- finding 3

/// A declared frame length reserves nothing: memory is taken as bytes
/// arrive. And partial frames are bounded per user.
#[test]
fn partial_frames_reserve_nothing_and_are_bounded_per_user() {
    let (d, _log) = daemon_with("partial", "max_partial_bytes_per_uid = 16777216\n", &[]);
    still_serves(&d);
    let before = rss_kib(d.pid());
    let mut header = Vec::new();
    header.extend_from_slice(&(60u32 << 20).to_le_bytes());
    header.extend_from_slice(&(OpCode::Send as u16).to_le_bytes());
    header.extend_from_slice(&[0; 10]);
    let mut idle = Vec::new();
    for _ in 0..24 {
        let (mut s, r) = greeted(&d);
        s.write_all(&header).unwrap();
        idle.push((s, r));
    }
    still_serves(&d);
    let after = rss_kib(d.pid());
    assert!(
        after < before + 16 * 1024,
        "24 declared 60 MiB frames grew the daemon from {before} to {after} KiB"
    );
    // Now bodies: 6 MiB of each of three frames; the third passes 16 MiB.
    let body = vec![0u8; 6 << 20];
    let mut cut = None;
    for (i, (s, r)) in idle.iter_mut().take(3).enumerate() {
        if s.write_all(&body).is_err() {
            cut = Some(i);
            break;
        }
        if i == 2 {
            cut = goodbye_then_eof(s, r).map(|st| {
                assert_eq!(st, Errno::ENOBUFS.number());
                i
            });
        }
    }
    assert_eq!(
        cut,
        Some(2),
        "the connection passing the per-user bound is cut off"
    );
    let probe = Probe::new(&d);
    probe.assert_prompt("with partial frames held");
    probe.finish();
}

/// Waits parked (`FLAG_WAIT`) are bounded per connection, and a parked wait
/// costs nothing to operations that do not wake it.
#[test]
fn parked_waits_are_bounded_and_cost_nothing() {
    let d = Daemon::start("parked", &[]);
    let probe = Probe::new(&d);
    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let (mut s, mut r) = greeted(&d);
        let ep = raw_open(&mut s, &mut r);
        park_recvs(&mut s, ep, 10, 1100);
        for _ in 0..76 {
            let f = next_frame(&mut s, &mut r).unwrap();
            assert_eq!(parse_response(&f).unwrap(), Err(Errno::EMFILE));
            refused += 1;
        }
        conns.push((s, r));
    }
    assert_eq!(refused, 20 * 76);
    // 20,480 waits parked: a call elsewhere is as quick as ever.
    probe.assert_prompt("with 20,480 parked waits");
    drop(conns);
    probe.assert_prompt("after the parked connections left");
    probe.finish();
}

/// A client that parks waits and stops reading is not given more output
/// than the output limit: the rest stays queued, under the quota.
#[test]
fn parked_answers_respect_the_output_limit() {
    let (d, _log) = daemon_with("parked-out", "quota_bytes = 33554432\n", &[]);
    still_serves(&d);
    let before = rss_kib(d.pid());
    let (mut s, mut r) = greeted(&d);
    let ep = raw_open(&mut s, &mut r);
    raw_call(&mut s, &mut r, 2, ep, Request::SetQueueLimit(1000), &[]).unwrap();
    raw_call(
        &mut s,
        &mut r,
        3,
        ep,
        Request::Bind(BindArgs {
            name: "$.big".into(),
            replier: false,
        }),
        &[],
    )
    .unwrap();
    park_recvs(&mut s, ep, 10, 200);
    // Another user of the bus floods it with 1 MiB messages, inline (as
    // memfds the answers would be small frames that the socket takes, the
    // data staying in the sender's memfds, and nothing piles up here).
    busbar::set_memfd_threshold(usize::MAX);
    let sender = d.bus().open().unwrap();
    let mut refused = 0;
    for _ in 0..200 {
        match sender.announce("$.big", vec![7u8; 1 << 20]) {
            Ok(_) => {}
            Err(Errno::EDQUOT) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 100, "the quota held only {refused} of 200 back");
    still_serves(&d);
    let after = rss_kib(d.pid());
    assert!(
        after < before + 96 * 1024,
        "the daemon grew from {before} to {after} KiB for a client that does not read"
    );
}

/// Pending `ALL_OR_WAIT` payloads are charged to their sender: one user's
/// pending sends hold at most its quota's bytes.
#[test]
fn pending_payloads_are_charged_to_the_sender() {
    let (d, _log) = daemon_with(
        "pending-bytes",
        "quota_bytes = 8388608\nmax_message_size = 4194304\n",
        &[],
    );
    let bus = d.bus();
    let full = bus.open().unwrap();
    full.set_queue_limit(1).unwrap();
    full.bind("$.full").unwrap();
    bus.open().unwrap().announce("$.full", "x").unwrap();
    let mut outcomes = Vec::new();
    let senders: Vec<_> = (0..4).map(|_| bus.open().unwrap()).collect();
    for s in &senders {
        let out = Outgoing::announcement("$.full", vec![1u8; 3 << 20])
            .with_flags(busbar::Flags::ALL_OR_WAIT);
        outcomes.push(s.send(out).map(|_| ()));
    }
    assert_eq!(
        outcomes,
        [
            Err(Errno::EAGAIN),
            Err(Errno::EAGAIN),
            Err(Errno::EDQUOT),
            Err(Errno::EDQUOT)
        ]
    );
}

// ---------------------------------------------------------------- finding 4

fn pipelined_binds(d: &Daemon, n: u32) -> (UnixStream, FrameReader, u32) {
    let (mut s, mut r) = greeted(d);
    let ep = raw_open(&mut s, &mut r);
    let mut out = Vec::new();
    let req = Request::Bind(BindArgs {
        name: "$.same".into(),
        replier: false,
    });
    for seq in 0..n {
        emit_request(
            &mut out,
            100 + seq,
            0,
            ep,
            &req,
            None,
            busbar_wire::FLAG_QUIET,
        );
    }
    s.write_all(&out).unwrap();
    // Quiet binds answer only errors: a call after them answers when all are done.
    let st = raw_call(&mut s, &mut r, 99, ep, Request::EndpointStats(()), &[]);
    match st {
        Ok(Response::EndpointStats(st)) => assert_eq!(st.bindings, n),
        other => panic!("{other:?}"),
    }
    (s, r, ep)
}

/// Closing an endpoint with 200,000 bindings of one name takes one pass,
/// not one pass per binding.
#[test]
fn closing_many_identical_bindings_does_not_freeze_the_loop() {
    let d = Daemon::start("bindings", &[]);
    let probe = Probe::new(&d);
    let (mut s, mut r, ep) = pipelined_binds(&d, 200_000);
    let t = Instant::now();
    let mut out = Vec::new();
    emit_request(&mut out, 5, 0, ep, &Request::Close(()), None, 0);
    s.write_all(&out).unwrap();
    probe.assert_answered_soon_after(t, "closing 200,000 bindings");
    let f = next_frame(&mut s, &mut r).unwrap();
    assert_eq!(parse_response(&f).unwrap(), Ok(Response::Close(())));
    probe.finish();
}

/// Thousands of pending `ALL_OR_WAIT` sends waiting for one full listener
/// cost nothing to other operations, and their senders leave cheaply.
#[test]
fn pending_sends_do_not_freeze_the_loop() {
    let d = Daemon::start("pending", &[]);
    let bus = d.bus();
    let full = bus.open().unwrap();
    full.set_queue_limit(1).unwrap();
    full.bind("$.full").unwrap();
    bus.open().unwrap().announce("$.full", "x").unwrap();
    let probe = Probe::new(&d);
    let mut conns = Vec::new();
    for _ in 0..2 {
        let (mut s, mut r) = greeted(&d);
        let mut out = Vec::new();
        for seq in 0..4096 {
            emit_request(
                &mut out,
                seq,
                0,
                0,
                &Request::Open(Credentials::default()),
                None,
                0,
            );
        }
        s.write_all(&out).unwrap();
        let mut eps = Vec::new();
        for _ in 0..4096 {
            match parse_response(&next_frame(&mut s, &mut r).unwrap()).unwrap() {
                Ok(Response::Open(ep)) => eps.push(ep.0),
                other => panic!("{other:?}"),
            }
        }
        let mut out = Vec::new();
        for (i, &ep) in eps.iter().enumerate() {
            let msg =
                Outgoing::announcement("$.full", "wait").with_flags(busbar::Flags::ALL_OR_WAIT);
            let req = Request::Send(SendArgs {
                message: msg,
                deadline: None,
            });
            emit_request(&mut out, 10_000 + i as u32, 0, ep, &req, None, 0);
        }
        s.write_all(&out).unwrap();
        for _ in 0..4096 {
            let f = next_frame(&mut s, &mut r).unwrap();
            assert_eq!(parse_response(&f).unwrap(), Err(Errno::EAGAIN));
        }
        conns.push((s, r));
    }
    probe.assert_prompt("with 8,192 sends pending");
    let t = Instant::now();
    drop(conns);
    probe.assert_answered_soon_after(t, "8,192 pending senders leaving");
    // The listener drains: nothing of the departed senders arrives.
    assert_eq!(
        &full.recv_timeout(Some(PATIENCE)).unwrap().unwrap().data[..],
        b"x"
    );
    assert!(full.try_recv().unwrap().is_none());
    probe.finish();
}

// ---------------------------------------------------------------- finding 5

/// A stopped monitor (SIGSTOP) never makes a send fail: its copies are
/// charged to it alone and lost when it is over its budget.
#[test]
fn a_stopped_monitor_never_fails_a_send() {
    let (d, _log) = daemon_with("monitor-stopped", "quota_messages = 1000\n", &[]);
    let bus = d.bus();
    let mut monitor = spawn(&d.socket, &["monitor"]);
    wait_for_monitor(&bus);
    signal(monitor.id(), "STOP");
    let listener = bus.open().unwrap();
    listener.bind("$.busy").unwrap();
    let sender = bus.open().unwrap();
    for i in 0..3000u32 {
        sender.announce("$.busy", i.to_le_bytes().to_vec()).unwrap();
        assert!(listener.try_recv().unwrap().is_some());
    }
    signal(monitor.id(), "CONT");
    monitor.kill().unwrap();
    monitor.wait().unwrap();
}

// ---------------------------------------------------------------- finding 10

/// A client that writes its requests and shuts its writing side still
/// gets every answer before the daemon closes.
#[test]
fn a_half_closed_client_gets_its_answers() {
    let d = Daemon::start("half-close", &[]);
    let (mut s, mut r) = greeted(&d);
    let mut out = Vec::new();
    for seq in 1..=3 {
        emit_request(&mut out, seq, 0, 0, &Request::BusStats(()), None, 0);
    }
    s.write_all(&out).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut seqs = Vec::new();
    while let Some(f) = next_frame(&mut s, &mut r) {
        assert!(parse_response(&f).unwrap().is_ok());
        seqs.push(f.header.seq);
    }
    assert_eq!(seqs, [1, 2, 3]);
}

/// A connection that never says Hello is closed at the hello deadline,
/// told why.
#[test]
fn a_silent_connection_is_closed_at_the_hello_deadline() {
    let (d, _log) = daemon_with("hello", "hello_timeout_ms = 300\n", &[]);
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let mut r = FrameReader::new(1 << 20);
    assert_eq!(
        goodbye_then_eof(&mut s, &mut r),
        Some(Errno::ETIMEDOUT.number())
    );
}

/// One message carries at most 1,024 handles (every receiver gets its own
/// handle per node: a huge list grew the daemon by hundreds of MB).
#[test]
fn handles_per_message_are_bounded() {
    let d = Daemon::start("handles", &[]);
    let bus = d.bus();
    let a = bus.open().unwrap();
    let node = a.create_node().unwrap();
    let too_many = Outgoing::announcement("$.x", "").carrying(vec![node; 1025]);
    assert_eq!(a.send(too_many).unwrap_err(), Errno::ETOOMANYREFS);
    a.send(Outgoing::announcement("$.x", "").carrying(vec![node; 1024]))
        .unwrap();
}

/// Every message whose data came as a memfd is a mapping in the daemon (a
/// process has ~65,530): the daemon holds at most `max_data_memfds_per_uid`
/// of one sending user's (`EDQUOT` beyond) and `max_data_memfds` in all
/// (`ENOBUFS`), and counts them down as they are delivered or dropped.
#[test]
fn data_memfds_held_are_bounded_per_user() {
    let (d, _log) = daemon_with(
        "memfds",
        "max_data_memfds_per_uid = 8\nmax_data_memfds = 12\n",
        &[],
    );
    let bus = d.bus();
    let l = bus.open().unwrap();
    l.set_queue_limit(1000).unwrap();
    l.bind("$.big").unwrap();
    let s = bus.open().unwrap();
    let big = || vec![7u8; 512 << 10]; // above the client's memfd threshold
    for _ in 0..8 {
        s.announce("$.big", big()).unwrap();
    }
    assert_eq!(s.announce("$.big", big()).unwrap_err(), Errno::EDQUOT);
    // Small data still goes inline.
    s.announce("$.big", vec![1u8; 100]).unwrap();
    // Taking them lets the daemon unmap them: room again.
    for _ in 0..8 {
        assert!(busbar::is_sealed_memfd(&l.recv().unwrap().data));
    }
    l.recv().unwrap();
    for _ in 0..8 {
        s.announce("$.big", big()).unwrap();
    }
    // A listener that closes unread releases them too.
    l.close().unwrap();
    let l2 = bus.open().unwrap();
    l2.set_queue_limit(1000).unwrap();
    l2.bind("$.big").unwrap();
    for _ in 0..8 {
        s.announce("$.big", big()).unwrap();
    }
    still_serves(&d);
}
