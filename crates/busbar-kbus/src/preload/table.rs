//! Which fds are Ksocks, and the state behind them.
//!
//! `OWNER[fd]` is the pid that opened the Ksock on `fd` (0: not a Ksock),
//! read without a lock by every hook. The rest (the Ksocks, the per-device
//! state, the control connection, the epoll sets holding Ksocks) is behind
//! one mutex, taken briefly; a Ksock's own operations run under its own
//! mutex, so one slow Ksock never holds up another.

use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use busbar::{Bus, BusId, Errno};
use libc::c_int;

use crate::ksock::{DeviceState, Ksock};

/// Ksocks must land on fds below this (the table is static).
pub(crate) const MAX_FD: usize = 1 << 16;

static OWNER: [AtomicI32; MAX_FD] = [const { AtomicI32::new(0) }; MAX_FD];
/// The pid whose epoll set on this fd holds Ksocks (0: none).
static EPOLL: [AtomicI32; MAX_FD] = [const { AtomicI32::new(0) }; MAX_FD];
/// The pid that has Ksocks open, if any (0: none yet). Hooks on fds and
/// fd sets look no further when it is not this process: a program that
/// never opens a Ksock pays one load per call, allocates nothing, and is
/// as async-signal-safe as without the library.
static USER: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

fn slot(fd: c_int) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < MAX_FD)
}

fn pid() -> i32 {
    std::process::id() as i32
}

/// Is `fd` a Ksock this process opened, and is this call the program's
/// (not the library's own)?
pub(crate) fn is_ksock(fd: c_int) -> bool {
    let Some(i) = slot(fd) else { return false };
    let owner = OWNER[i].load(Ordering::Acquire);
    owner != 0 && owner == pid() && !INSIDE.with(Cell::get)
}

/// Is `fd` an epoll set of this process that holds Ksocks?
pub(crate) fn is_tracked_epoll(fd: c_int) -> bool {
    let Some(i) = slot(fd) else { return false };
    let owner = EPOLL[i].load(Ordering::Acquire);
    owner != 0 && owner == pid() && !INSIDE.with(Cell::get)
}

/// Could any fd be a Ksock of this process (it has opened one)? False in a
/// program that never did, and in a forked child.
pub(crate) fn any_ksocks() -> bool {
    let user = USER.load(Ordering::Acquire);
    user != 0 && user == pid()
}

/// Marks the library's own calls for the length of `f`: they pass through.
pub(crate) fn inside<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INSIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(INSIDE.with(|c| c.replace(true)));
    f()
}

/// Runs the library's work for one call: a panic in it (a bug) becomes
/// `EIO` for that call instead of unwinding into the program, which would
/// abort it.
pub(crate) fn contained<T>(f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(Errno::EIO))
}

/// One Ksock and the fds that refer to it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub ksock: Mutex<Option<Ksock>>,
    /// The socket the endpoint owns (closed with the Ksock).
    pub socket: c_int,
    /// `O_NONBLOCK` as the program set it (kept off the socket).
    pub nonblock: AtomicBool,
    /// The device number (N of `/dev/kbusN`).
    pub device: u32,
    /// Its readiness as last seen (see `notify`).
    pub seen: AtomicU8,
    /// fds referring to it (under the table lock).
    fds: AtomicU32,
}

impl Entry {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Ksock>> {
        self.ksock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a Ksock was registered in an epoll set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watch {
    pub events: u32,
    pub data: u64,
    /// `EPOLLONESHOT` fired: silent until the next `EPOLL_CTL_MOD`.
    pub disarmed: bool,
    /// The bits last found ready (`EPOLLET` reports only new ones).
    pub last: u32,
    /// Messages that had arrived (taken plus queued) when last looked at
    /// (`EPOLLET`: more means a new arrival, reported even while the Ksock
    /// stays readable).
    pub arrivals: u64,
}

/// Everything behind the lock, for the process `pid` (a forked child
/// starts afresh: see `Table::with`).
#[derive(Debug, Default)]
pub(crate) struct Table {
    pid: i32,
    ksocks: HashMap<c_int, Arc<Entry>>,
    devices: HashMap<u32, Arc<DeviceState>>,
    bus: Option<Bus>,
    /// Per epoll fd: the Ksock fds in it.
    pub epolls: HashMap<c_int, HashMap<c_int, Watch>>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

impl Table {
    /// Runs `f` with the table locked (the library's calls pass through).
    ///
    /// In a child made by `fork`, the parent's state is forgotten, not
    /// dropped: its control connection and Ksocks are the parent's (their
    /// sockets are shared), so the child must neither use nor close them
    /// (closing an endpoint would close the parent's). The child makes its
    /// own as it needs them.
    pub(crate) fn with<T>(f: impl FnOnce(&mut Self) -> T) -> T {
        inside(|| {
            let mut g = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            let me = pid();
            if g.as_ref().is_some_and(|t| t.pid != me) {
                std::mem::forget(g.take());
            }
            f(g.get_or_insert_with(|| Self {
                pid: me,
                ..Self::default()
            }))
        })
    }

    /// The control connection to the daemon (made on first use; made
    /// again if it broke).
    pub(crate) fn bus(&mut self, device: u32) -> Result<Bus, Errno> {
        if let Some(b) = &self.bus
            && b.info().is_ok()
        {
            return Ok(b.bus(BusId(device)));
        }
        self.bus = None;
        let b = Bus::connect_default()?;
        self.bus = Some(b.clone());
        Ok(b.bus(BusId(device)))
    }

    pub(crate) fn device(&mut self, device: u32) -> Arc<DeviceState> {
        self.devices.entry(device).or_default().clone()
    }

    /// Files a new Ksock under its socket fd.
    pub(crate) fn insert(&mut self, ksock: Ksock, device: u32) -> Result<c_int, Errno> {
        let socket = ksock
            .endpoint()
            .wake_fd()
            .map(|fd| fd.as_raw_fd())
            .map_err(|_| Errno::EIO)?;
        let Some(i) = slot(socket) else {
            return Err(Errno::EMFILE);
        };
        let entry = Arc::new(Entry {
            ksock: Mutex::new(Some(ksock)),
            socket,
            nonblock: AtomicBool::new(false),
            device,
            seen: AtomicU8::new(0),
            fds: AtomicU32::new(1),
        });
        self.ksocks.insert(socket, entry);
        OWNER[i].store(pid(), Ordering::Release);
        USER.store(pid(), Ordering::Release);
        Ok(socket)
    }

    /// `fd` now also refers to the Ksock of `existing` (a `dup`).
    pub(crate) fn alias(&mut self, existing: c_int, fd: c_int) -> bool {
        let (Some(entry), Some(i)) = (self.ksocks.get(&existing).cloned(), slot(fd)) else {
            return false;
        };
        entry.fds.fetch_add(1, Ordering::SeqCst);
        self.ksocks.insert(fd, entry);
        OWNER[i].store(pid(), Ordering::Release);
        true
    }

    pub(crate) fn get(&self, fd: c_int) -> Option<Arc<Entry>> {
        self.ksocks.get(&fd).cloned()
    }

    /// Forgets `fd`. Returns its entry, and whether it was the Ksock's last
    /// fd (then the caller closes the Ksock).
    pub(crate) fn remove(&mut self, fd: c_int) -> Option<(Arc<Entry>, bool)> {
        let entry = self.ksocks.remove(&fd)?;
        if let Some(i) = slot(fd) {
            OWNER[i].store(0, Ordering::Release);
        }
        for set in self.epolls.values_mut() {
            set.remove(&fd);
        }
        let last = entry.fds.fetch_sub(1, Ordering::SeqCst) == 1;
        Some((entry, last))
    }

    /// Marks (or unmarks) `epfd` as an epoll set holding Ksocks.
    pub(crate) fn track_epoll(&mut self, epfd: c_int, on: bool) {
        if let Some(i) = slot(epfd) {
            EPOLL[i].store(if on { pid() } else { 0 }, Ordering::Release);
        }
        if !on {
            self.epolls.remove(&epfd);
        }
    }

    /// The sockets of the open Ksocks.
    pub(crate) fn live_sockets(&self) -> Vec<c_int> {
        let mut v: Vec<c_int> = self.ksocks.values().map(|e| e.socket).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Which epoll sets hold Ksock `fd` (to take it out of them).
    pub(crate) fn sets_holding(&self, fd: c_int) -> Vec<c_int> {
        self.epolls
            .iter()
            .filter(|(_, set)| set.contains_key(&fd))
            .map(|(&ep, _)| ep)
            .collect()
    }
}
