//! The daemon under abuse: a replier killed with SIGKILL, clients sending
//! garbage, a client that stops reading, 1,000 connections at once. Each
//! test checks the daemon stays up and serves everyone else.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use busbar::{Bus, Errno};
use busbar_kernel::{BindArgs, Request};
use busbar_wire::{FrameReader, HEADER_LEN, RESPONSE, emit_frame, emit_request, parse_response};
use common::*;

#[test]
fn replier_killed_with_sigkill_gets_its_requests_answered() {
    const N: usize = 10;
    let d = Daemon::start("sigkill", &[]);
    let bus = d.bus();
    // A replier process that takes the first request and then hangs in
    // its --exec command; the other requests wait unread in its queue.
    let mut replier = Command::new(exe())
        .args(["reply", "$.slow", "--exec", "sleep 30", "--socket"])
        .arg(&d.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the replier to bind", || {
        bus.find_replier("$.slow").unwrap().is_some()
    });
    let replier_ep = bus.find_replier("$.slow").unwrap().unwrap();
    let requester = bus.open().unwrap();
    let ids: Vec<_> = (0..N)
        .map(|i| requester.request("$.slow", format!("{i}")).unwrap())
        .collect();
    wait_until("the replier to take one request", || {
        let s = bus.stats().unwrap();
        s.endpoint_stats
            .iter()
            .any(|e| e.id == replier_ep && e.owed_replies == 1)
    });

    // SIGKILL the replier (its `sleep` ends on its own).
    replier.kill().unwrap();
    replier.wait().unwrap();

    let mut names = Vec::new();
    for id in ids {
        let r = requester.wait_reply(id, Some(PATIENCE)).unwrap();
        assert!(r.is_synthetic());
        assert_eq!(r.in_reply_to, id);
        assert_eq!(r.from, replier_ep);
        names.push(r.name.to_string());
    }
    assert_eq!(names[0], "$.KBUS.Replier.Ignored");
    assert!(
        names[1..].iter().all(|n| n == "$.KBUS.Replier.GoneAway"),
        "{names:?}"
    );
    assert_eq!(requester.stats().unwrap().outstanding_requests, 0);
    still_serves(&d);
}

#[test]
fn garbage_gets_goodbye_and_others_carry_on() {
    let d = Daemon::start("garbage", &[]);
    let bus = d.bus();
    let listener = bus.open().unwrap();
    listener.bind("$.still.here").unwrap();

    // 1. Garbage instead of a hello.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&[0x42; 64]).unwrap();
    let mut r = FrameReader::new(1 << 20);
    assert_eq!(
        goodbye_then_eof(&mut s, &mut r),
        Some(Errno::EPROTO.number())
    );

    // 2. A greeted client sending a request with a corrupt body: an EPROTO
    //    response to that request, then goodbye.
    let (mut s, mut r) = greeted(&d);
    let mut out = Vec::new();
    emit_request(
        &mut out,
        7,
        0,
        0,
        &Request::Bind(BindArgs {
            name: "$.x".into(),
            replier: false,
        }),
        None,
        0,
    );
    let last = out.len() - 1;
    out[last] = 9; // the `replier` bool becomes 9
    s.write_all(&out).unwrap();
    let f = next_frame(&mut s, &mut r).unwrap();
    assert_eq!(f.header.kind & RESPONSE, RESPONSE);
    assert_eq!(f.header.seq, 7);
    assert_eq!(parse_response(&f).unwrap(), Err(Errno::EPROTO));
    assert_eq!(
        goodbye_then_eof(&mut s, &mut r),
        Some(Errno::EPROTO.number())
    );

    // 3. An oversized length: refused before anything is buffered.
    let (mut s, mut r) = greeted(&d);
    let mut out = Vec::new();
    emit_frame(&mut out, 1, 0, 1, 0, |_| {});
    out[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&out).unwrap();
    assert_eq!(
        goodbye_then_eof(&mut s, &mut r),
        Some(Errno::EPROTO.number())
    );

    // 4. Random frames after a proper hello.
    for seed in 0..20u32 {
        let (mut s, mut r) = greeted(&d);
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut junk = vec![0u8; HEADER_LEN + 64];
        for b in &mut junk {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let len = junk.len() as u32;
        junk[0..4].copy_from_slice(&len.to_le_bytes());
        s.write_all(&junk).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        goodbye_then_eof(&mut s, &mut r);
    }

    // 5. An endpoint operation on someone else's endpoint: EPERM, no harm.
    let (mut s, mut r) = greeted(&d);
    let mut out = Vec::new();
    emit_request(
        &mut out,
        3,
        0,
        listener.id().0,
        &Request::Close(()),
        None,
        0,
    );
    s.write_all(&out).unwrap();
    let f = next_frame(&mut s, &mut r).unwrap();
    assert_eq!(parse_response(&f).unwrap(), Err(Errno::EPERM));

    // Everyone else carries on.
    let sender = bus.open().unwrap();
    sender.announce("$.still.here", "yes").unwrap();
    assert_eq!(
        &listener.recv_timeout(Some(PATIENCE)).unwrap().unwrap().data[..],
        b"yes"
    );
    still_serves(&d);
}

#[test]
fn a_client_that_stops_reading_cannot_grow_the_daemon() {
    let d = Daemon::start("slow", &[]);
    still_serves(&d);
    let before = rss_kib(d.pid());
    let (s, _r) = greeted(&d);
    // Pipeline requests (each answered with a ~100-byte stats reply) and
    // never read: the daemon must stop reading us, not buffer everything.
    s.set_nonblocking(true).unwrap();
    let mut one = Vec::new();
    emit_request(&mut one, 1, 0, 0, &Request::BusStats(()), None, 0);
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4096).collect();
    let mut written = 0usize;
    let mut blocked = 0;
    while written < 64 << 20 && blocked < 200 {
        match (&s).write(&batch) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                blocked += 1;
                // Give the daemon a chance to drain what it can.
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        blocked >= 200,
        "the daemon kept reading {written} bytes of requests we never collected answers to"
    );
    // Meanwhile others are served, and the daemon's memory stayed bounded:
    // roughly its output limit plus socket buffers, not the ~{written} bytes.
    still_serves(&d);
    let after = rss_kib(d.pid());
    assert!(
        after < before + 64 * 1024,
        "daemon grew from {before} KiB to {after} KiB"
    );

    // A listener that never reads is held to its queue limit.
    let bus = d.bus();
    let deaf = bus.open().unwrap();
    deaf.bind("$.flood").unwrap();
    let sender = bus.open().unwrap();
    for _ in 0..100 {
        let batch = (0..100)
            .map(|_| busbar::Outgoing::announcement("$.flood", vec![0u8; 1000]))
            .collect();
        sender.send_batch(batch).unwrap();
    }
    let st = deaf.stats().unwrap();
    assert_eq!((st.queued, st.lost), (100, 9_900));
    assert!(rss_kib(d.pid()) < before + 64 * 1024);
}

#[test]
fn a_thousand_concurrent_connections() {
    const N: usize = 1000;
    busbar_sys::raise_fd_limit().unwrap();
    let d = Daemon::start("thousand", &[]);
    let fds_before = socket_fd_count(d.pid());
    let bus = d.bus();
    let eps: Vec<_> = (0..N).map(|_| bus.open().unwrap()).collect();
    for e in &eps {
        e.bind("$.all").unwrap();
    }
    assert_eq!(bus.stats().unwrap().endpoints as usize, N);
    let sender = bus.open().unwrap();
    sender.announce("$.all", "hello, everyone").unwrap();
    for e in &eps {
        assert_eq!(
            &e.recv_timeout(Some(PATIENCE)).unwrap().unwrap().data[..],
            b"hello, everyone"
        );
    }
    still_serves(&d);
    drop(eps);
    drop(sender);
    drop(bus);
    // Every connection's socket is released (the control connection of
    // `still_serves` included): no fd leak.
    let start = std::time::Instant::now();
    loop {
        let now = socket_fd_count(d.pid());
        if now <= fds_before {
            break;
        }
        if start.elapsed() > PATIENCE {
            let fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect();
            panic!("daemon still has {now} fds (had {fds_before}): {fds:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let bus: Bus = d.bus();
    assert_eq!(bus.stats().unwrap().endpoints, 0);
}

/// Scale target: 10,000 connected endpoints on one daemon, each reached by
/// one announcement.
#[test]
fn ten_thousand_connected_endpoints() {
    const N: usize = 10_000;
    let limit = busbar_sys::raise_fd_limit().unwrap();
    if limit < N as u64 + 1000 {
        eprintln!("SKIPPED: open-file limit {limit} is too low for {N} connections");
        return;
    }
    let dir = temp_dir("tenk");
    let cfg = dir.join("busbar.toml");
    std::fs::write(&cfg, "max_connections = 20000\n").unwrap();
    let d = Daemon::start_at(
        dir.clone(),
        dir.join("bus.sock"),
        &["--config", cfg.to_str().unwrap()],
    );
    let bus = d.bus();
    let eps: Vec<_> = (0..N).map(|_| bus.open().unwrap()).collect();
    for e in &eps {
        e.bind("$.all").unwrap();
    }
    let st = bus.stats().unwrap();
    assert_eq!((st.endpoints as usize, st.bindings as usize), (N, N));
    let sender = bus.open().unwrap();
    sender.announce("$.all", "hello, ten thousand").unwrap();
    for e in &eps {
        let m = e.recv_timeout(Some(PATIENCE)).unwrap().unwrap();
        assert_eq!(&m.data[..], b"hello, ten thousand");
    }
    still_serves(&d);
}
