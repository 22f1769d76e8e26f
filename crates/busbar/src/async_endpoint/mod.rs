//! The async API: [`AsyncEndpoint`], an [`Endpoint`] whose waits are
//! futures, on either transport, over the endpoint's readiness fd.
//!
//! The core is runtime-agnostic: a [`Reactor`] says how to wait for an fd
//! to poll readable (and how to sleep). In-process the bus wakes a waiting
//! task's `Waker` itself and no fd is involved; through a daemon the
//! endpoint's readiness fd is registered with the reactor, and a `call`
//! has the daemon park the wait for its reply with the request, so the
//! reply is the answer to that one round trip. [`TokioReactor`] (feature `tokio`)
//! is tokio's, through `AsyncFd`; it works on the multi-thread and the
//! current-thread runtimes. Operations that do not wait (`bind`,
//! `announce`, `reply`, ...) are the [`Endpoint`]'s own, reached through
//! [`AsyncEndpoint::endpoint`]; through a daemon each is one short round
//! trip on the endpoint's connection, like a system call.
//!
//! # How waiting works
//!
//! The readiness fd says "something to take", not "the reply you wait for
//! has come": while other messages sit in the queue it stays readable and
//! gives no new event when a reply joins them. So a task waiting for a reply
//! moves what the bus queue holds into the `AsyncEndpoint`'s *inbox* (a
//! reply goes straight to the task awaiting it, which is woken), and the
//! next [`AsyncEndpoint::recv`] takes from the inbox first. The inbox holds
//! at most [`AsyncEndpoint::inbox_limit`] messages; past that the bus queue
//! keeps the rest (its own limit and loss count apply), and a waiting task
//! looks for its reply alone every [`FULL_INBOX_POLL`].
//!
//! # Cancel safety
//!
//! Every future here is cancel-safe: it takes a message only inside one
//! poll, and returns it from that same poll, so a future dropped between
//! polls has taken nothing. The reply to a `call` or `wait_reply` that is
//! dropped (or times out, e.g. under `tokio::time::timeout`) is not lost: it
//! is handed out by a later `recv`, like any other message (a `recv`
//! already waiting is woken for it), and the bus
//! releases the request's reply slot when the reply arrives, whether or not
//! anyone still waits for it. Dropping a [`AsyncEndpoint::send_wait`]
//! future gives the pending send up (`Endpoint::discard_send`), unless it
//! has finished.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::transport::{CallPoll, StartedCall};
use crate::{Endpoint, Errno, Flags, Message, MessageId, Outgoing};

#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
pub use self::tokio::TokioReactor;

mod messages;
pub use messages::Messages;

/// How often a task waiting for a reply looks for it while the inbox is
/// full (and the bus queue, not empty, gives no new readiness event).
pub const FULL_INBOX_POLL: Duration = Duration::from_millis(10);

/// The inbox limit of a new [`AsyncEndpoint`].
pub const DEFAULT_INBOX_LIMIT: usize = 4096;

/// Messages moved from the bus queue per operation while pumping.
const PUMP_BATCH: u32 = 64;

/// What an [`AsyncEndpoint`] needs from an async runtime.
pub trait Reactor: Send + Sync + Sized + 'static {
    /// Registers `fd` (a duplicate of an endpoint's readiness fd, which
    /// polls readable while the endpoint has something to take) for read
    /// readiness. Called in the runtime's context.
    fn register(fd: OwnedFd) -> io::Result<Self>;

    /// Waits for the fd to poll readable, then runs `attempt`: done if it
    /// is `Ready`; if `Pending`, forgets the readiness seen (without losing
    /// an event that came after it was seen) and waits again. Any number of
    /// tasks may wait on one fd at once, and each must be woken.
    fn ready_with<T>(
        &self,
        attempt: impl FnMut() -> Poll<T> + Send,
    ) -> impl Future<Output = io::Result<T>> + Send;

    /// A future that completes after `duration`.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static;
}

/// An [`Endpoint`] with async waits: `recv().await`, `call(...).await`,
/// `wait_reply(...).await`, `send_wait(...).await` and a stream of incoming
/// messages ([`AsyncEndpoint::messages`]). Share it between tasks with an
/// `Arc`: any number of calls can wait on one endpoint at once. See the
/// [module docs](self) for cancel safety.
pub struct AsyncEndpoint<R: Reactor> {
    endpoint: Endpoint,
    /// The readiness fd, registered; `None` where the bus wakes tasks
    /// itself ([`Endpoint::wake_at_arrival`], in-process).
    reactor: Option<R>,
    state: Mutex<State>,
}

struct State {
    /// Messages taken from the bus queue, not yet handed out, in bus order.
    inbox: VecDeque<Message>,
    inbox_limit: usize,
    /// Replies awaited by a `call` or `wait_reply`, by request id.
    awaited: HashMap<MessageId, Awaited>,
    /// Tasks waiting in `recv`, by registration: woken when a dropped
    /// reply wait hands its reply to the inbox (no bus event tells them).
    recv_wakers: Vec<(u64, Waker)>,
    /// The next `recv` registration's number.
    next_recv: u64,
}

#[derive(Default)]
struct Awaited {
    /// The reply, once taken from the bus queue.
    reply: Option<Message>,
    /// The task to wake when it is.
    waker: Option<Waker>,
}

impl State {
    /// Hands `m` to `recv` through the inbox (a reply whose wait was
    /// dropped), waking the tasks waiting there.
    fn hand_to_recv(&mut self, m: Message) {
        self.inbox.push_back(m);
        for (_, w) in self.recv_wakers.drain(..) {
            w.wake();
        }
    }

    /// Gives a reply to the task awaiting it; hands anything else back.
    fn route(&mut self, m: Message) -> Option<Message> {
        if m.is_reply()
            && let Some(a) = self.awaited.get_mut(&m.in_reply_to)
            && a.reply.is_none()
        {
            a.reply = Some(m);
            if let Some(w) = a.waker.take() {
                w.wake();
            }
            return None;
        }
        Some(m)
    }
}

fn io_errno(e: io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_number)
        .unwrap_or(Errno::EIO)
}

impl<R: Reactor> AsyncEndpoint<R> {
    /// Wraps `endpoint`. Through a daemon this registers the endpoint's
    /// readiness fd with the reactor, so call it in the runtime's context
    /// (with tokio, inside the runtime); in-process the bus wakes tasks
    /// itself and no fd is registered.
    pub fn new(endpoint: Endpoint) -> Result<Self, Errno> {
        // In-process the bus wakes tasks itself: no readiness fd at all
        // (nor its eventfd writes on every change of level).
        let reactor = if endpoint.wakes_tasks() {
            None
        } else {
            let fd = endpoint
                .readiness_fd()?
                .try_clone_to_owned()
                .map_err(io_errno)?;
            Some(R::register(fd).map_err(io_errno)?)
        };
        Ok(Self {
            endpoint,
            reactor,
            state: Mutex::new(State {
                inbox: VecDeque::new(),
                inbox_limit: DEFAULT_INBOX_LIMIT,
                awaited: HashMap::new(),
                recv_wakers: Vec::new(),
                next_recv: 0,
            }),
        })
    }

    /// The endpoint, for everything that does not wait. Taking messages
    /// from it directly (`try_recv`, ...) bypasses the inbox: a program
    /// that does should not also wait for replies here.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Closes the endpoint (the bus answers what it owed); messages still in
    /// the inbox are dropped with it.
    pub fn close(self) -> Result<(), Errno> {
        self.endpoint.close()
    }

    /// How many messages the inbox may hold.
    pub fn inbox_limit(&self) -> usize {
        self.lock().inbox_limit
    }

    /// Sets how many messages the inbox may hold (at least 1).
    pub fn set_inbox_limit(&self, limit: usize) {
        self.lock().inbox_limit = limit.max(1);
    }

    /// Messages in the inbox now.
    pub fn inbox_len(&self) -> usize {
        self.lock().inbox.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next message for `recv`, if one is in the inbox or the queue.
    fn next(&self) -> Result<Option<Message>, Errno> {
        let mut state = self.lock();
        if let Some(m) = state.inbox.pop_front() {
            return Ok(Some(m));
        }
        // Nothing to take, as the bus last said (no round trip)?
        if !self.endpoint.refresh()? {
            return Ok(None);
        }
        while let Some(m) = self.endpoint.try_recv()? {
            if let Some(m) = state.route(m) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Moves what the bus queue holds into the inbox (replies to their
    /// tasks) while the inbox has room. True if the inbox is full.
    ///
    /// Unless `eager`, asks the bus first only if the endpoint's last word
    /// (no round trip) says there is something to take.
    fn pump(&self, state: &mut State, eager: bool) -> Result<bool, Errno> {
        if !eager && state.inbox.len() < state.inbox_limit && !self.endpoint.refresh()? {
            return Ok(false);
        }
        loop {
            let room = state.inbox_limit.saturating_sub(state.inbox.len());
            if room == 0 {
                return Ok(true);
            }
            let want = PUMP_BATCH.min(u32::try_from(room).unwrap_or(u32::MAX));
            let batch = self.endpoint.try_recv_batch(want)?;
            let short = batch.len() < want as usize;
            for m in batch {
                if let Some(m) = state.route(m) {
                    state.inbox.push_back(m);
                }
            }
            if short {
                return Ok(false);
            }
        }
    }

    /// Runs `attempt` now, then each time the readiness fd polls readable,
    /// until it is `Ready`.
    async fn until<T>(
        &self,
        mut attempt: impl FnMut() -> Poll<Result<T, Errno>> + Send,
    ) -> Result<T, Errno> {
        if let Poll::Ready(r) = attempt() {
            return r;
        }
        match &self.reactor {
            Some(reactor) => reactor.ready_with(attempt).await.map_err(io_errno)?,
            // Registered, then looked: an arrival after the look wakes us.
            None => {
                poll_fn(|cx| {
                    self.endpoint.wake_at_arrival(cx.waker());
                    attempt()
                })
                .await
            }
        }
    }

    /// Waits for the readiness fd to poll readable, then runs `attempt`,
    /// until it is `Ready` ([`Reactor::ready_with`]); never, without one.
    async fn readiness<T>(&self, attempt: impl FnMut() -> Poll<T> + Send) -> io::Result<T> {
        match &self.reactor {
            Some(reactor) => reactor.ready_with(attempt).await,
            None => std::future::pending().await,
        }
    }

    fn attempt_recv(&self) -> Poll<Result<Message, Errno>> {
        match self.next() {
            Ok(Some(m)) => Poll::Ready(Ok(m)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// The next message (from the inbox first, then the bus queue). Cancel
    /// safe.
    pub async fn recv(&self) -> Result<Message, Errno> {
        let mut at_inbox = RecvWaker {
            owner: self,
            registration: None,
        };
        let mut wait = pin!(self.until(|| self.attempt_recv()));
        poll_fn(|cx| {
            // Registered, then looked: a reply handed over after the look
            // wakes this task (see `State::hand_to_recv`).
            if let Some(m) = at_inbox.register(cx.waker()) {
                return Poll::Ready(Ok(m));
            }
            wait.as_mut().poll(cx)
        })
        .await
    }

    /// Incoming messages as a `Stream` (each item as [`Self::recv`]).
    pub fn messages(&self) -> Messages<'_, R> {
        Messages::new(self)
    }

    /// Sends a request and waits for its reply, which may be synthetic
    /// (`$.KBUS.Replier.GoneAway`, ...: [`Message::is_synthetic`]). The
    /// request is sent on the first poll. Cancel safe: see the module docs.
    pub async fn call(&self, name: &str, data: impl Into<Bytes>) -> Result<Message, Errno> {
        let id = match self.endpoint.start_call(name, data)? {
            StartedCall::Sent(id) => id,
            StartedCall::Ticket(ticket) => {
                let call = TicketedCall {
                    owner: self,
                    ticket,
                    done: AtomicBool::new(false),
                };
                match call.wait().await? {
                    Ticketed::Reply(m) => return Ok(m),
                    Ticketed::Unparked(id) => id,
                }
            }
        };
        self.wait_reply(id).await
    }

    /// Waits for the reply to our request `request`; other messages stay
    /// for `recv`. `EALREADY` if another task already waits for it. Cancel
    /// safe: a reply that comes after the wait is dropped goes to `recv`.
    pub async fn wait_reply(&self, request: MessageId) -> Result<Message, Errno> {
        {
            let mut state = self.lock();
            if state.awaited.contains_key(&request) {
                return Err(Errno::EALREADY);
            }
            // Already moved into the inbox (a wait dropped earlier)?
            if let Some(i) = state
                .inbox
                .iter()
                .position(|m| m.is_reply() && m.in_reply_to == request)
            {
                return Ok(state.inbox.remove(i).expect("found above"));
            }
            state.awaited.insert(request, Awaited::default());
        }
        let wait = AwaitedReply {
            owner: self,
            request,
            full: AtomicBool::new(false),
        };
        wait.wait().await
    }

    /// Sends `message` with `ALL_OR_WAIT`, waiting while it is pending for
    /// room in every recipient's queue; returns its id. Dropping the future
    /// while the send is pending gives the send up.
    pub async fn send_wait(&self, message: Outgoing) -> Result<MessageId, Errno> {
        let flags = Flags(message.flags.0 | Flags::ALL_OR_WAIT.0);
        let message = message.with_flags(flags);
        match self.endpoint.send(message) {
            Err(Errno::EAGAIN) => {}
            other => return other,
        }
        let mut pending = PendingSend {
            endpoint: &self.endpoint,
            done: false,
        };
        let outcome = self
            .until(|| {
                // Move messages aside so the queue cannot hide the outcome's
                // readiness event.
                let mut state = self.lock();
                if let Err(e) = self.pump(&mut state, false) {
                    return Poll::Ready(Err(e));
                }
                drop(state);
                match self.endpoint.take_send_outcome() {
                    Ok(Some(o)) => Poll::Ready(Ok(o)),
                    Ok(None) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            })
            .await?;
        pending.done = true;
        outcome.result.map(|()| outcome.id)
    }
}

impl<R: Reactor> std::fmt::Debug for AsyncEndpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("AsyncEndpoint")
            .field("endpoint", &self.endpoint.id())
            .field("inbox", &state.inbox.len())
            .field("inbox_limit", &state.inbox_limit)
            .field("awaited", &state.awaited.len())
            .finish()
    }
}

/// A reply being waited for: its entry in `awaited`, removed on drop (a
/// reply already routed to it goes to the inbox for `recv`).
struct AwaitedReply<'a, R: Reactor> {
    owner: &'a AsyncEndpoint<R>,
    request: MessageId,
    /// The inbox was full at the last attempt.
    full: AtomicBool,
}

impl<R: Reactor> AwaitedReply<'_, R> {
    fn take(&self, state: &mut State) -> Option<Message> {
        state
            .awaited
            .get_mut(&self.request)
            .and_then(|a| a.reply.take())
    }

    /// Looks for the reply: routed here already, or in the bus queue (asked
    /// for directly when the bus has said there is something to take, or
    /// at once if `eager`); then moves other messages aside, so that the
    /// queue empties and the reply's arrival is a readiness event.
    fn try_take(&self, eager: bool) -> Result<Option<Message>, Errno> {
        let owner = self.owner;
        let mut state = owner.lock();
        if let Some(m) = self.take(&mut state) {
            return Ok(Some(m));
        }
        if (eager || owner.endpoint.refresh()?)
            && let Some(m) = owner.endpoint.take_reply(self.request)?
        {
            return Ok(Some(m));
        }
        let full = owner.pump(&mut state, false)?;
        self.full.store(full, Ordering::Relaxed);
        Ok(self.take(&mut state))
    }

    fn attempt(&self, eager: bool) -> Poll<Result<Message, Errno>> {
        match self.try_take(eager) {
            Ok(Some(m)) => Poll::Ready(Ok(m)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Until the reply comes: routed here by another task (which wakes
    /// this one), found by an attempt when the readiness fd polls readable,
    /// or, while the inbox is full, found in the bus queue by an attempt
    /// every [`FULL_INBOX_POLL`].
    async fn wait(&self) -> Result<Message, Errno> {
        // Just after the request, asking the bus at once often finds the
        // reply already there, sooner than its readiness event would.
        if let Poll::Ready(r) = self.attempt(true) {
            return r;
        }
        let mut ready = pin!(self.owner.readiness(|| self.attempt(false)));
        let mut nap: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        poll_fn(|cx| {
            {
                let mut state = self.owner.lock();
                if let Some(m) = self.take(&mut state) {
                    return Poll::Ready(Ok(m));
                }
                if let Some(a) = state.awaited.get_mut(&self.request) {
                    a.waker = Some(cx.waker().clone());
                }
            }
            if self.owner.endpoint.wake_at_arrival(cx.waker()) {
                // Woken by the bus itself: registered, now look, asking the
                // bus (under its lock, which orders the look after the
                // registration and before any later arrival's wake).
                if let Poll::Ready(r) = self.attempt(true) {
                    return Poll::Ready(r);
                }
            } else if let Poll::Ready(r) = ready.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(io_errno).and_then(|r| r));
            }
            // No readiness event comes while a full inbox leaves the bus
            // queue non-empty: ask for the reply now and then.
            while self.full.load(Ordering::Relaxed) {
                let n = nap.get_or_insert_with(|| Box::pin(R::sleep(FULL_INBOX_POLL)));
                if n.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                nap = None;
                if let Poll::Ready(r) = self.attempt(true) {
                    return Poll::Ready(r);
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl<R: Reactor> Drop for AwaitedReply<'_, R> {
    fn drop(&mut self) {
        let mut state = self.owner.lock();
        if let Some(Awaited { reply: Some(m), .. }) = state.awaited.remove(&self.request) {
            // Came as the wait was dropped: `recv` hands it out.
            state.hand_to_recv(m);
        }
    }
}

/// A `call` whose reply comes by itself (through the daemon: a `TakeReply`
/// parked with the request, answered when the reply arrives, whoever reads
/// the connection). Given up on drop: a reply that came meanwhile, or that
/// comes later, is handed out by `recv`.
struct TicketedCall<'a, R: Reactor> {
    owner: &'a AsyncEndpoint<R>,
    ticket: u32,
    /// The ticket is used up (answered).
    done: AtomicBool,
}

/// How a [`TicketedCall`] ended.
enum Ticketed {
    Reply(Message),
    /// Sent as this id, but its reply does not come by itself.
    Unparked(MessageId),
}

impl<R: Reactor> TicketedCall<'_, R> {
    fn attempt(&self, waker: Option<&Waker>) -> Poll<Result<Ticketed, Errno>> {
        let r = match self.owner.endpoint.poll_call(self.ticket, waker) {
            Ok(CallPoll::Pending) => return Poll::Pending,
            Ok(CallPoll::Reply(m)) => Ok(Ticketed::Reply(m)),
            Ok(CallPoll::Unparked(id)) => Ok(Ticketed::Unparked(id)),
            Ok(CallPoll::Failed(e)) | Err(e) => Err(e),
        };
        self.done.store(true, Ordering::Relaxed);
        Poll::Ready(r)
    }

    /// Until the answer is filed: woken by whoever files it (this task's
    /// own attempt after a readiness event, another task's, or a blocking
    /// caller reading the same connection).
    async fn wait(&self) -> Result<Ticketed, Errno> {
        let mut ready = pin!(self.owner.readiness(|| self.attempt(None)));
        poll_fn(|cx| {
            if let Poll::Ready(r) = self.attempt(Some(cx.waker())) {
                return Poll::Ready(r);
            }
            ready
                .as_mut()
                .poll(cx)
                .map(|r| r.map_err(io_errno).and_then(|r| r))
        })
        .await
    }
}

impl<R: Reactor> Drop for TicketedCall<'_, R> {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Relaxed)
            && let Some(m) = self.owner.endpoint.abandon_call(self.ticket)
        {
            self.owner.lock().hand_to_recv(m);
        }
    }
}

/// A `recv`'s registration for replies handed to the inbox
/// ([`State::hand_to_recv`]), withdrawn when the `recv` ends or is dropped.
struct RecvWaker<'a, R: Reactor> {
    owner: &'a AsyncEndpoint<R>,
    registration: Option<u64>,
}

impl<R: Reactor> RecvWaker<'_, R> {
    /// Takes the inbox's first message, if any; otherwise registers `waker`
    /// (replacing this `recv`'s earlier registration, if still there).
    fn register(&mut self, waker: &Waker) -> Option<Message> {
        let mut state = self.owner.lock();
        if let Some(m) = state.inbox.pop_front() {
            return Some(m);
        }
        let here = self
            .registration
            .and_then(|id| state.recv_wakers.iter().position(|(r, _)| *r == id));
        match here {
            Some(i) if state.recv_wakers[i].1.will_wake(waker) => {}
            Some(i) => state.recv_wakers[i].1 = waker.clone(),
            None => {
                let id = state.next_recv;
                state.next_recv += 1;
                state.recv_wakers.push((id, waker.clone()));
                self.registration = Some(id);
            }
        }
        None
    }
}

impl<R: Reactor> Drop for RecvWaker<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.registration {
            self.owner.lock().recv_wakers.retain(|(r, _)| *r != id);
        }
    }
}

/// A pending `ALL_OR_WAIT` send, given up if its future is dropped first.
struct PendingSend<'a> {
    endpoint: &'a Endpoint,
    done: bool,
}

impl Drop for PendingSend<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.endpoint.discard_send();
        }
    }
}
