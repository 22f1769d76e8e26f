//! KBUS programs on busbar, against a real daemon: C programs (compiled
//! here with the system `cc`) and a Python script that use only `open`,
//! `read`, `write`, `ioctl`, `poll`/`select`/`epoll` on `/dev/kbusN`, run
//! under `busbar kbus --` (sources in `tests/kbus/`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;

const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kbus");

/// The preload library, beside the `busbar` binary. `cargo test` does not
/// build cdylibs, so it is built here if missing (once per run).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(exe()).parent().unwrap();
        let lib = dir.join("libbusbar_kbus.so");
        if !lib.is_file() {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-p", "busbar-kbus"]);
            if dir.ends_with("release") {
                cargo.arg("--release");
            }
            let st = cargo.status().unwrap();
            assert!(st.success(), "cargo build -p busbar-kbus failed");
        }
        assert!(lib.is_file(), "{} missing", lib.display());
        lib
    })
}

/// Compiles `tests/kbus/NAME.c` into `dir` with the system C compiler.
fn compile(dir: &Path, name: &str) -> PathBuf {
    compile_from(dir, Path::new(SOURCES), name)
}

/// Compiles `SRC/NAME.c` into `dir` with the system C compiler.
fn compile_from(dir: &Path, src: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let r = Command::new(&cc)
        .args([
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
            "-pthread",
            "-I",
        ])
        .arg(SOURCES)
        .arg("-o")
        .arg(&out)
        .arg(src.join(format!("{name}.c")))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        r.status.success(),
        "compiling {name}.c failed:\n{}",
        stderr(&r)
    );
    out
}

/// `busbar kbus --socket S -- PROGRAM ARGS...` with the library found
/// beside the binary.
fn kbus_command(d: &Daemon, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe());
    c.arg("kbus")
        .arg("--socket")
        .arg(&d.socket)
        .arg("--")
        .arg(program)
        .args(args)
        .env("BUSBAR_KBUS_LIBRARY", library())
        .stdin(Stdio::null());
    c
}

#[track_caller]
fn assert_passed(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

fn daemon(tag: &str) -> Daemon {
    Daemon::start(tag, &["--buses", "3"])
}

#[test]
fn every_ioctl_and_errno_from_c() {
    let d = daemon("kbus-abi");
    let abi = compile(&d.dir, "abi");
    let o = kbus_command(&d, &abi, &[]).output().unwrap();
    assert_passed("abi.c", &o);
}

#[test]
fn readiness_and_many_ksocks_from_c() {
    let d = daemon("kbus-ready");
    let prog = compile(&d.dir, "readiness");
    let o = kbus_command(&d, &prog, &[]).output().unwrap();
    assert_passed("readiness.c", &o);
}

#[test]
fn careless_and_hostile_use_from_c() {
    let d = daemon("kbus-robust");
    let prog = compile(&d.dir, "robust");
    let o = kbus_command(&d, &prog, &[]).output().unwrap();
    assert_passed("robust.c", &o);
}

/// A daemon killed without a Goodbye: a Ksock waiting in `poll` reports
/// `POLLERR` at once, without spinning until its timeout.
#[test]
fn daemon_killed_poll_reports_error() {
    let d = daemon("kbus-killed");
    let script = "import os, select, sys, time, resource\n\
                  k = os.open('/dev/kbus0', os.O_RDWR)\n\
                  print('ready', flush=True)\n\
                  sys.stdin.readline()\n\
                  p = select.poll(); p.register(k, select.POLLIN)\n\
                  t0 = time.monotonic(); c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime\n\
                  ev = p.poll(20000)\n\
                  took = time.monotonic() - t0\n\
                  cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0\n\
                  print(ev, took, cpu, flush=True)\n\
                  ok = ev and ev[0][1] & select.POLLERR and took < 10 and cpu < 2\n\
                  sys.exit(0 if ok else 1)\n";
    let mut py = kbus_command(&d, Path::new("python3"), &["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    signal(d.pid(), "KILL");
    {
        use std::io::Write;
        py.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = py.wait().unwrap();
    assert!(status.success(), "{status}: {rest:?}");
}

#[test]
fn python_with_os_fcntl_select() {
    let d = daemon("kbus-py");
    let script = Path::new(SOURCES).join("test_device.py");
    let o = kbus_command(&d, Path::new("python3"), &[script.to_str().unwrap()])
        .output()
        .unwrap();
    assert_passed("test_device.py", &o);
}

/// A requester and a replier in two processes; the replier is killed with
/// SIGKILL while the request sits unread in its queue: the requester still
/// reads `$.KBUS.Replier.GoneAway` through `read`.
#[test]
fn replier_killed_requester_reads_gone_away() {
    let d = daemon("kbus-kill");
    let pair = compile(&d.dir, "pair");
    let mut replier = kbus_command(&d, &pair, &["replier", "$.Kill.Me"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(replier.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("ready "), "{ready}");
    // The binding shows in `busbar names`, with the program's name.
    let names = stdout(&d.run(&["names"]));
    assert!(
        names.contains("$.Kill.Me") && names.contains("replier") && names.contains("pair"),
        "{names}"
    );
    let mut requester = kbus_command(&d, &pair, &["requester", "$.Kill.Me"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rlines = BufReader::new(requester.stdout.take().unwrap()).lines();
    let sent = rlines.next().unwrap().unwrap();
    assert!(sent.starts_with("sent "), "{sent}");
    signal(replier.id(), "KILL");
    replier.wait().unwrap();
    let rest: Vec<String> = rlines.map_while(Result::ok).collect();
    let status = requester.wait().unwrap();
    assert!(status.success(), "requester: {status}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("$.KBUS.Replier.GoneAway")),
        "{rest:?}"
    );
}

/// Thousands of request/reply rounds between two processes, each waiting
/// in `poll` (the benchmark program, here as a test): every wake-up
/// arrives. (A Wake consumed by a second look at the Ksock once stalled
/// this after a few thousand rounds.)
#[test]
fn request_reply_rounds_between_processes() {
    let d = daemon("kbus-pingpong");
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../busbar-kbus/bench");
    let prog = compile_from(&d.dir, &bench, "pingpong");
    let o = kbus_command(&d, &prog, &["5000"]).output().unwrap();
    assert_passed("pingpong 5000", &o);
    assert!(stdout(&o).contains("KBUS request/reply"), "{}", stdout(&o));
}

/// What `busbar names` and `busbar stats --json` show of a KBUS program's
/// bindings.
#[test]
fn names_and_stats_list_bindings() {
    let d = daemon("kbus-names");
    let pair = compile(&d.dir, "pair");
    let mut replier = kbus_command(&d, &pair, &["replier", "$.Listed"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(replier.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let id: u32 = ready.trim_start_matches("ready ").parse().unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&d.run(&["names", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["name"], "$.Listed");
    assert_eq!(json[0]["kind"], "replier");
    assert_eq!(json[0]["endpoint"], id);
    assert_eq!(json[0]["pid"], replier.id());
    let stats: serde_json::Value =
        serde_json::from_slice(&d.run(&["stats", "--json"]).stdout).unwrap();
    let ep = stats["endpoint_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .expect("the replier's endpoint");
    assert_eq!(ep["binding_names"][0]["name"], "$.Listed");
    assert_eq!(ep["kbus_compat"], true);
    // Another bus has no bindings.
    assert_eq!(
        stdout(&d.run(&["names", "--bus", "1", "--json"])).trim(),
        "[]"
    );
    signal(replier.id(), "KILL");
    replier.wait().unwrap();
}

/// With no daemon at the socket, `/dev/kbus0` does not exist.
#[test]
fn no_daemon_no_device() {
    let dir = temp_dir("kbus-none");
    let o = Command::new(exe())
        .args(["kbus", "--socket"])
        .arg(dir.join("nobody.sock"))
        .args([
            "--",
            "python3",
            "-c",
            "import os, errno\n\
             assert not os.path.exists('/dev/kbus0')\n\
             try:\n    open('/dev/kbus0', 'rb', buffering=0)\n    raise SystemExit('opened')\n\
             except FileNotFoundError:\n    pass\n",
        ])
        .env("BUSBAR_KBUS_LIBRARY", library())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_passed("no daemon", &o);
}

/// `busbar kbus` refuses to run a program without the library rather than
/// let the loader skip it.
#[test]
fn kbus_command_needs_the_library() {
    let o = Command::new(exe())
        .args(["kbus", "--", "true"])
        .env("BUSBAR_KBUS_LIBRARY", "/nonexistent/libbusbar_kbus.so")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a file"), "{}", stderr(&o));
}
