//! The in-process transport: the kernel linked into the application, hosted
//! by the std host.
//!
//! Calls run on the caller's thread under one mutex per kernel (no hand-off
//! thread); sending and receiving call the kernel's typed operations
//! directly. Wake-ups go to a per-endpoint [`Signal`], found by the
//! endpoint's host token: a generation counter that blocking waiters sleep
//! on (a futex-backed condvar, touched only when someone waits), the async
//! tasks to wake, plus an optional eventfd that mirrors the endpoint's
//! readiness level for `poll`/`epoll`. Waiters are woken once the kernel
//! lock is released. A steady stream of messages with nobody blocked costs
//! no syscall and no locked instruction beyond the kernel mutex.

use std::fmt;
use std::hash::{BuildHasher, Hasher as _, RandomState};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Instant;

use busbar_kernel::{
    BusId, Credentials, EndpointId, Errno, Host, HostToken, Kernel, KernelConfig, Level, Message,
    MessageId, Nanos, Operations, Outgoing, Request, Response, SendArgs,
};
use busbar_sys::ReadinessFd;

use crate::transport::{Connector, Link};

/// Wake-up state of one endpoint.
///
/// Everything the bus changes here (on a wake-up) it changes under the
/// kernel lock, and every waiter registers under that lock too, in the same
/// critical section as its look: so a wake-up with nobody waiting is plain
/// loads and stores, no locked instruction. The lock orders each wake-up
/// either before a waiter's look (which then sees the message) or after its
/// registration (which the wake-up then sees).
///
/// Blocked threads and async tasks are woken after the kernel lock is
/// released ([`Signal::notify`]), so that they do not wake only to wait for
/// the lock their waker still holds.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Bumped at each arrival (and at close), under the kernel lock.
    generation: AtomicU64,
    /// Blocked waiters, incremented under the kernel lock (a stale count
    /// only costs a spurious notify).
    waiters: AtomicU32,
    /// The readiness level last reported by the kernel (written under the
    /// kernel lock; read without it by async tasks, after registering).
    level: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
    fd: OnceLock<ReadinessFd>,
    /// Async tasks to wake at the next arrival (or close), and whether
    /// there are any (set under the kernel lock).
    tasks: Mutex<Vec<Waker>>,
    has_tasks: AtomicBool,
}

impl Signal {
    /// Called by the host, under the kernel lock. True if someone waits:
    /// then [`Self::notify`] must follow once the lock is released.
    fn wake(&self, readable: bool) -> bool {
        if readable {
            self.bump_generation();
        }
        let was = self.level.load(Ordering::Relaxed);
        if was != readable {
            self.level.store(readable, Ordering::Relaxed);
            if let Some(fd) = self.fd.get() {
                // Failing to flip an eventfd we own can only mean the process
                // is out of resources; waiters then fall back to timeouts.
                let _ = if readable { fd.set() } else { fd.clear() };
            }
        }
        readable
            && (self.waiters.load(Ordering::Relaxed) > 0 || self.has_tasks.load(Ordering::Relaxed))
    }

    /// Wakes the blocked waiters and the registered tasks, after a wake-up
    /// that said to (and the kernel lock is released).
    fn notify(&self) {
        {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cond.notify_all();
        }
        self.wake_tasks();
    }

    /// Only ever written under the kernel lock: a load and a store, not a
    /// locked add.
    fn bump_generation(&self) {
        let g = self.generation.load(Ordering::Relaxed);
        self.generation.store(g.wrapping_add(1), Ordering::Relaxed);
    }

    /// Marks a change without a new message (used at close, under the
    /// kernel lock); [`Self::notify`] follows, after it.
    fn poke(&self) {
        self.bump_generation();
    }

    /// Wakes (once) the async tasks registered since the last arrival.
    /// (Registering takes the kernel lock and then the task list; this
    /// takes only the list: a task registered meanwhile is woken too, at
    /// worst once too often.)
    fn wake_tasks(&self) {
        if self.has_tasks.load(Ordering::Relaxed) {
            let tasks = {
                let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
                self.has_tasks.store(false, Ordering::Relaxed);
                std::mem::take(&mut *t)
            };
            for w in tasks {
                w.wake();
            }
        }
    }

    /// Registers `waker` for the next arrival; the caller holds the kernel
    /// lock. The task must then look for what it waits for (under that lock,
    /// or through the level): an arrival is either seen by the look or
    /// comes after the registration and finds it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn wake_task_at_arrival(&self, waker: &Waker) {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if !t.iter().any(|w| w.will_wake(waker)) {
            t.push(waker.clone());
        }
        self.has_tasks.store(true, Ordering::Relaxed);
    }

    /// Registers a blocked waiter; the caller holds the kernel lock and has
    /// just looked. Returns the generation to wait past.
    fn register_waiter(&self) -> u64 {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        self.generation.load(Ordering::Relaxed)
    }

    /// Waits (after [`Self::register_waiter`], without the kernel lock)
    /// until the generation moves past `seen` or `deadline` passes; ends
    /// the registration. False on timeout.
    fn wait_change(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let changed = loop {
            if self.generation.load(Ordering::Relaxed) != seen {
                break true;
            }
            match deadline {
                None => g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    g = self
                        .cond
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        changed
    }
}

/// The std host: real monotonic time, the alarm serviced on the next call
/// into the kernel (and by waiters' own timeouts), wake-ups to [`Signal`]s,
/// logs to stderr at or above a threshold, entropy from std's random keys.
pub(crate) struct StdHost {
    epoch: Instant,
    alarm: Option<Nanos>,
    /// Each open endpoint's signal, at the index its host token names
    /// (so a wake-up is an index, not a lookup); freed slots are reused.
    signals: Vec<Option<Arc<Signal>>>,
    free_signals: Vec<usize>,
    /// Signals whose waiters are to be woken once the kernel lock is released.
    to_notify: Vec<Arc<Signal>>,
    log_level: Option<Level>,
}

impl fmt::Debug for StdHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdHost")
            .field("alarm", &self.alarm)
            .field("endpoints", &(self.signals.len() - self.free_signals.len()))
            .finish()
    }
}

impl StdHost {
    /// Keeps `signal` for a new endpoint; returns the token to give it.
    fn add_signal(&mut self, signal: Arc<Signal>) -> HostToken {
        let i = match self.free_signals.pop() {
            Some(i) => {
                self.signals[i] = Some(signal);
                i
            }
            None => {
                self.signals.push(Some(signal));
                self.signals.len() - 1
            }
        };
        HostToken(i as u64)
    }

    /// Drops the signal kept under `token` (its endpoint closed).
    fn remove_signal(&mut self, token: HostToken) {
        let i = token.0 as usize;
        if self.signals.get_mut(i).and_then(Option::take).is_some() {
            self.free_signals.push(i);
        }
    }
}

impl Host for StdHost {
    fn now(&mut self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    fn set_alarm(&mut self, at: Option<Nanos>) {
        self.alarm = at;
    }

    fn wake(&mut self, _: BusId, _: EndpointId, token: HostToken, readable: bool) {
        if let Some(Some(s)) = usize::try_from(token.0)
            .ok()
            .and_then(|i| self.signals.get(i))
            && s.wake(readable)
        {
            self.to_notify.push(s.clone());
        }
    }

    fn log(&mut self, level: Level, message: fmt::Arguments<'_>) {
        if self.log_level.is_some_and(|max| level <= max) {
            eprintln!("busbar[{level:?}]: {message}");
        }
    }

    fn entropy(&mut self) -> u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(self.epoch.elapsed().as_nanos() as u64);
        h.finish()
    }
}

/// An in-process kernel shared by every `Bus` and `Endpoint` made from it.
#[derive(Debug)]
pub(crate) struct LocalKernel {
    kernel: Mutex<Kernel<StdHost>>,
    creds: Credentials,
}

impl LocalKernel {
    pub(crate) fn new(config: KernelConfig) -> Result<Arc<Self>, Errno> {
        let host = StdHost {
            epoch: Instant::now(),
            alarm: None,
            signals: Vec::new(),
            free_signals: Vec::new(),
            to_notify: Vec::new(),
            log_level: std::env::var_os("BUSBAR_KERNEL_LOG").map(|_| Level::Debug),
        };
        let c = busbar_sys::process_credentials();
        Ok(Arc::new(Self {
            kernel: Mutex::new(Kernel::new(host, config)?),
            creds: Credentials {
                pid: c.pid,
                uid: c.uid,
                gid: c.gid,
            },
        }))
    }

    /// Locks the kernel, servicing an alarm that has come due.
    fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock would be a kernel bug; the state is
        // still consistent between operations, so carry on.
        let mut k = self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = k.host().alarm
            && k.host_mut().now() >= at
        {
            k.handle_alarm();
        }
        Locked(Some(k))
    }
}

/// The kernel, locked. Dropping it releases the lock, then wakes whoever
/// the operations done under it woke ([`Signal::notify`]).
struct Locked<'a>(Option<MutexGuard<'a, Kernel<StdHost>>>);

impl std::ops::Deref for Locked<'_> {
    type Target = Kernel<StdHost>;
    fn deref(&self) -> &Kernel<StdHost> {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Kernel<StdHost> {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut k) = self.0.take() else {
            return;
        };
        if k.host().to_notify.is_empty() {
            return;
        }
        let to_notify = std::mem::take(&mut k.host_mut().to_notify);
        drop(k);
        for s in to_notify {
            s.notify();
        }
    }
}

impl Connector for Arc<LocalKernel> {
    fn open(&self, bus: BusId) -> Result<Box<dyn Link>, Errno> {
        let mut k = self.lock();
        let resp = k.dispatch(bus, EndpointId::BUS, Request::Open(self.creds))?;
        let Response::Open(endpoint) = resp else {
            return Err(Errno::EPROTO);
        };
        let signal = Arc::new(Signal::default());
        let token = k.host_mut().add_signal(signal.clone());
        if let Err(e) = k.set_host_token(bus, endpoint, token) {
            k.host_mut().remove_signal(token);
            return Err(e);
        }
        Ok(Box::new(LocalLink {
            kernel: self.clone(),
            bus,
            endpoint,
            token,
            signal,
            closed: AtomicBool::new(false),
        }))
    }

    fn call(&self, bus: BusId, request: Request) -> Result<Response, Errno> {
        self.lock().dispatch(bus, EndpointId::BUS, request)
    }
}

#[derive(Debug)]
struct LocalLink {
    kernel: Arc<LocalKernel>,
    bus: BusId,
    endpoint: EndpointId,
    /// Where the host keeps `signal`.
    token: HostToken,
    signal: Arc<Signal>,
    closed: AtomicBool,
}

impl LocalLink {
    /// Runs `look` under the kernel lock until it finds something (then
    /// returns it) or `deadline` passes (then `None`). Finding nothing, it
    /// registers as a waiter in the same hold of the lock: whatever arrives
    /// after the look finds the registration, so the wait cannot sleep
    /// through it. `ENOENT` once the endpoint is closed.
    fn look_and_wait<T>(
        &self,
        deadline: Option<Instant>,
        mut look: impl FnMut(&mut Kernel<StdHost>) -> Result<Option<T>, Errno>,
    ) -> Result<Option<T>, Errno> {
        loop {
            let seen = {
                let mut k = self.kernel.lock();
                if let Some(found) = look(&mut k)? {
                    return Ok(Some(found));
                }
                if self.closed.load(Ordering::SeqCst) {
                    return Err(Errno::ENOENT);
                }
                self.signal.register_waiter()
            };
            if !self.signal.wait_change(seen, deadline) {
                return Ok(None);
            }
        }
    }
}

impl Link for LocalLink {
    fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    fn wake_at_arrival(&self, waker: &Waker) -> bool {
        let _k = self.kernel.lock();
        self.signal.wake_task_at_arrival(waker);
        true
    }

    fn wakes_tasks(&self) -> bool {
        true
    }

    fn call(&self, request: Request) -> Result<Response, Errno> {
        let mut r = self
            .kernel
            .lock()
            .dispatch(self.bus, self.endpoint, request)?;
        own_fds(&mut r)?;
        Ok(r)
    }

    fn send(&self, args: SendArgs) -> Result<MessageId, Errno> {
        self.kernel.lock().send(self.bus, self.endpoint, args)
    }

    fn recv(&self) -> Result<Option<Message>, Errno> {
        let mut m = self.kernel.lock().recv(self.bus, self.endpoint, ())?;
        if let Some(m) = &mut m {
            own_fds_of(m)?;
        }
        Ok(m)
    }

    fn call_wait(&self, request: Request, deadline: Option<Instant>) -> Result<Response, Errno> {
        let mut empty = None;
        let found = self.look_and_wait(deadline, |k| {
            let r = k.dispatch(self.bus, self.endpoint, request.clone())?;
            if busbar_wire::is_empty_response(&r) {
                empty = Some(r);
                Ok(None)
            } else {
                Ok(Some(r))
            }
        })?;
        match found {
            Some(mut r) => {
                own_fds(&mut r)?;
                Ok(r)
            }
            None => empty.ok_or(Errno::EPROTO),
        }
    }

    fn recv_wait(&self, deadline: Option<Instant>) -> Result<Option<Message>, Errno> {
        let found = self.look_and_wait(deadline, |k| k.recv(self.bus, self.endpoint, ()))?;
        match found {
            Some(mut m) => {
                own_fds_of(&mut m)?;
                Ok(Some(m))
            }
            None => Ok(None),
        }
    }

    fn send_then_wait(
        &self,
        message: Outgoing,
        then: Request,
        deadline: Option<Instant>,
    ) -> Result<(Result<(), Errno>, Response), Errno> {
        let sent = match self.call(Request::Send(SendArgs {
            message,
            deadline: None,
        })) {
            Ok(Response::Send(_)) => Ok(()),
            Ok(_) => return Err(Errno::EPROTO),
            Err(e) => Err(e),
        };
        Ok((sent, self.call_wait(then, deadline)?))
    }

    fn send_and_wait_reply(
        &self,
        request: Outgoing,
        deadline: Option<Instant>,
    ) -> Result<Message, Errno> {
        let id = self.send(SendArgs {
            message: request,
            deadline: None,
        })?;
        let found = self.look_and_wait(deadline, |k| k.take_reply(self.bus, self.endpoint, id))?;
        let mut m = found.ok_or(Errno::ETIMEDOUT)?;
        own_fds_of(&mut m)?;
        Ok(m)
    }

    fn wake_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        self.readiness_fd()
    }

    fn refresh(&self) -> Result<bool, Errno> {
        Ok(self.signal.level.load(Ordering::Acquire))
    }

    fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        if self.signal.fd.get().is_none() {
            // Create under the kernel lock so the level cannot change between
            // reading it and mirroring it into the fd.
            let _k = self.kernel.lock();
            if self.signal.fd.get().is_none() {
                let fd = ReadinessFd::new().map_err(|_| Errno::EIO)?;
                if self.signal.level.load(Ordering::Relaxed) {
                    fd.set().map_err(|_| Errno::EIO)?;
                }
                let _ = self.signal.fd.set(fd);
            }
        }
        Ok(self.signal.fd.get().expect("initialised above").as_fd())
    }

    fn close(&self) -> Result<(), Errno> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut k = self.kernel.lock();
        let r = k.dispatch(self.bus, self.endpoint, Request::Close(()));
        k.host_mut().remove_signal(self.token);
        self.signal.poke();
        drop(k);
        self.signal.notify();
        r.map(|_| ())
    }
}

/// Gives the receiver its own copies of the fds in the messages it took
/// (every copy of a message shares one attachment inside the kernel), so a
/// receiver closing its fds affects nobody else. `EIO` if the process is out
/// of fds.
fn own_fds(r: &mut Response) -> Result<(), Errno> {
    match r {
        Response::Recv(Some(m)) | Response::TakeReply(Some(m)) => own_fds_of(m)?,
        Response::RecvBatch(v) => {
            for m in v {
                own_fds_of(m)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn own_fds_of(m: &mut Message) -> Result<(), Errno> {
    if m.header().fds.is_none() || m.fds().is_empty() {
        return Ok(());
    }
    let own = m
        .fds()
        .iter()
        .map(|fd| fd.try_clone())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Errno::EIO)?;
    m.set_fds(Some(busbar_kernel::Attachment::from_fds(own)));
    Ok(())
}

impl Drop for LocalLink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
