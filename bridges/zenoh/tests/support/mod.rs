//! Daemons in this test process, bridges as child processes, on a private
//! directory removed at the end (nothing is left in /tmp).
//!
//! Waiting is by polling with generous deadlines, never by sleeping a fixed
//! time: a bridge is ready when the other bus's state shows its work.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use busbar::{Bus, Endpoint, Message};
use busbar_daemon::{Daemon, DaemonConfig, ShutdownHandle};

/// How long anything may take on a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A private directory for one test.
#[derive(Debug)]
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/bbz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon in a thread of this process.
pub struct TestDaemon {
    pub socket: PathBuf,
    stop: ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDaemon {
    pub fn start(dir: &Dir, name: &str) -> Self {
        let socket = dir.path(&format!("{name}.sock"));
        let d = Daemon::bind(DaemonConfig::new(socket.clone())).unwrap();
        let stop = d.shutdown_handle().unwrap();
        let thread = Some(std::thread::spawn(move || d.run().unwrap()));
        Self {
            socket,
            stop,
            thread,
        }
    }

    pub fn bus(&self) -> Bus {
        Bus::connect(&self.socket).unwrap()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A bridge process.
pub struct TestBridge {
    pub network: u32,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl TestBridge {
    /// Starts `busbar-zenoh` for `daemon` with network id `network` and
    /// the extra arguments (endpoints, namespace, ...).
    pub fn start(dir: &Dir, daemon: &TestDaemon, network: u32, extra: &[&str]) -> Self {
        let mut args = vec![
            "--socket".to_string(),
            daemon.socket.display().to_string(),
            "--network-id".into(),
            network.to_string(),
            "--rescan".into(),
            "20".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut b = Self {
            network,
            args,
            log: dir.path(&format!("bridge-{network}.log")),
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_busbar-zenoh"))
            .args(&self.args)
            .env("RUST_LOG", "busbar_zenoh=debug,zenoh=error")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Kills it with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stops it with SIGTERM; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_child(&c);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait_child(&mut c)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log has a line containing `text`.
    pub fn wait_log(&self, text: &str) {
        let end = Instant::now() + PATIENCE;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < end,
                "bridge {} never logged {text:?}; log:\n{}",
                self.network,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_child(c: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < end, "a child did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Zenoh endpoint on a unix socket in `dir`.
pub fn zsock(dir: &Dir, name: &str) -> String {
    format!("unixsock-stream/{}", dir.path(name).display())
}

/// The next message within [`PATIENCE`].
pub fn next(ep: &Endpoint) -> Message {
    ep.recv_timeout(Some(PATIENCE))
        .unwrap()
        .expect("a message within the patience")
}

/// No message for a short while (for "nothing more arrives" checks made
/// after a later message has already been seen).
pub fn assert_quiet(ep: &Endpoint, what: &str) {
    if let Some(m) = ep.recv_timeout(Some(Duration::from_millis(300))).unwrap() {
        panic!("{what}: unexpected {} {:?}", m.name, m.data);
    }
}

/// Sends `name` from `from` until `to` gets one (subscriptions cross
/// machines asynchronously), then a marker, and drains `to` up to the
/// marker: afterwards every announcement of that name crosses.
pub fn until_crossing(from: &Endpoint, to: &Endpoint, name: &str) {
    let end = Instant::now() + PATIENCE;
    let mut tries = 0u32;
    loop {
        from.announce(name, format!("probe {tries}")).unwrap();
        tries += 1;
        if let Some(m) = to.recv_timeout(Some(Duration::from_millis(50))).unwrap() {
            assert_eq!(&*m.name, name);
            break;
        }
        assert!(Instant::now() < end, "{name} never crossed");
    }
    from.announce(name, "marker").unwrap();
    loop {
        let m = next(to);
        if &m.data[..] == b"marker" {
            return;
        }
    }
}

/// Waits until the bus would send a request for `name` to someone.
pub fn until_served(bus: &Bus, name: &str) {
    let end = Instant::now() + PATIENCE;
    while bus.find_replier(name).unwrap().is_none() {
        assert!(Instant::now() < end, "{name} never got a replier");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until nobody serves `name` on the bus.
pub fn until_unserved(bus: &Bus, name: &str) {
    let end = Instant::now() + PATIENCE;
    while bus.find_replier(name).unwrap().is_some() {
        assert!(Instant::now() < end, "{name} kept its replier");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs this test binary again as a helper process (see `helper` in the
/// tests), reading its stdout lines.
pub struct Helper {
    pub child: Child,
    pub out: BufReader<std::process::ChildStdout>,
}

impl Helper {
    pub fn start(role: &str, socket: &Path, arg: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper", "--nocapture", "--test-threads", "1"])
            .env("BBZ_HELPER", role)
            .env("BBZ_SOCKET", socket)
            .env("BBZ_ARG", arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Self { child, out }
    }

    /// The next line the helper printed that has `text` (the test
    /// harness may print on the same line first).
    pub fn line(&mut self, text: &str) -> String {
        loop {
            let mut l = String::new();
            assert!(
                self.out.read_line(&mut l).unwrap() > 0,
                "the helper ended before {text:?}"
            );
            if l.contains(text) {
                return l.trim_end().to_owned();
            }
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
