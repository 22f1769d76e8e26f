//! The C API from C: the library is installed with `scripts/install-c.sh`
//! into a temporary prefix, the C test programs (`tests/c/`) and the
//! examples (`examples/c/`) are compiled with the system `cc` through
//! `pkg-config`, and run on both transports (in-process, and a real
//! `busbar daemon`), also under valgrind.
//!
//! Needs the workspace built first (`./scripts/test.sh` does it): the
//! library and the `busbar` binary beside this test's target directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// target/<profile>, where cargo put the library and the `busbar` binary.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A fresh directory (0700), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "busbar-c-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&d)
            .unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The library installed once per test run into a prefix under cargo's
/// scratch directory for tests (not /tmp: a static is never dropped, so
/// the prefix must not need removing), as a user would install it.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let target = target_dir();
        if !target.join("libbusbar_c.so").is_file() || !target.join("busbar").is_file() {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-p", "busbar-c", "-p", "busbar-cli"]);
            if target.ends_with("release") {
                cargo.arg("--release");
            }
            assert!(cargo.status().unwrap().success(), "cargo build failed");
        }
        // One per target directory, replaced by each run.
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-prefix");
        let _ = std::fs::remove_dir_all(&d);
        let profile = target.file_name().unwrap().to_str().unwrap().to_owned();
        let o = Command::new(Path::new(MANIFEST).join("../../scripts/install-c.sh"))
            .arg(&d)
            .env("BUSBAR_NO_BUILD", "1")
            .env("BUSBAR_PROFILE", profile)
            .env("CARGO_TARGET_DIR", target.parent().unwrap())
            .output()
            .unwrap();
        assert_ok("scripts/install-c.sh", &o);
        d
    })
}

fn pkg_config() -> Vec<String> {
    let o = Command::new("pkg-config")
        .args(["--cflags", "--libs", "busbar"])
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .expect("pkg-config is needed");
    assert_ok("pkg-config --cflags --libs busbar", &o);
    String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn assert_ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Compiles `src` with `cc -std=c11 -Wall -Wextra -Werror -pedantic` against
/// the installed library (`pkg-config`), into `dir`.
/// Compiles and links a C program from `srcs` (named after the first).
fn compile(dir: &Path, srcs: &[PathBuf]) -> PathBuf {
    let out = dir.join(srcs[0].file_stem().unwrap());
    let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-pthread",
        ])
        .arg("-o")
        .arg(&out)
        .args(srcs)
        .args(pkg_config())
        .arg(format!("-Wl,-rpath,{}", prefix().join("lib").display()))
        .output()
        .unwrap();
    assert_ok(&format!("compiling {}", srcs[0].display()), &o);
    out
}

fn test_source(name: &str) -> PathBuf {
    Path::new(MANIFEST).join("tests/c").join(name)
}

/// The C API test: `api.c` (its `main`) and its parts, `api_*.c`.
fn api_sources() -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("tests/c"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("api_") && n.ends_with(".c"))
        })
        .collect();
    parts.sort();
    assert!(parts.len() >= 2, "the C API test's parts are missing");
    let mut srcs = vec![test_source("api.c")];
    srcs.extend(parts);
    srcs
}

/// A `busbar daemon` on a private socket, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    fn start() -> Self {
        let dir = TempDir::new("daemon");
        let socket = dir.0.join("bus.sock");
        let mut child = Command::new(target_dir().join("busbar"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("busbar daemon listening") => break,
                Some(Ok(_)) => continue,
                _ => panic!("daemon exited before listening"),
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn valgrind(prog: &Path, args: &[&Path]) -> Output {
    Command::new("valgrind")
        .args(["--leak-check=full", "--error-exitcode=1", "--quiet"])
        .arg(prog)
        .args(args)
        .output()
        .expect("valgrind is needed (scripts/test.sh installs it)")
}

#[test]
fn header_compiles_as_cxx() {
    let o = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
        .args([
            "-x",
            "c++",
            "-std=c++17",
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg(format!("-I{}", prefix().join("include").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"#include <busbar.h>\nint main() { return busbar_strerror(-22) == nullptr; }\n",
            )?;
            c.wait_with_output()
        })
        .unwrap();
    assert_ok("c++ -fsyntax-only busbar.h", &o);
}

#[test]
fn every_function_in_process() {
    let d = TempDir::new("api");
    let api = compile(&d.0, &api_sources());
    assert_ok(
        "api in-process",
        &Command::new(&api).arg("in-process").output().unwrap(),
    );
}

/// The static library works too (no libbusbar.so at run time).
#[test]
fn every_function_linked_statically() {
    let d = TempDir::new("static");
    let out = d.0.join("api-static");
    let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-pthread",
        ])
        .arg(format!("-I{}", prefix().join("include").display()))
        .arg("-o")
        .arg(&out)
        .args(api_sources())
        .arg(prefix().join("lib/libbusbar.a"))
        .args(["-ldl", "-lm"])
        .output()
        .unwrap();
    assert_ok("linking api.c with libbusbar.a", &o);
    let ldd = Command::new("ldd").arg(&out).output().unwrap();
    assert!(!String::from_utf8_lossy(&ldd.stdout).contains("libbusbar"));
    assert_ok(
        "api (static) in-process",
        &Command::new(&out).arg("in-process").output().unwrap(),
    );
}

#[test]
fn every_function_through_a_daemon() {
    let d = TempDir::new("api");
    let api = compile(&d.0, &api_sources());
    let daemon = Daemon::start();
    assert_ok(
        "api via daemon",
        &Command::new(&api).arg(&daemon.socket).output().unwrap(),
    );
}

#[test]
fn no_leaks_under_valgrind_on_both_transports() {
    let d = TempDir::new("valgrind");
    let api = compile(&d.0, &api_sources());
    assert_ok(
        "valgrind api in-process",
        &valgrind(&api, &[Path::new("in-process")]),
    );
    let daemon = Daemon::start();
    assert_ok(
        "valgrind api via daemon",
        &valgrind(&api, &[&daemon.socket]),
    );
}

/// The daemon is killed while a C program waits in `busbar_recv`: the
/// call fails (`-ECONNRESET`), later calls fail, and everything is freed,
/// under valgrind: no leak, no invalid access.
#[test]
fn daemon_gone_mid_call_under_valgrind() {
    let d = TempDir::new("gone");
    let gone = compile(&d.0, &[test_source("gone.c")]);
    let mut daemon = Daemon::start();
    let mut child = Command::new("valgrind")
        .args(["--leak-check=full", "--error-exitcode=1", "--quiet"])
        .arg(&gone)
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("valgrind is needed (scripts/test.sh installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{}: {rest:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two C processes through a daemon: a call, then the replier is killed
/// with SIGKILL holding a request it took, and the requester gets
/// `$.KBUS.Replier.Ignored`.
#[test]
fn two_processes_and_a_killed_replier() {
    let d = TempDir::new("pair");
    let pair = compile(&d.0, &[test_source("pair.c")]);
    let daemon = Daemon::start();
    let name = "$.c.pair";
    let mut replier = Command::new(&pair)
        .arg(&daemon.socket)
        .args(["replier", name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rl = BufReader::new(replier.stdout.take().unwrap()).lines();
    assert_eq!(rl.next().unwrap().unwrap(), "ready");
    let mut requester = Command::new(&pair)
        .arg(&daemon.socket)
        .args(["requester", name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ql = BufReader::new(requester.stdout.take().unwrap()).lines();
    assert_eq!(ql.next().unwrap().unwrap(), "ok");
    assert_eq!(ql.next().unwrap().unwrap(), "sent");
    let st = Command::new("kill")
        .args(["-KILL", &replier.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    replier.wait().unwrap();
    let rest: Vec<String> = ql.map_while(Result::ok).collect();
    let status = requester.wait().unwrap();
    assert!(status.success(), "requester: {status}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("$.KBUS.Replier.Ignored")),
        "{rest:?}"
    );
}

/// The examples build with their Makefile through pkg-config, and the
/// requester gets the replier's answer.
#[test]
fn examples_build_and_run() {
    let d = TempDir::new("examples");
    let examples = Path::new(MANIFEST).join("../../examples/c");
    let o = Command::new("make")
        .arg("-C")
        .arg(&examples)
        .arg(format!("OUT={}", d.0.display()))
        .arg(format!(
            "LDFLAGS=-Wl,-rpath,{}",
            prefix().join("lib").display()
        ))
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .unwrap();
    assert_ok("make -C examples/c", &o);
    let daemon = Daemon::start();
    let mut replier = Command::new(d.0.join("replier"))
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rl = BufReader::new(replier.stdout.take().unwrap()).lines();
    rl.next().unwrap().unwrap(); // its "ready" line
    let o = Command::new(d.0.join("requester"))
        .arg(&daemon.socket)
        .output()
        .unwrap();
    let _ = replier.kill();
    let _ = replier.wait();
    assert_ok("examples/c/requester", &o);
}

/// The README's C example compiles as it stands.
#[test]
fn readme_example_compiles() {
    let readme = std::fs::read_to_string(Path::new(MANIFEST).join("../../README.md")).unwrap();
    let start = readme.find("```c\n").expect("a C example in the README") + 5;
    let len = readme[start..].find("```").unwrap();
    let d = TempDir::new("readme");
    let src = d.0.join("readme_example.c");
    std::fs::write(&src, &readme[start..start + len]).unwrap();
    compile(&d.0, &[src]);
}
