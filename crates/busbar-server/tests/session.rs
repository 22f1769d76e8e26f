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
