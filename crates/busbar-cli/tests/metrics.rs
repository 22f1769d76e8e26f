//! `busbar metrics` and the daemon's `metrics_listen`: the text is parsed
//! and checked against a scenario with known counts.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use busbar::{Errno, Flags, Outgoing};
use common::*;

/// `name{labels}` → value, from the text format.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.rsplit_once(' ').expect("name value");
        // Labels in a fixed order, so keys compare whatever order they come in.
        let key = match key.split_once('{') {
            Some((name, labels)) => {
                let mut ls: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                ls.sort_unstable();
                format!("{name}{{{}}}", ls.join(","))
            }
            None => key.to_string(),
        };
        m.insert(key, value.parse().expect("a number"));
    }
    m
}

#[test]
fn metrics_count_what_happened() {
    let dir = temp_dir("metrics");
    let cfg = dir.join("busbar.toml");
    std::fs::write(&cfg, "metrics_listen = \"127.0.0.1:0\"\n").unwrap();
    let socket = dir.join("bus.sock");
    let (d, log) = Daemon::start_logged(dir, socket, &["--config", cfg.to_str().unwrap()], &[]);
    let bus = d.bus();

    // A listener with room for one: one copy delivered, two lost.
    let l = bus.open().unwrap();
    l.set_queue_limit(1).unwrap();
    l.bind("$.m").unwrap();
    let s = bus.open().unwrap();
    for _ in 0..3 {
        s.announce("$.m", "x").unwrap();
    }
    // Refused: no replier (EADDRNOTAVAIL), a full queue with ALL_OR_FAIL (EBUSY).
    assert_eq!(s.request("$.nobody", "").unwrap_err(), Errno::EADDRNOTAVAIL);
    assert_eq!(
        s.send(Outgoing::announcement("$.m", "y").with_flags(Flags::ALL_OR_FAIL))
            .unwrap_err(),
        Errno::EBUSY
    );
    // A replier that closes with the request unread: one GoneAway.
    let r = bus.open().unwrap();
    r.bind_replier("$.svc").unwrap();
    let id = s.request("$.svc", "").unwrap();
    r.close().unwrap();
    assert!(s.wait_reply(id, Some(PATIENCE)).unwrap().is_synthetic());

    let o = d.run(&["metrics"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let m = parse(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} in:\n{text}"));
    assert_eq!(
        get("busbar_messages_sent_total{bus=\"0\"}"),
        4.0,
        "3 announcements and a request"
    );
    // 1 kept by the listener, the request to the replier, the GoneAway.
    assert_eq!(get("busbar_copies_delivered_total{bus=\"0\"}"), 3.0);
    assert_eq!(get("busbar_copies_lost_total{bus=\"0\"}"), 2.0);
    assert_eq!(
        get("busbar_synthetic_messages_total{bus=\"0\",name=\"$.KBUS.Replier.GoneAway\"}"),
        1.0
    );
    assert_eq!(
        get("busbar_sends_refused_total{bus=\"0\",errno=\"EADDRNOTAVAIL\"}"),
        1.0
    );
    assert_eq!(
        get("busbar_sends_refused_total{bus=\"0\",errno=\"EBUSY\"}"),
        1.0
    );
    assert_eq!(get("busbar_endpoints{bus=\"0\"}"), 2.0);
    assert_eq!(get("busbar_bindings{bus=\"0\"}"), 1.0);
    assert_eq!(
        get("busbar_queued_messages{bus=\"0\"}"),
        1.0,
        "the listener's kept copy (the GoneAway was taken)"
    );
    assert_eq!(get("busbar_buses"), 1.0);
    assert!(
        get("busbar_connections") >= 3.0,
        "this test's and the command's"
    );
    assert!(text.ends_with("# EOF\n"));

    // The same over HTTP, from the address the daemon logged.
    wait_until("the metrics address in the log", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("serving metrics at"))
    });
    let line = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("serving metrics at"))
        .cloned()
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let h = parse(body);
    assert_eq!(h["busbar_messages_sent_total{bus=\"0\"}"], 4.0);
    assert_eq!(h["busbar_copies_lost_total{bus=\"0\"}"], 2.0);
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /other HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.0 404"), "{resp}");
}
