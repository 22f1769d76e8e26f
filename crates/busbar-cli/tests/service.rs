//! busbar as a service, without a running systemd: socket activation (the
//! listening socket passed as fd 3 with `LISTEN_FDS`/`LISTEN_PID`, by a
//! small `sh` launcher standing in for systemd), readiness and stopping
//! notifications to a test `NOTIFY_SOCKET`, a client that connects before
//! the daemon has started; and the install step (binary, library, units
//! naming the installed binary, manual pages, completions) into a prefix
//! under cargo's test scratch directory, with the installed binary used.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The notifications a daemon sends, one datagram at a time.
fn next_notification(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn socket_activation_and_notifications() {
    let dir = temp_dir("activate");
    let socket = dir.join("bus.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(PATIENCE)).unwrap();

    // A client connects before the daemon exists: the socket already
    // listens, so its connection waits in the backlog.
    let s = socket.clone();
    let early = std::thread::spawn(move || {
        let bus = busbar::Bus::connect(&s).unwrap();
        let ep = bus.open().unwrap();
        ep.bind("$.early").unwrap();
        bus.stats().unwrap().bindings
    });

    // systemd's part: the listening socket as fd 3, LISTEN_PID the
    // daemon's own pid (the shell's, which `exec` keeps).
    let mut daemon = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<&0 0</dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" daemon"#)
        .arg(exe())
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NOTIFY_SOCKET", &notify_path)
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    let ready = next_notification(&notify);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=serving 1 bus(es) on {}", socket.display())),
        "{ready:?}"
    );
    assert_eq!(early.join().unwrap(), 1, "the early client was served");
    assert_eq!(
        run_with_socket(&socket, &["send", "$.early", "hi"])
            .status
            .code(),
        Some(0)
    );
    signal(daemon.id(), "TERM");
    let stopping = next_notification(&notify);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    assert!(daemon.wait().unwrap().success());
    let log: Vec<String> = BufReader::new(daemon.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(log.iter().any(|l| l.contains("activated=true")), "{log:?}");
    assert!(
        socket.exists(),
        "the passed socket is its owner's to remove, not the daemon's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `LISTEN_PID` naming another process: the fds are not ours, and the
/// daemon binds its own socket as usual.
#[test]
fn socket_activation_for_another_process_is_ignored() {
    let dir = temp_dir("notours");
    let socket = dir.join("bus.sock");
    let (mut daemon, line) = start_daemon(
        Path::new(exe()),
        &socket,
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
    );
    assert!(line.contains("activated=false"), "{line}");
    assert!(run_with_socket(&socket, &["send", "$.x"]).status.success());
    signal(daemon.id(), "TERM");
    assert!(daemon.wait().unwrap().success());
    assert!(!socket.exists(), "its own socket, removed on the way out");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `BIN daemon --socket SOCKET` with `env`, once it listens; and its
/// "listening" log line.
fn start_daemon(bin: &Path, socket: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut daemon = Command::new(bin)
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.contains("busbar daemon listening")))
        .expect("the daemon starts");
    // Keep reading its log, so it never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (daemon, line)
}

fn installed(prefix: &Path, rel: &str) -> String {
    std::fs::read_to_string(prefix.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", prefix.join(rel).display()))
}

/// `scripts/install.sh PREFIX` puts everything in place, and the installed
/// binary works.
#[test]
fn install_into_a_prefix() {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("install-prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The tests run from a debug build: install that.
    let profile = Path::new(exe())
        .parent()
        .and_then(Path::file_name)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let target = Path::new(exe())
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let o = Command::new("bash")
        .arg(repo.join("scripts/install.sh"))
        .arg(&prefix)
        .env("BUSBAR_NO_BUILD", "1")
        .env("BUSBAR_PROFILE", &profile)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bin = prefix.join("bin/busbar");
    // Units name the installed binary and are notify services.
    for kind in ["system", "user"] {
        let service = installed(&prefix, &format!("lib/systemd/{kind}/busbar.service"));
        assert!(
            service.contains(&format!("ExecStart={} daemon", bin.display())),
            "{service}"
        );
        assert!(service.contains("Type=notify"));
        let socket = installed(&prefix, &format!("lib/systemd/{kind}/busbar.socket"));
        assert!(socket.contains("ListenStream="));
    }
    if let Ok(v) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(prefix.join("lib/systemd/system/busbar.socket"))
        .arg(prefix.join("lib/systemd/system/busbar.service"))
        .output()
    {
        // Where the tool exists: the system units are valid.
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
    // Manual pages: busbar(1) and one per visible command.
    let pages: Vec<String> = std::fs::read_dir(prefix.join("share/man/man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "busbar.1",
        "busbar-daemon.1",
        "busbar-send.1",
        "busbar-call.1",
        "busbar-kbus.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(installed(&prefix, "share/man/man1/busbar-daemon.1").contains(".TH"));
    // Completions for bash, zsh and fish.
    assert!(installed(&prefix, "share/bash-completion/completions/busbar").contains("_busbar"));
    assert!(installed(&prefix, "share/zsh/site-functions/_busbar").contains("#compdef busbar"));
    assert!(
        installed(&prefix, "share/fish/vendor_completions.d/busbar.fish")
            .contains("complete -c busbar")
    );
    assert!(prefix.join("lib/libbusbar_kbus.so").exists());
    // The installed binary runs a daemon and talks to it.
    let dir = temp_dir("installed");
    let socket = dir.join("bus.sock");
    let (mut daemon, _) = start_daemon(&bin, &socket, &[]);
    let o = Command::new(&bin)
        .args(["send", "--socket"])
        .arg(&socket)
        .args(["$.installed", "x"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    signal(daemon.id(), "TERM");
    assert!(daemon.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&prefix).unwrap();
}
