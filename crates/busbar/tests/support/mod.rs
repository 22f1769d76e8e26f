//! A bus on a fresh, private daemon (a `busbar_daemon::Daemon` in a thread
//! of the test process, on a unique socket), stopped when the last handle
//! on the bus goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use busbar::Bus;
use busbar_daemon::{Daemon, DaemonConfig, ShutdownHandle};

/// Stops the test's daemon when the last handle on its bus goes, waits for
/// it to finish and removes its directory (nothing is left in /tmp).
struct StopOnDrop {
    stop: ShutdownHandle,
    daemon: Option<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.daemon.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bus on a fresh daemon on its own socket.
pub fn daemon_bus() -> Bus {
    daemon_bus_with(|_| {})
}

/// A bus on a fresh daemon on its own socket, configured by `configure`.
#[allow(dead_code)] // not every test file configures its daemon
pub fn daemon_bus_with(configure: impl FnOnce(&mut DaemonConfig)) -> Bus {
    daemon_bus_and_stop(configure).0
}

/// A bus on a fresh daemon configured by `configure`, and a handle that
/// stops that daemon while the bus is still in use.
#[allow(dead_code)] // not every test file stops its daemon early
pub fn daemon_bus_and_stop(configure: impl FnOnce(&mut DaemonConfig)) -> (Bus, ShutdownHandle) {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "busbar-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // 0700 whatever the umask: the daemon refuses a socket directory others can write.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .unwrap();
    let socket = dir.join("bus.sock");
    let mut config = DaemonConfig::new(socket.clone());
    configure(&mut config);
    let d = Daemon::bind(config).unwrap();
    let stop = d.shutdown_handle().unwrap();
    let stop_early = d.shutdown_handle().unwrap();
    let daemon = std::thread::spawn(move || d.run().unwrap());
    let bus = Bus::connect(&socket)
        .unwrap()
        .with_keepalive(Arc::new(StopOnDrop {
            stop,
            daemon: Some(daemon),
            dir,
        }));
    (bus, stop_early)
}
