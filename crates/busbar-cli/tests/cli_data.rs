//! Binary-safe data on the command line: `send`/`call` from an argument of
//! any bytes, from stdin (`-`) and from `--file`; `listen --raw` and
//! `call --raw` write data byte for byte.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

use common::*;

/// Every byte value, and a little more.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// `busbar ARGS --socket S` with `input` on stdin.
fn run_with_stdin(d: &Daemon, args: &[&OsStr], input: &[u8]) -> Output {
    let mut c = Command::new(exe())
        .arg(args[0])
        .arg("--socket")
        .arg(&d.socket)
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A `listen --raw --count 1` on `name`, bound before this returns.
fn raw_listener(d: &Daemon, name: &str) -> std::process::Child {
    let bus = d.bus();
    let before = bus.stats().unwrap().bindings;
    let l = spawn(&d.socket, &["listen", name, "--raw", "--count", "1"]);
    wait_until("the listener to bind", || {
        bus.stats().unwrap().bindings > before
    });
    l
}

#[test]
fn send_from_stdin_file_and_a_non_utf8_argument_reach_listen_raw() {
    let d = Daemon::start("data", &[]);
    // stdin
    let data = binary(70_000);
    let l = raw_listener(&d, "$.bin");
    let o = run_with_stdin(&d, &[os("send"), os("$.bin"), os("-")], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(l.wait_with_output().unwrap().stdout, data);
    // --file, 3 MiB (it travels as a sealed memfd)
    let data = binary(3 << 20);
    let path = d.dir.join("frame.bin");
    std::fs::write(&path, &data).unwrap();
    let l = raw_listener(&d, "$.bin");
    let o = d.run(&["send", "$.bin", "--file", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(l.wait_with_output().unwrap().stdout, data);
    // an argument that is not UTF-8
    let arg = OsStr::from_bytes(b"\xff\xfe");
    let l = raw_listener(&d, "$.bin");
    let o = run_with_stdin(&d, &[os("send"), os("$.bin"), arg], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(l.wait_with_output().unwrap().stdout, b"\xff\xfe");
}

#[test]
fn call_raw_writes_the_reply_exactly() {
    let d = Daemon::start("callraw", &[]);
    let bus = d.bus();
    let mut echo = spawn(&d.socket, &["reply", "$.echo", "--echo", "--count", "2"]);
    wait_until("the replier", || bus.stats().unwrap().replier_bindings == 1);
    let data = binary(100_000);
    let o = run_with_stdin(&d, &[os("call"), os("$.echo"), os("-"), os("--raw")], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, data, "no newline added, nothing changed");
    // Without --raw, text gets its newline as before.
    let o = d.run(&["call", "$.echo", "text"]);
    assert_eq!(stdout(&o), "text\n");
    assert!(echo.wait().unwrap().success());
}

#[test]
fn bad_data_arguments_say_what_is_wrong() {
    let d = Daemon::start("baddata", &[]);
    let missing = d.dir.join("no-such-file");
    let o = d.run(&["send", "$.x", "--file", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read --file") && stderr(&o).contains("no-such-file"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&["send", "$.x", "data", "--file", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = d.run(&["listen", "$.x", "--raw", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A 100 MiB file through `send --file` and `listen --raw --count 1 > out`
/// arrives identical (a daemon allowing messages that large; the data
/// travels as a sealed memfd).
#[test]
fn a_100_mib_file_round_trips() {
    let dir = temp_dir("data100");
    let cfg = dir.join("busbar.toml");
    std::fs::write(
        &cfg,
        "absolute_max_message_size = 134217728\nmax_message_size = 134217728\n",
    )
    .unwrap();
    let socket = dir.join("bus.sock");
    let d = Daemon::start_at(dir, socket, &["--config", cfg.to_str().unwrap()]);
    let data = binary(100 << 20);
    let path = d.dir.join("in.bin");
    std::fs::write(&path, &data).unwrap();
    let out_path = d.dir.join("out.bin");
    let out = std::fs::File::create(&out_path).unwrap();
    let bus = d.bus();
    let mut l = Command::new(exe())
        .args(["listen", "--socket"])
        .arg(&d.socket)
        .args(["$.file", "--raw", "--count", "1"])
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .unwrap();
    wait_until("the listener to bind", || {
        bus.stats().unwrap().bindings == 1
    });
    let o = d.run(&["send", "$.file", "--file", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(l.wait().unwrap().success());
    let got = std::fs::read(&out_path).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "identical");
}

/// `busbar bench` at a large size works with the default configuration
/// (its own daemon): every byte written and checked, nothing lost.
#[test]
fn bench_at_one_mib_runs_with_the_default_configuration() {
    let o = Command::new(exe())
        .args([
            "bench",
            "--size",
            "1048576",
            "--messages",
            "24",
            "--rounds",
            "10",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "memcpy_gb_per_s",
        "raw_stream_gb_per_s",
        "bus_1_listener_gb_per_s",
        "bus_4_listeners_gb_per_s",
    ] {
        assert!(v[key].as_f64().is_some_and(|r| r > 0.0), "{key}: {v}");
    }
}
