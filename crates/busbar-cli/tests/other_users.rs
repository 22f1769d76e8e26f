//! The daemon against another local user: bus-wide powers (quota, message
//! size, bind events, buses, monitoring, forwarded ids) refused, counts of
//! endpoints, bindings and connections bounded per user, planted socket
//! directories and daemons of untrusted users refused.
//!
//! These cases run when the tests run as root (as CI does) and print
//! SKIPPED otherwise: they re-run this test binary as uid 65534
//! (`as_other_user`) to act as that user.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use busbar::{Errno, MessageId, Outgoing};
use busbar_kernel::{BindArgs, Request, Response, SendArgs};
use busbar_wire::{FrameReader, GOODBYE};
use common::*;

const NOBODY: u32 = 65534;

/// Runs `role` of this binary as uid 65534; `None` (and SKIPPED) unless root.
fn as_other_user(role: &str, socket: &Path, stdin: Stdio) -> Option<std::process::Child> {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root to act as another user");
        return None;
    }
    Some(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "other_user_role",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("BUSBAR_ROLE", role)
            .env("BUSBAR_ROLE_SOCKET", socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A daemon another user can reach (socket 0666 in a 0755 directory).
fn shared_daemon(tag: &str, extra: &str) -> Daemon {
    let dir = temp_dir(tag);
    busbar_sys::set_mode(&dir, 0o755).unwrap();
    let socket = dir.join("bus.sock");
    let cfg = config(&dir, &format!("socket_mode = \"0666\"\n{extra}"));
    Daemon::start_at(dir, socket, &["--config", &cfg])
}

fn role_results(child: std::process::Child) -> String {
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "role failed: {out}\n{}", stderr(&o));
    out
}

/// Not a case: the entry point of the other user's side of the cases
/// below (does nothing unless `BUSBAR_ROLE` is set).
#[test]
fn other_user_role() {
    let Ok(role) = std::env::var("BUSBAR_ROLE") else {
        return;
    };
    let socket = std::env::var("BUSBAR_ROLE_SOCKET").unwrap();
    let show = |what: &str, r: Result<(), Errno>| {
        println!("{what}={}", r.err().map_or("ok", Errno::name));
    };
    match role.as_str() {
        "powers" => {
            let bus = busbar::Bus::connect(Path::new(&socket)).unwrap();
            let ep = bus.open().unwrap();
            show("create_bus", bus.create_bus().map(drop));
            show(
                "set_quota",
                bus.set_quota(busbar::Quota::UNLIMITED).map(drop),
            );
            show(
                "set_max_message_size",
                bus.set_max_message_size(100).map(drop),
            );
            show(
                "set_replier_bind_events",
                ep.set_replier_bind_events(true).map(drop),
            );
            show("set_monitor", ep.set_monitor(true).map(drop));
            let forwarded = Outgoing {
                id: MessageId {
                    network: 7,
                    serial: 1,
                },
                ..Outgoing::announcement("$.x", "")
            };
            show("forwarded_id", ep.send(forwarded).map(drop));
            show("announce", ep.announce("$.x", "").map(drop));
            let mut n = 0;
            let r = loop {
                match ep.bind(&format!("$.b{n}")) {
                    Ok(()) => n += 1,
                    Err(e) => break Err(e),
                }
            };
            println!("bindings={n}");
            show("bind_past_limit", r);
            let mut eps = Vec::new();
            let r = loop {
                match bus.open() {
                    Ok(e) => eps.push(e),
                    Err(e) => break Err(e),
                }
            };
            println!("endpoints={}", eps.len() + 1);
            show("open_past_limit", r);
        }
        "connections" => {
            let mut held = Vec::new();
            let refused = loop {
                let mut s = UnixStream::connect(&socket).unwrap();
                let mut r = FrameReader::new(1 << 20);
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut buf = [0u8; 64];
                match std::io::Read::read(&mut s, &mut buf) {
                    Ok(n) if n > 0 => {
                        r.buffer().extend_from_slice(&buf[..n]);
                        let f = r.next_frame().unwrap().unwrap();
                        assert_eq!(f.header.kind, GOODBYE);
                        break f.header.status;
                    }
                    _ => held.push(s),
                }
            };
            println!("held={}", held.len());
            println!("refused={}", Errno::from_number(refused).unwrap().name());
            std::io::stdout().flush().unwrap();
            // Hold them until the other side is done.
            let _ = std::io::stdin().lines().next();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Bus-wide powers (quota, message size, bind events, buses, monitoring,
/// forwarded ids) are refused to another user, and its endpoints and
/// bindings are bounded.
#[test]
fn another_user_has_no_bus_wide_powers_and_bounded_counts() {
    let d = shared_daemon(
        "powers",
        "max_bindings_per_uid = 50\nmax_endpoints_per_uid = 20\n",
    );
    let Some(child) = as_other_user("powers", &d.socket, Stdio::null()) else {
        return;
    };
    let out = role_results(child);
    for op in [
        "create_bus",
        "set_quota",
        "set_max_message_size",
        "set_replier_bind_events",
        "set_monitor",
        "forwarded_id",
    ] {
        assert!(
            out.contains(&format!("{op}=EPERM")),
            "{op} was not refused:\n{out}"
        );
    }
    assert!(out.contains("announce=ok"), "{out}");
    assert!(
        out.contains("bindings=50\n") && out.contains("bind_past_limit=EMFILE"),
        "{out}"
    );
    assert!(
        out.contains("endpoints=20\n") && out.contains("open_past_limit=EMFILE"),
        "{out}"
    );
    // Nothing it tried changed the bus.
    let bus = d.bus();
    assert_eq!(bus.stats().unwrap().max_message_size, 64 << 20);
    assert_ne!(bus.quota_stats().unwrap().quota, busbar::Quota::UNLIMITED);
}

/// Another user cannot take every connection slot: it is held to its own
/// share (`EUSERS` beyond), and this user still connects.
#[test]
fn another_user_cannot_take_every_connection() {
    let d = shared_daemon(
        "conn-uid",
        "max_connections_per_uid = 10\nhello_timeout_ms = 60000\n",
    );
    let Some(mut child) = as_other_user("connections", &d.socket, Stdio::piped()) else {
        return;
    };
    // (libtest may print "test other_user_role ... " on the same line.)
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .skip_while(|l| !l.contains("held="));
    let first = lines.next().unwrap();
    let held = &first[first.find("held=").unwrap()..];
    let refused = lines.next().unwrap();
    assert_eq!((held, &*refused), ("held=10", "refused=EUSERS"));
    still_serves(&d);
    let o = d.run(&["stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// A socket directory planted by another user is refused by the daemon,
/// with a message saying so; a daemon run by another user is refused by
/// the client before anything is sent.
#[test]
fn planted_sockets_and_untrusted_daemons_are_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let dir = temp_dir("squat");
    let planted = dir.join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    // Whatever the umask: writable by its owner only.
    busbar_sys::set_mode(&planted, 0o755).unwrap();
    let o = Command::new(exe())
        .args(["daemon", "--socket"])
        .arg(planted.join("bus.sock"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("belongs to uid 65534"),
        "{}",
        stderr(&o)
    );

    // A daemon running as the other user, in its own directory.
    busbar_sys::set_mode(&dir, 0o755).unwrap();
    let socket = planted.join("bus.sock");
    // Killed, and the directory removed, however the case ends.
    let theirs = Daemon {
        socket: socket.clone(),
        dir: dir.clone(),
        child: Command::new(exe())
            .args(["daemon", "--socket"])
            .arg(&socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    wait_until("the other user's daemon", || {
        UnixStream::connect(&socket).is_ok()
    });
    let o = run_with_socket(&socket, &["send", "$.secret", "data"]);
    assert!(!o.status.success(), "sent to another user's daemon");
    assert!(
        stderr(&o).contains("EACCES") && stderr(&o).contains("BUSBAR_TRUSTED_UIDS"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(exe())
        .args(["send", "$.secret", "data", "--socket"])
        .arg(&socket)
        .env("BUSBAR_TRUSTED_UIDS", "65534")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "trusting it explicitly works: {}",
        stderr(&o)
    );
    drop(theirs);
}

/// A raw call that must succeed.
fn raw_ok(
    s: &mut UnixStream,
    r: &mut FrameReader,
    seq: u32,
    ep: u32,
    req: Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Response {
    raw_call(s, r, seq, ep, req, fds).unwrap_or_else(|e| panic!("request {seq} failed: {e}"))
}

fn raw_open_bound(socket: &Path, name: &str) -> (UnixStream, FrameReader, u32) {
    let (mut s, mut r) = greeted_at(socket);
    let ep = raw_open(&mut s, &mut r);
    raw_ok(
        &mut s,
        &mut r,
        2,
        ep,
        Request::Bind(BindArgs {
            name: name.into(),
            replier: false,
        }),
        &[],
    );
    (s, r, ep)
}

/// With the daemon not running as root, a client that takes fd-carrying
/// messages and never reads its socket fills the kernel's per-user limit
/// of fds in flight (`ETOOMANYREFS` on the daemon's next `sendmsg`). The
/// innocent client the daemon writes to next is not dropped: its output
/// waits (back-off) and arrives, fd included, once the offender is gone.
#[test]
fn fds_in_flight_to_a_deaf_client_never_drop_another() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root to run the daemon as another user");
        return;
    }
    let dir = temp_dir("inflight");
    busbar_sys::set_mode(&dir, 0o755).unwrap();
    let own = dir.join("d");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
    busbar_sys::set_mode(&own, 0o755).unwrap();
    let socket = own.join("bus.sock");
    let cfg = dir.join("busbar.toml");
    std::fs::write(&cfg, "socket_mode = \"0666\"\ndefault_queue_limit = 1000\n").unwrap();
    // Its open-file limit (64) is also its limit of fds in flight.
    // Killed, and its directory removed, however the case ends.
    let mut daemon = Daemon {
        socket: socket.clone(),
        dir: dir.clone(),
        child: Command::new("prlimit")
            .arg("--nofile=64:64")
            .arg(exe())
            .args(["daemon", "--config"])
            .arg(&cfg)
            .arg("--socket")
            .arg(&socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    wait_until("the daemon", || UnixStream::connect(&socket).is_ok());

    let (mut deaf, _deaf_r, deaf_ep) = raw_open_bound(&socket, "$.fds");
    let (mut innocent, mut innocent_r, innocent_ep) = raw_open_bound(&socket, "$.mine");
    let (mut sender, mut sender_r) = greeted_at(&socket);
    let Response::Open(sender_ep) = raw_ok(
        &mut sender,
        &mut sender_r,
        1,
        0,
        Request::Open(Default::default()),
        &[],
    ) else {
        panic!("open");
    };
    let null = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsFd::as_fd(&null);
    let with_fd = |name: &str| {
        let dup: std::os::fd::OwnedFd = null.try_clone().unwrap().into();
        Request::Send(SendArgs {
            message: Outgoing::announcement(name, "x").with_fds(vec![dup]),
            deadline: None,
        })
    };
    // The deaf client asks for 70 messages (parked waits) and reads
    // nothing; each message carries an fd: past 64 fds in flight.
    let mut asks = Vec::new();
    for i in 0..70 {
        busbar_wire::emit_request(
            &mut asks,
            100 + i,
            0,
            deaf_ep,
            &Request::Recv(()),
            Some(busbar_wire::WAIT_FOREVER),
            0,
        );
    }
    deaf.write_all(&asks).unwrap();
    for i in 0..70 {
        raw_ok(
            &mut sender,
            &mut sender_r,
            10 + i,
            sender_ep.0,
            with_fd("$.fds"),
            &[fd],
        );
    }
    // The innocent client waits for one message with an fd.
    let mut ask = Vec::new();
    busbar_wire::emit_request(
        &mut ask,
        50,
        0,
        innocent_ep,
        &Request::Recv(()),
        Some(busbar_wire::WAIT_FOREVER),
        0,
    );
    innocent.write_all(&ask).unwrap();
    raw_ok(
        &mut sender,
        &mut sender_r,
        500,
        sender_ep.0,
        with_fd("$.mine"),
        &[fd],
    );
    // The deaf client goes; its fds in flight are freed; the innocent one
    // gets its message and its fd, on the connection it never lost.
    drop(deaf);
    let mut fds = Vec::new();
    innocent.set_read_timeout(Some(PATIENCE)).unwrap();
    let m = loop {
        let mut buf = [0u8; 4096];
        let n = busbar_sys::recv_with_fds(&innocent, &mut buf, &mut fds, false).unwrap();
        assert!(n > 0, "the daemon dropped the innocent client");
        innocent_r.buffer().extend_from_slice(&buf[..n]);
        // (A Wake may come first: skip everything but the response.)
        if let Some(f) = innocent_r.next_frame().unwrap()
            && f.header.seq == 50
            && f.header.kind & busbar_wire::RESPONSE != 0
        {
            break busbar_wire::parse_response(&f).unwrap().unwrap();
        }
    };
    let Response::Recv(Some(m)) = m else {
        panic!("{m:?}");
    };
    assert_eq!((&*m.name, fds.len()), ("$.mine", 1));
    let mut stderr = daemon.child.stderr.take().unwrap();
    drop(daemon);
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    // The case really reached the kernel's limit.
    assert!(
        log.contains("ETOOMANYREFS"),
        "the limit was never hit:\n{log}"
    );
    assert!(!log.contains("client gone"), "{log}");
}

/// A socket this user may not open: `EACCES` (not `EPERM`), with the
/// settings that decide who may connect.
#[test]
fn a_socket_another_user_may_not_open_says_why() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let dir = temp_dir("eacces");
    busbar_sys::set_mode(&dir, 0o755).unwrap();
    let socket = dir.join("bus.sock");
    let d = Daemon::start_at(dir, socket, &[]); // socket_mode 0600
    let o = Command::new(exe())
        .args(["send", "--socket"])
        .arg(&d.socket)
        .arg("$.a")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("EACCES") && !e.contains("EPERM"), "{e}");
    assert!(
        e.contains("socket_mode") && e.contains("socket_group"),
        "{e}"
    );
}
