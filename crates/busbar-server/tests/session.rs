//! The session driven by hand, no sockets: what the operator sees in the
//! log (one summary of the counters when they change, at most one per
//! minute) and what a refused or unprivileged client gets.

use std::sync::{Arc, Mutex};

use busbar_kernel::{Credentials, Errno, KernelConfig, Level, Quota, Request};
use busbar_server::{Limits, Privilege, REPORT_EVERY, Server};
use busbar_wire::{FrameReader, emit_hello, emit_request, parse_response};

fn server(limits: Limits) -> (Server, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let keep = log.clone();
    let sink = Box::new(move |level: Level, args: std::fmt::Arguments<'_>| {
        if level == Level::Info {
            keep.lock().unwrap().push(args.to_string());
        }
    });
    let config = KernelConfig {
        quota: Quota::default(),
        ..KernelConfig::default()
    };
    let privilege = Privilege {
        daemon_uid: 1,
        ..Privilege::default()
    };
    (
        Server::new(config, limits, privilege, 1, sink).unwrap(),
        log,
    )
}

fn creds(uid: u32) -> Credentials {
    Credentials {
        pid: 9,
        uid,
        gid: uid,
    }
}

fn summaries(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("since start"))
        .cloned()
        .collect()
}

#[test]
fn refusals_are_summarised_once_a_minute_at_most() {
    let limits = Limits {
        max_connections_per_uid: 1,
        ..Limits::default()
    };
    let (mut s, log) = server(limits);
    s.handle_connect(0, creds(5)).unwrap();
    assert_eq!(s.handle_connect(0, creds(5)), Err(Errno::EUSERS));
    // Something to report: due now.
    assert_eq!(s.poll_timeout(), Some(0));
    s.handle_timeout(0);
    let first = summaries(&log);
    assert_eq!(first.len(), 1);
    assert!(first[0].contains("1 connections refused"), "{first:?}");
    // More refusals within the minute wait for it.
    assert_eq!(s.handle_connect(1, creds(5)), Err(Errno::EUSERS));
    s.handle_timeout(REPORT_EVERY / 2);
    assert_eq!(summaries(&log).len(), 1);
    assert!(s.poll_timeout().is_some_and(|t| t <= REPORT_EVERY));
    s.handle_timeout(REPORT_EVERY);
    let both = summaries(&log);
    assert_eq!(both.len(), 2);
    assert!(both[1].contains("2 connections refused"), "{both:?}");
    // Nothing new: no more lines, however long it runs.
    s.handle_timeout(10 * REPORT_EVERY);
    assert_eq!(summaries(&log).len(), 2);
}

#[test]
fn an_unprivileged_client_cannot_set_the_quota() {
    let (mut s, _log) = server(Limits::default());
    let c = s.handle_connect(0, creds(1000)).unwrap();
    let mut input = Vec::new();
    emit_hello(&mut input);
    emit_request(
        &mut input,
        1,
        0,
        0,
        &Request::SetQuota(Quota::UNLIMITED),
        None,
        0,
    );
    s.handle_input(0, c, &input, Vec::new());
    let mut r = FrameReader::new(1 << 20);
    while let Some((bytes, _)) = s.poll_transmit(c) {
        let n = bytes.len();
        r.buffer().extend_from_slice(bytes);
        s.handle_sent(0, c, n, 0);
    }
    let _welcome = r.next_frame().unwrap().unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(parse_response(&f).unwrap(), Err(Errno::EPERM));
    assert_eq!(s.stats().privilege_refusals, 1);
    s.check_invariants(0).unwrap();
}

/// Writes out what the session owes every dirty connection except `deaf`;
/// returns the frames each got.
fn flush(
    s: &mut Server,
    deaf: Option<busbar_server::ConnId>,
) -> std::collections::HashMap<busbar_server::ConnId, Vec<busbar_wire::Frame>> {
    let mut got: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
    while let Some(c) = s.poll_dirty() {
        if Some(c) == deaf {
            continue;
        }
        let mut r = FrameReader::new(1 << 20);
        while let Some((bytes, fds)) = s.poll_transmit(c) {
            let (n, nfds) = (bytes.len(), fds.len());
            r.buffer().extend_from_slice(bytes);
            s.handle_sent(0, c, n, nfds);
        }
        while let Some(f) = r.next_frame().unwrap() {
            got.entry(c).or_default().push(f);
        }
    }
    got
}

/// One user over its limit of fds held (a deaf connection of it took
/// fd-carrying messages and reads nothing) is not answered on any of its
/// connections; when the deaf one goes, the others are answered at once,
/// without needing any output of their own to wake them.
#[test]
fn a_user_back_under_its_fd_limit_is_answered_on_every_connection() {
    use busbar_kernel::{BindArgs, Outgoing, SendArgs};
    use busbar_server::ReceivedFd;
    let limits = Limits {
        max_fds_per_uid: 4,
        ..Limits::default()
    };
    let (mut s, _log) = server(limits);
    let (a, b, snd) = (
        s.handle_connect(0, creds(5)).unwrap(),
        s.handle_connect(0, creds(5)).unwrap(),
        s.handle_connect(0, creds(6)).unwrap(),
    );
    let hello = || {
        let mut v = Vec::new();
        emit_hello(&mut v);
        v
    };
    // A listens on $.f (endpoint 1); the sender opens endpoint 2.
    let mut input = hello();
    emit_request(&mut input, 1, 0, 0, &Request::Open(creds(0)), None, 0);
    let bind = Request::Bind(BindArgs {
        name: "$.f".into(),
        replier: false,
    });
    emit_request(&mut input, 2, 0, 1, &bind, None, 0);
    s.handle_input(0, a, &input, Vec::new());
    let mut input = hello();
    emit_request(&mut input, 1, 0, 0, &Request::Open(creds(0)), None, 0);
    s.handle_input(0, snd, &input, Vec::new());
    flush(&mut s, None);
    // Three messages with two fds each.
    for seq in 10..13 {
        let null = || ReceivedFd {
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            unix_socket: false,
        };
        let placeholder: Vec<std::os::fd::OwnedFd> = (0..2)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect();
        let msg = Outgoing::announcement("$.f", "x").with_fds(placeholder);
        let mut input = Vec::new();
        emit_request(
            &mut input,
            seq,
            0,
            2,
            &Request::Send(SendArgs {
                message: msg,
                deadline: None,
            }),
            None,
            0,
        );
        s.handle_input(0, snd, &input, vec![null(), null()]);
    }
    flush(&mut s, None);
    // A takes all three and reads nothing: 6 fds held for uid 5 (limit 4).
    let mut input = Vec::new();
    for seq in 20..23 {
        emit_request(&mut input, seq, 0, 1, &Request::Recv(()), None, 0);
    }
    s.handle_input(0, a, &input, Vec::new());
    flush(&mut s, Some(a));
    // B, same user, is not answered while its user is over the limit.
    s.handle_input(0, b, &hello(), Vec::new());
    assert!(!s.wants_read(b));
    assert!(!flush(&mut s, Some(a)).contains_key(&b));
    // A goes: B is answered at once.
    s.handle_disconnect(0, a, "deaf");
    let got = flush(&mut s, None);
    let frames = got
        .get(&b)
        .expect("B answered once its user is under the limit");
    assert_eq!(frames[0].header.kind, busbar_wire::WELCOME);
    assert!(s.wants_read(b));
    s.check_invariants(0).unwrap();
}
