//! The `busbar` command, end to end: a real daemon process and the real
//! binary for every command.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use busbar::{EndpointId, Errno};
use common::*;
use serde_json::Value;

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn reply_call_send_listen_stats() {
    let d = Daemon::start("basic", &[]);
    let bus = d.bus();

    // A replier process; wait until it has bound.
    let mut replier = spawn(
        &d.socket,
        &["reply", "$.time", "--data", "noon", "--count", "2"],
    );
    wait_until("the replier to bind", || {
        bus.find_replier("$.time").unwrap().is_some()
    });

    // A listener process for two messages.
    let listener = spawn(
        &d.socket,
        &["listen", "$.time", "$.news.*", "--count", "5", "--json"],
    );
    wait_until("the listener to bind", || {
        bus.stats().unwrap().bindings == 3
    });

    let o = d.run(&["call", "$.time", "what time?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "noon\n");

    let o = d.run(&["call", "$.time", "again", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = &json_lines(&stdout(&o))[0];
    assert_eq!(r["name"], "$.time");
    assert_eq!(r["data"], "noon");
    assert_eq!(r["in_reply_to"][0], 0);
    assert_eq!(r["flag_names"], serde_json::json!([]));
    assert!(r["pid"].as_u64().unwrap() > 0);
    assert!(replier.wait().unwrap().success());

    let o = d.run(&["send", "$.news.today", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o);
    assert!(id.starts_with("[0,") && id.ends_with("]\n"), "{id:?}");

    let out = listener.wait_with_output().unwrap();
    assert!(out.status.success());
    let msgs = json_lines(&stdout(&out));
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[0]["flag_names"], serde_json::json!(["WANT_A_REPLY"]));
    assert_eq!(msgs[0]["data"], "what time?");
    assert_eq!(msgs[1]["data"], "noon");
    assert_eq!(msgs[1]["in_reply_to"], msgs[0]["id"]);
    assert_eq!(msgs[2]["data"], "again");
    assert_eq!(msgs[4]["name"], "$.news.today");
    assert_eq!(format!("[0,{}]\n", msgs[4]["id"][1]), id);
    for m in &msgs {
        for field in [
            "id",
            "name",
            "from",
            "to",
            "in_reply_to",
            "orig_from",
            "final_to",
            "flags",
            "flag_names",
            "data",
            "lost",
            "pid",
            "uid",
            "gid",
        ] {
            assert!(m.get(field).is_some(), "{field} missing from {m}");
        }
    }

    let o = d.run(&["stats", "--json"]);
    assert!(o.status.success());
    let s = &json_lines(&stdout(&o))[0];
    assert_eq!(s["bus"], 0);
    assert_eq!(s["quota"]["messages"], 65_536);
    assert!(s["usage"].is_array());
    assert!(s["next_serial"].as_u64().unwrap() >= 6);
    let o = d.run(&["stats"]);
    assert!(stdout(&o).contains("queued/limit"), "{}", stdout(&o));
}

#[test]
fn send_json_binary_data_and_flags() {
    let d = Daemon::start("send", &[]);
    let bus = d.bus();
    let sender = bus.open().unwrap();
    let listener = spawn(&d.socket, &["listen", "$.raw", "--count", "2", "--json"]);
    wait_until("the listener to bind", || {
        bus.stats().unwrap().bindings == 1
    });
    sender.announce("$.raw", vec![0xff, 0x00]).unwrap();
    let o = d.run(&["send", "$.raw", "x", "--urgent", "--all-or-fail", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = &json_lines(&stdout(&o))[0]["id"];
    let msgs = json_lines(&stdout(&listener.wait_with_output().unwrap()));
    assert_eq!(msgs[0]["data_b64"], "/wA=");
    assert!(msgs[0].get("data").is_none());
    assert_eq!(&msgs[1]["id"], id);
    assert_eq!(
        msgs[1]["flag_names"],
        serde_json::json!(["URGENT", "ALL_OR_FAIL"])
    );
    assert_eq!(msgs[1]["flags"], 0x208);
}

#[test]
fn reply_exec_and_echo() {
    let d = Daemon::start("exec", &[]);
    let bus = d.bus();
    let mut up = spawn(
        &d.socket,
        &["reply", "$.upper", "--exec", "tr a-z A-Z", "--count", "1"],
    );
    let mut echo = spawn(&d.socket, &["reply", "$.echo", "--echo", "--count", "1"]);
    wait_until("repliers", || bus.stats().unwrap().replier_bindings == 2);
    let o = d.run(&["call", "$.upper", "shout"]);
    assert_eq!(stdout(&o), "SHOUT\n", "{}", stderr(&o));
    let o = d.run(&["call", "$.echo", "same"]);
    assert_eq!(stdout(&o), "same\n");
    assert!(up.wait().unwrap().success());
    assert!(echo.wait().unwrap().success());
}

#[test]
fn errors_are_named_and_exit_nonzero() {
    let d = Daemon::start("errors", &[]);
    let o = d.run(&["call", "$.nobody", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("EADDRNOTAVAIL"), "{}", stderr(&o));
    let o = d.run(&["send", "$.bad..name"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("EBADMSG") && stderr(&o).contains("invalid message name"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&["listen", "$.a*"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("EBADMSG"));
    let o = d.run(&["stats", "--bus", "7"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a bus that does not exist is a bad value"
    );
    assert!(stderr(&o).contains("has only bus 0"), "{}", stderr(&o));
    let o = d.run(&["send", "$.x", "--all-or-fail", "--all-or-wait"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses conflicting flags");

    let dir = temp_dir("nowhere");
    let nowhere = dir.join("bus.sock");
    let o = run_with_socket(&nowhere, &["stats"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("no busbar daemon at {}", nowhere.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn call_with_synthetic_reply_exits_nonzero_and_monitor_sees_it() {
    let d = Daemon::start("synthetic", &[]);
    let bus = d.bus();
    let mut monitor = spawn(&d.socket, &["monitor", "--json"]);
    wait_for_monitor(&bus);
    // A replier that takes requests and never answers.
    let silent = bus.open().unwrap();
    silent.bind_replier("$.silent").unwrap();
    let mut call = spawn(&d.socket, &["call", "$.silent", "hello?"]);
    silent.recv().unwrap();
    drop(silent);
    let out = call.wait().unwrap();
    assert_eq!(out.code(), Some(3));
    let mut err = String::new();
    std::io::Read::read_to_string(call.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("$.KBUS.Replier.Ignored"), "{err}");

    // The monitor saw the request and the synthetic reply.
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    let mut names = Vec::new();
    while names.len() < 2 {
        let v: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        names.push(v["name"].as_str().unwrap().to_owned());
        if names.len() == 2 {
            assert_eq!(v["flag_names"], serde_json::json!(["SYNTHETIC"]));
        }
    }
    assert_eq!(names, ["$.silent", "$.KBUS.Replier.Ignored"]);
    monitor.kill().unwrap();
    monitor.wait().unwrap();
}

#[test]
fn daemon_lifecycle_sigterm_stale_socket_and_live_refusal() {
    let dir = temp_dir("life");
    let socket = dir.join("bus.sock");
    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let d = Daemon::start_at(dir.clone(), socket.clone(), &["--buses", "2"]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "user-only by default");
    assert!(d.bus().bus(busbar::BusId(1)).stats().is_ok());

    // A second daemon on the same socket refuses to start.
    let o = run_with_socket(&socket, &["daemon"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));

    // SIGTERM: a waiting client gets ESHUTDOWN, the socket file goes.
    let ep = d.bus().open().unwrap();
    ep.bind("$.x").unwrap();
    let waiter = std::thread::spawn(move || ep.recv());
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(waiter.join().unwrap().unwrap_err(), Errno::ESHUTDOWN);
    assert!(!socket.exists());
}

#[test]
fn config_file_sets_limits_and_rejects_unknown_keys() {
    let dir = temp_dir("config");
    let cfg = dir.join("busbar.toml");
    std::fs::write(
        &cfg,
        "buses = 3\ndefault_queue_limit = 7\nmax_message_size = 1000\nsocket_mode = \"0660\"\n",
    )
    .unwrap();
    let socket = dir.join("bus.sock");
    let d = Daemon::start_at(
        dir.clone(),
        socket.clone(),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o660
    );
    let bus = d.bus();
    let ep = bus.open().unwrap();
    assert_eq!(ep.stats().unwrap().queue_limit, 7);
    assert_eq!(bus.stats().unwrap().max_message_size, 1000);
    assert!(bus.bus(busbar::BusId(2)).stats().is_ok());
    assert_eq!(
        ep.announce("$.big", vec![0u8; 1000]).unwrap_err(),
        Errno::EMSGSIZE
    );
    assert_eq!(ep.id(), EndpointId(1));
    drop(d);

    let dir = temp_dir("config-bad");
    let cfg = dir.join("busbar.toml");
    std::fs::write(&cfg, "buses = 1\nsurprise = true\n").unwrap();
    let o = run_with_socket(
        &dir.join("bus.sock"),
        &["daemon", "--config", cfg.to_str().unwrap()],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a bad config file is a usage error"
    );
    assert!(stderr(&o).contains("surprise"), "{}", stderr(&o));
}

#[test]
fn help_is_complete() {
    let o = std::process::Command::new(exe())
        .arg("--help")
        .output()
        .unwrap();
    let h = stdout(&o);
    for cmd in [
        "daemon",
        "send",
        "call",
        "listen",
        "reply",
        "monitor",
        "stats",
        "names",
        "kbus",
        "bench",
        "metrics",
        "completions",
        "man",
    ] {
        assert!(h.contains(cmd), "--help lacks {cmd}");
    }
    for (cmd, flags) in [
        (
            "send",
            &[
                "--bus",
                "--urgent",
                "--all-or-fail",
                "--all-or-wait",
                "--json",
                "--socket",
            ][..],
        ),
        ("call", &["--timeout", "--json"]),
        ("listen", &["--count", "--json"]),
        ("reply", &["--echo", "--data", "--exec", "--count"]),
        ("daemon", &["--socket", "--buses", "--config"]),
    ] {
        let o = std::process::Command::new(exe())
            .args([cmd, "--help"])
            .output()
            .unwrap();
        for f in flags {
            assert!(stdout(&o).contains(f), "{cmd} --help lacks {f}");
        }
    }
    // `reply --help` says what a caller gets when a request cannot be answered.
    let o = std::process::Command::new(exe())
        .args(["reply", "--help"])
        .output()
        .unwrap();
    for says in ["exits with status 1", "$.KBUS.Replier.Ignored", "non-zero"] {
        assert!(stdout(&o).contains(says), "reply --help lacks {says:?}");
    }
    let _ = Duration::ZERO;
}

#[test]
/// A monitor sees messages sent by name (with their fds), never messages
/// to nodes nor node notices: those reach only their destinations.
fn monitor_never_sees_messages_to_nodes() {
    let d = Daemon::start("monitor-nodes", &[]);
    let bus = d.bus();
    let mut monitor = spawn(&d.socket, &["monitor", "--json"]);
    wait_for_monitor(&bus);
    let owner = bus.open().unwrap();
    let other = bus.open().unwrap();
    other.bind("$.offer").unwrap();
    let node = owner.create_node().unwrap();
    let fd = busbar_sys::memfd_with("monitor", b"x").unwrap();
    owner
        .send(
            busbar::Outgoing::announcement("$.offer", &b""[..])
                .carrying(vec![node])
                .with_fds(vec![fd]),
        )
        .unwrap();
    let h = other.recv_timeout(Some(PATIENCE)).unwrap().unwrap().handles[0];
    other
        .send_to_handles(&[h], "$.to.node", &b"hi"[..])
        .unwrap();
    owner.destroy_nodes(&[node]).unwrap();
    owner.announce("$.after", &b""[..]).unwrap();
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < 2 {
        seen.push(serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap());
    }
    assert_eq!(seen[0]["name"], "$.offer");
    assert_eq!(seen[0]["fds"], 1);
    assert_eq!(
        seen[1]["name"], "$.after",
        "a message to a node or a node notice reached the monitor"
    );
    monitor.kill().unwrap();
    monitor.wait().unwrap();
}

/// Waits for a child to exit, at most `limit`; kills it and fails if it
/// does not. Returns its status and stderr.
fn exit_within(mut child: std::process::Child, limit: Duration, what: &str) -> (i32, String) {
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still running after {limit:?}; its stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status.code().unwrap_or(-1), err)
}

/// How long a caller may wait for an answer from a replier that cannot
/// answer: generous, yet far from "forever".
const PROMPTLY: Duration = Duration::from_secs(20);

/// A reply larger than the bus's maximum message size cannot be sent: the
/// replier says so and stops, and the caller gets the bus's answer for it
/// at once instead of waiting forever.
#[test]
fn reply_too_big_answers_the_caller_promptly() {
    let d = Daemon::start("reply-too-big", &[]);
    let bus = d.bus();
    bus.set_max_message_size(1000).unwrap();
    let replier = spawn(
        &d.socket,
        &["reply", "$.big", "--exec", "head -c 5000 /dev/zero"],
    );
    wait_until("the replier to bind", || {
        bus.find_replier("$.big").unwrap().is_some()
    });
    let caller = spawn(&d.socket, &["call", "$.big", "--timeout", "20"]);
    let (code, err) = exit_within(caller, PROMPTLY + PROMPTLY, "busbar call");
    assert_eq!(code, 3, "the caller gets the bus's answer: {err}");
    assert!(err.contains("$.KBUS.Replier.Ignored"), "{err}");
    let (code, err) = exit_within(replier, PROMPTLY, "busbar reply");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("EMSGSIZE") && err.contains("5005") && err.contains("1000"),
        "says what happened, with the sizes: {err}"
    );
    assert!(err.contains("max_message_size"), "says what to do: {err}");
}

/// A failing `--exec` command is not an empty, successful reply: the
/// replier reports it and stops, and the caller gets the bus's answer.
#[test]
fn reply_exec_failure_answers_the_caller_promptly() {
    let d = Daemon::start("reply-exec-fails", &[]);
    let bus = d.bus();
    let replier = spawn(&d.socket, &["reply", "$.fails", "--exec", "exit 3"]);
    wait_until("the replier to bind", || {
        bus.find_replier("$.fails").unwrap().is_some()
    });
    let caller = spawn(&d.socket, &["call", "$.fails", "x", "--timeout", "20"]);
    let (code, err) = exit_within(caller, PROMPTLY + PROMPTLY, "busbar call");
    assert_eq!(code, 3, "not an empty success: {err}");
    assert!(err.contains("$.KBUS.Replier.Ignored"), "{err}");
    let (code, err) = exit_within(replier, PROMPTLY, "busbar reply");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exit 3") && err.contains("status 3"), "{err}");
}
