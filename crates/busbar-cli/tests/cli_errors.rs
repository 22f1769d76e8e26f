//! Errors that say what happened, with the path or value involved, and what
//! to do; exit statuses as documented (1 an operation failed, 2 a bad
//! command line or config); no panic or noise on a closed stdout or stderr.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

fn err_of(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(exe())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o.status.code(), stderr(&o))
}

#[test]
fn no_daemon_says_how_to_start_one() {
    let dir = temp_dir("nodaemon");
    let s = dir.join("none.sock");
    let (code, e) = err_of(&["call", "--socket", s.to_str().unwrap(), "$.a"]);
    assert_eq!(code, Some(1));
    assert!(
        e.contains(&format!("no busbar daemon at {}", s.display())),
        "{e}"
    );
    assert!(
        e.contains("busbar daemon --socket") && e.contains("foreground"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_socket_path_too_long_is_named() {
    let long = format!("/tmp/{}/bus.sock", "x".repeat(120));
    for cmd in [
        &["call", "--socket", &long, "$.a"][..],
        &["daemon", "--socket", &long],
    ] {
        let (code, e) = err_of(cmd);
        assert_eq!(code, Some(2), "{e}");
        assert!(
            e.contains(&format!("is {} bytes", long.len())) && e.contains("at most 107"),
            "{e}"
        );
        assert!(!e.contains("ECONNRESET"), "{e}");
    }
}

#[test]
fn already_running_says_so_plainly_and_logs_nothing_first() {
    let d = Daemon::start("twice", &[]);
    let o = Command::new(exe())
        .args(["daemon", "--socket"])
        .arg(&d.socket)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        e.contains(&format!(
            "a busbar daemon is already running at {}",
            d.socket.display()
        )),
        "{e}"
    );
    assert!(e.contains("stop that daemon first"), "{e}");
    assert!(!e.contains("(EIO)") && !e.contains("I/O error"), "{e}");
    assert!(
        !e.contains("bus 0 created"),
        "nothing created before refusing: {e}"
    );
}

#[test]
fn bad_names_say_the_rules_and_big_messages_the_limit() {
    let d = Daemon::start("names", &[]);
    for bad in ["$.a-b", "$.a_b", "$.café"] {
        let o = d.run(&["send", bad]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            e.contains("EBADMSG") && e.contains("letters and digits"),
            "{e}"
        );
    }
    let big = d.dir.join("big");
    std::fs::write(&big, vec![0u8; (64 << 20) + 1]).unwrap();
    let o = d.run(&["send", "$.big", "--file", big.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        e.contains("EMSGSIZE")
            && e.contains(&format!(
                "{} bytes (name + data)",
                (64 << 20) + 1 + "$.big".len()
            ))
            && e.contains("maximum is 67108864 bytes"),
        "{e}"
    );
}

#[test]
fn bad_command_lines_exit_2() {
    let d = Daemon::start("usage", &[]);
    for t in ["inf", "NaN", "1e30", "1e400", "soon"] {
        let o = d.run(&["call", "$.a", "--timeout", t]);
        assert_eq!(o.status.code(), Some(2), "--timeout {t}: {}", stderr(&o));
        assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
    }
    let o = d.run(&["send", "--bus", "99", "$.a"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("--bus 99") && e.contains("has only bus 0"),
        "{e}"
    );
    // One of --echo, --data, --exec: none of them alone is "required".
    let o = d.run(&["reply", "$.a"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(e.contains("<--echo|--data <D>|--exec <CMD>>"), "{e}");
}

#[test]
fn bad_daemon_configs_exit_2_with_the_setting() {
    let dir = temp_dir("badcfg");
    let socket = dir.join("bus.sock");
    let (code, e) = err_of(&[
        "daemon",
        "--socket",
        socket.to_str().unwrap(),
        "--buses",
        "100000",
    ]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("buses = 100000") && e.contains("at most 1024"),
        "{e}"
    );
    assert!(!e.contains("EIO"), "{e}");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "buses = 0\n").unwrap();
    let (code, e) = err_of(&[
        "daemon",
        "--socket",
        socket.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("buses = 0") && e.contains("at least one bus"),
        "{e}"
    );
    assert!(!socket.exists());
    let (_, help) = {
        let o = Command::new(exe())
            .args(["daemon", "--help"])
            .output()
            .unwrap();
        (o.status.code(), stdout(&o))
    };
    for key in [
        "quota_messages",
        "quota_bytes",
        "quota_handles",
        "quota_fds",
        "max_inline_data",
    ] {
        assert!(help.contains(key), "daemon --help lists {key}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `busbar listen | head -1`: when the reader goes, busbar ends quietly
/// with status 0, as other Unix tools in a pipe do.
#[test]
fn a_closed_stdout_ends_quietly() {
    let d = Daemon::start("pipe", &[]);
    let bus = d.bus();
    let mut l = spawn(&d.socket, &["listen", "$.p"]);
    wait_until("the listener", || bus.stats().unwrap().bindings == 1);
    let s = bus.open().unwrap();
    s.announce("$.p", "first").unwrap();
    let mut out = BufReader::new(l.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("first"));
    drop(out); // the reader goes
    // Announce until the listener notices. (A child forked by another test
    // thread can hold a copy of the pipe's read end until it execs, so the
    // first writes after the drop may still succeed.)
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut n = 0u64;
    while l.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "the listener never noticed"
        );
        s.announce("$.p", format!("more {n}")).unwrap();
        n += 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = l.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// A closed stderr: errors cannot be printed, but busbar exits with its
/// documented status instead of panicking (101).
#[test]
fn a_closed_stderr_never_panics() {
    let d = Daemon::start("noerr", &[]);
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" send --socket "$1" '$.a-b' 2>&-"#)
        .arg(exe())
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}
