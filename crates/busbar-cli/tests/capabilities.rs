//! Capabilities across processes, through a real daemon: a memfd written by
//! one process read by another, no fd leak in the daemon, Unix sockets
//! refused, and quotas between two real users.

mod common;

use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use busbar::{Bus, Errno, Outgoing, Quota};
use common::*;

const MEMFD_TEXT: &str = "written by another process";

/// Run by `memfd_from_another_process` in a child process (not alone).
#[test]
#[ignore = "helper: run by memfd_from_another_process in a child process"]
fn helper_send_memfd() {
    let socket = std::env::var("BUSBAR_TEST_SOCKET").expect("run by memfd_from_another_process");
    let bus = Bus::connect(socket).unwrap();
    let ep = bus.open().unwrap();
    let fd = busbar_sys::memfd_with("busbar-test", MEMFD_TEXT.as_bytes()).unwrap();
    ep.send(Outgoing::announcement("$.fd.test", &b"here"[..]).with_fds(vec![fd]))
        .unwrap();
}

/// The daemon's open memfds (the fds it holds for queued messages).
fn daemon_memfds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("memfd:"))
        .count()
}

#[test]
fn memfd_from_another_process() {
    let d = Daemon::start("memfd", &[]);
    let bus = d.bus();
    let r = bus.open().unwrap();
    r.bind("$.fd.test").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "helper_send_memfd", "--nocapture"])
        .env("BUSBAR_TEST_SOCKET", &d.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helper failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let m = r.recv_timeout(Some(PATIENCE)).unwrap().unwrap();
    assert_eq!(&m.data[..], b"here");
    assert_ne!(m.creds.pid, std::process::id(), "sent by the other process");
    assert_eq!(m.fds().len(), 1);
    let f = std::fs::File::from(m.fds()[0].try_clone().unwrap());
    let mut buf = vec![0u8; 100];
    let n = f.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..n], MEMFD_TEXT.as_bytes());
}

#[test]
fn fds_for_an_endpoint_that_closes_unread_are_closed() {
    let d = Daemon::start("fdleak", &[]);
    let bus = d.bus();
    let sender = bus.open().unwrap();
    let sink = bus.open().unwrap();
    sink.set_queue_limit(1000).unwrap();
    sink.bind("$.fd.sink").unwrap();
    assert_eq!(daemon_memfds(d.pid()), 0);
    for i in 0..50 {
        let a = busbar_sys::memfd_with("leak-test", format!("{i}").as_bytes()).unwrap();
        let b = busbar_sys::memfd_with("leak-test", b"b").unwrap();
        sender
            .send(Outgoing::announcement("$.fd.sink", &b""[..]).with_fds(vec![a, b]))
            .unwrap();
    }
    // The daemon holds them while they are queued...
    assert_eq!(daemon_memfds(d.pid()), 100);
    // ...and closes them when the endpoint closes without reading.
    sink.close().unwrap();
    wait_until("the daemon to close the fds", || {
        daemon_memfds(d.pid()) == 0
    });
    // Read ones go too: the receiver has its own copies.
    let r = bus.open().unwrap();
    r.bind("$.fd.sink").unwrap();
    let fd = busbar_sys::memfd_with("leak-test", b"x").unwrap();
    sender
        .send(Outgoing::announcement("$.fd.sink", &b""[..]).with_fds(vec![fd]))
        .unwrap();
    let m = r.recv_timeout(Some(PATIENCE)).unwrap().unwrap();
    assert_eq!(m.fds().len(), 1);
    wait_until("the daemon to let go of the delivered fd", || {
        daemon_memfds(d.pid()) == 0
    });
}

#[test]
fn unix_sockets_cannot_be_passed_through_the_daemon() {
    let d = Daemon::start("unixfd", &[]);
    let bus = d.bus();
    let s = bus.open().unwrap();
    let r = bus.open().unwrap();
    r.bind("$.fd.sock").unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = s
        .send(Outgoing::announcement("$.fd.sock", &b""[..]).with_fds(vec![a.into()]))
        .unwrap_err();
    assert_eq!(err, Errno::EOPNOTSUPP);
    assert_eq!(r.try_recv().unwrap(), None);
    // Other fds still go.
    let fd = busbar_sys::memfd_with("ok", b"ok").unwrap();
    s.send(Outgoing::announcement("$.fd.sock", &b""[..]).with_fds(vec![fd]))
        .unwrap();
    assert_eq!(
        r.recv_timeout(Some(PATIENCE)).unwrap().unwrap().fds().len(),
        1
    );
}

#[test]
fn a_flooding_user_hits_its_quota_while_another_user_gets_through() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root to run a child as another user");
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = temp_dir("quota-uids");
    // Let the other user reach the socket.
    busbar_sys::set_mode(&dir, 0o755).unwrap();
    let cfg = dir.join("busbar.toml");
    std::fs::write(&cfg, "socket_mode = \"0666\"\n").unwrap();
    let socket = dir.join("bus.sock");
    let d = Daemon::start_at(
        dir.clone(),
        socket.clone(),
        &["--config", cfg.to_str().unwrap()],
    );
    let bus = d.bus();
    bus.set_quota(Quota {
        messages: 10,
        ..Quota::default()
    })
    .unwrap();
    let inbox = bus.open().unwrap();
    inbox.set_queue_limit(1000).unwrap();
    inbox.bind("$.inbox").unwrap();

    // The other user floods our endpoint until the quota says no.
    let script = format!(
        "for i in $(seq 1 12); do {exe} send '$.inbox' flood --socket {sock} || exit 0; done; exit 9",
        exe = exe(),
        sock = socket.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "the flood never hit the quota");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("EDQUOT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Exactly its share arrived, sent by that user, and the stats say who
    // fills whom.
    let st = bus.quota_stats().unwrap();
    let share = st
        .users
        .iter()
        .find(|u| u.sender_uid == NOBODY)
        .expect("nobody's share");
    assert_eq!((share.uid, share.messages), (0, 10));
    let first = inbox.try_recv().unwrap().unwrap();
    assert_eq!(first.creds.uid, NOBODY);

    // Our own user still gets through.
    let me = bus.open().unwrap();
    me.announce("$.inbox", "mine").unwrap();
    let mut got_mine = false;
    while let Some(m) = inbox.try_recv().unwrap() {
        got_mine |= &m.data[..] == b"mine" && m.creds.uid == 0;
    }
    assert!(got_mine);
}
