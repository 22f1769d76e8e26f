//! [`Endpoint`]: one open connection to a bus. It can send, listen and reply.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar_kernel::{
    BindArgs, EndpointId, EndpointStats, Errno, Flags, HandleId, Message, MessageId, Operations,
    Outgoing, Request, Response, SendArgs, SendOutcome, SendResult,
};
use bytes::Bytes;

use crate::Bus;
use crate::transport::{Link, ViaLink};

/// Why [`Endpoint::try_serve`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeError<E> {
    /// The handler failed on `request` (from `requester`), which is left
    /// unanswered.
    Handler {
        /// The request.
        request: MessageId,
        /// Who sent it.
        requester: EndpointId,
        /// What the handler returned.
        error: E,
    },
    /// The reply to `request` could not be sent; the request is left
    /// unanswered.
    Reply {
        /// The request.
        request: MessageId,
        /// Who sent it.
        requester: EndpointId,
        /// Why (`EMSGSIZE`: larger than the bus's maximum message size, ...).
        errno: Errno,
    },
    /// Receiving failed.
    Recv(Errno),
}

impl<E: fmt::Display> fmt::Display for ServeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handler {
                request,
                requester,
                error,
            } => write!(
                f,
                "cannot answer request {request} from endpoint {requester}: {error}"
            ),
            Self::Reply {
                request,
                requester,
                errno,
            } => write!(
                f,
                "cannot send the reply to request {request} from endpoint {requester}: {errno}"
            ),
            Self::Recv(errno) => write!(f, "cannot receive: {errno}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ServeError<E> {}

/// One open connection to a bus (KBUS's Ksock). Closed on drop (or with
/// [`Endpoint::close`] to see the result).
///
/// All methods take `&self`; an endpoint may be shared between threads
/// (each call is one atomic operation on the bus).
pub struct Endpoint {
    bus: Bus,
    link: Box<dyn Link>,
    id: EndpointId,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("bus", &self.bus.id())
            .field("id", &self.id)
            .finish()
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

impl Endpoint {
    pub(crate) fn new(bus: Bus, link: Box<dyn Link>) -> Self {
        let id = link.endpoint();
        Self { bus, link, id }
    }

    /// `name` as a shared string (see [`crate::names`]).
    fn name(&self, name: &str) -> Arc<str> {
        crate::names::shared(name)
    }

    fn calls(&self) -> ViaLink<'_> {
        ViaLink(&*self.link)
    }

    /// This endpoint's id on its bus (from 1, never reused).
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// The bus this endpoint is on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    // ----- bindings --------------------------------------------------------

    /// Listens to messages matching `pattern` (`$.a.b`, `$.a.*`, `$.a.%`).
    /// Binding the same pattern twice gives two copies of each message
    /// (unless "only once" is on).
    pub fn bind(&self, pattern: &str) -> Result<(), Errno> {
        let args = BindArgs {
            name: pattern.into(),
            replier: false,
        };
        self.calls().bind(self.bus.id(), self.id, args)
    }

    /// Becomes the replier for `pattern` (`EADDRINUSE` if it has one).
    pub fn bind_replier(&self, pattern: &str) -> Result<(), Errno> {
        let args = BindArgs {
            name: pattern.into(),
            replier: true,
        };
        self.calls().bind(self.bus.id(), self.id, args)
    }

    /// Removes the most recent listener binding of `pattern`, and the queued
    /// messages it brought (`EINVAL` if there is none).
    pub fn unbind(&self, pattern: &str) -> Result<(), Errno> {
        let args = BindArgs {
            name: pattern.into(),
            replier: false,
        };
        self.calls().unbind(self.bus.id(), self.id, args)
    }

    /// Stops being the replier for `pattern`; unread requests it brought are
    /// removed and answered `$.KBUS.Replier.Unbound`.
    pub fn unbind_replier(&self, pattern: &str) -> Result<(), Errno> {
        let args = BindArgs {
            name: pattern.into(),
            replier: true,
        };
        self.calls().unbind(self.bus.id(), self.id, args)
    }

    // ----- sending ----------------------------------------------------------

    /// Sends a message without waiting; returns its id. With
    /// [`busbar_kernel::Flags::ALL_OR_WAIT`] and a full recipient this fails
    /// with `EAGAIN` and the send stays pending: see
    /// [`Endpoint::take_send_outcome`], [`Endpoint::discard_send`], or use
    /// [`Endpoint::send_wait`].
    pub fn send(&self, message: Outgoing) -> Result<MessageId, Errno> {
        self.link.send(SendArgs {
            message,
            deadline: None,
        })
    }

    /// Sends several messages in order as one bus operation (one round trip
    /// through the daemon); one result per message, as if each were sent by
    /// [`Endpoint::send`]. After an `EAGAIN` (pending) the rest get `EALREADY`.
    pub fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<SendResult>, Errno> {
        let batch = messages
            .into_iter()
            .map(|message| SendArgs {
                message,
                deadline: None,
            })
            .collect();
        self.calls().send_batch(self.bus.id(), self.id, batch)
    }

    /// Sends a message with `ALL_OR_WAIT` (added to its flags): every
    /// recipient gets it or none does, and while a recipient's queue is full
    /// this waits (up to `timeout`, `None` = forever) for room. On timeout
    /// the send is discarded and the result is `ETIMEDOUT`. `EINVAL` for a
    /// message flagged `ALL_OR_FAIL` (the two exclude each other).
    pub fn send_wait(
        &self,
        message: Outgoing,
        timeout: Option<Duration>,
    ) -> Result<MessageId, Errno> {
        let deadline = deadline(timeout);
        match self.send(message.with_flags(Flags::ALL_OR_WAIT)) {
            Err(Errno::EAGAIN) => {}
            other => return other,
        }
        loop {
            if let Some(o) = self.wait_send_outcome_until(deadline)? {
                return o.result.map(|()| o.id);
            }
            // Deadline: give up, unless it finished meanwhile (then take it).
            if self.discard_send()? {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }

    /// Waits up to `timeout` (`None` = forever) for the outcome of the
    /// pending `ALL_OR_WAIT` send, and takes it. `None` if it has not
    /// finished by then: it stays pending (give up with
    /// [`Self::discard_send`]).
    pub fn wait_send_outcome(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<SendOutcome>, Errno> {
        self.wait_send_outcome_until(deadline(timeout))
    }

    fn wait_send_outcome_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<SendOutcome>, Errno> {
        self.wait_for(Request::TakeSendOutcome(()), deadline, |r| match r {
            Response::TakeSendOutcome(o) => Ok(o),
            _ => Err(Errno::EPROTO),
        })
    }

    /// Sends an announcement to every listener of `name`.
    pub fn announce(&self, name: &str, data: impl Into<Bytes>) -> Result<MessageId, Errno> {
        self.send(Outgoing {
            name: self.name(name),
            data: data.into(),
            ..Default::default()
        })
    }

    /// Sends a request to the replier of `name`; the reply (real or
    /// synthetic) will arrive in this endpoint's queue. See also [`Endpoint::call`].
    pub fn request(&self, name: &str, data: impl Into<Bytes>) -> Result<MessageId, Errno> {
        self.send(Outgoing {
            name: self.name(name),
            data: data.into(),
            flags: Flags::WANT_A_REPLY,
            ..Default::default()
        })
    }

    /// Replies to `request`, which this endpoint received as its replier.
    pub fn reply(&self, request: &Message, data: impl Into<Bytes>) -> Result<MessageId, Errno> {
        self.send(Outgoing::reply_to(request, data))
    }

    /// Replies to `request`, then waits up to `timeout` (`None` = forever)
    /// for the next message: a replier's loop in one round trip through the
    /// daemon. Returns whether the reply was sent (`EADDRNOTAVAIL` if the
    /// requester has gone, ...) and the next message (`None` on timeout).
    /// The wait happens even if the reply failed.
    pub fn reply_then_recv(
        &self,
        request: &Message,
        data: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<(Result<(), Errno>, Option<Message>), Errno> {
        let (sent, next) = self.link.send_then_wait(
            Outgoing::reply_to(request, data),
            Request::Recv(()),
            deadline(timeout),
        )?;
        match next {
            Response::Recv(m) => Ok((sent, m)),
            _ => Err(Errno::EPROTO),
        }
    }

    /// Serves requests: for each request this endpoint receives as replier,
    /// replies with what `handler` returns; other messages are skipped.
    /// Stops after `count` replies (`None`: never, unless an error). A
    /// requester that went away before its reply (`EADDRNOTAVAIL`) is not
    /// an error. Returns the number of requests answered.
    ///
    /// A reply that cannot be sent (`EMSGSIZE`: larger than the bus's
    /// maximum message size, `EDQUOT`, ...) stops it with that error at
    /// once, as [`Endpoint::try_serve`] describes: the request stays owed,
    /// and closing the endpoint makes the bus answer it
    /// `$.KBUS.Replier.Ignored`.
    pub fn serve(
        &self,
        count: Option<u64>,
        mut handler: impl FnMut(&Message) -> Bytes,
    ) -> Result<u64, Errno> {
        self.try_serve(count, |m| Ok::<_, std::convert::Infallible>(handler(m)))
            .map_err(|e| match e {
                ServeError::Reply { errno, .. } | ServeError::Recv(errno) => errno,
                ServeError::Handler { error, .. } => match error {},
            })
    }

    /// [`Endpoint::serve`] with a handler that may fail. It stops at the
    /// first of:
    ///
    /// - `count` replies sent: `Ok(count)`;
    /// - the handler fails on a request: [`ServeError::Handler`];
    /// - a reply cannot be sent: [`ServeError::Reply`], as soon as the
    ///   bus refuses it;
    /// - receiving fails (the daemon stopped, ...): [`ServeError::Recv`].
    ///
    /// After `Handler` or `Reply` the request is still owed: answer it some
    /// other way, or close the endpoint, and the bus answers it
    /// `$.KBUS.Replier.Ignored`, so its requester is never left waiting.
    /// If the next message arrived in the same round trip as a failed
    /// reply, it is dropped (a request is then answered `Ignored` too when
    /// the endpoint closes).
    ///
    /// Each reply travels with the wait for the next message, in one round
    /// trip ([`Endpoint::reply_then_recv`]); the daemon cannot make that
    /// wait depend on the reply, so a refused reply is reported only when
    /// the wait ends. That wait is therefore short (a tenth of a second),
    /// then a plain `recv` follows: a request arriving within it still costs
    /// one round trip, and a refused reply is reported within it.
    pub fn try_serve<E>(
        &self,
        count: Option<u64>,
        mut handler: impl FnMut(&Message) -> Result<Bytes, E>,
    ) -> Result<u64, ServeError<E>> {
        /// How long a reply's round trip waits for the next message.
        const FIRST_WAIT: Duration = Duration::from_millis(100);
        let mut answered = 0;
        if count == Some(0) {
            return Ok(0);
        }
        let mut next = self.recv().map_err(ServeError::Recv)?;
        loop {
            if !next.wants_us_to_reply() {
                next = self.recv().map_err(ServeError::Recv)?;
                continue;
            }
            let (request, requester) = (next.id, next.from);
            let data = handler(&next).map_err(|error| ServeError::Handler {
                request,
                requester,
                error,
            })?;
            answered += 1;
            let refused = |errno| ServeError::Reply {
                request,
                requester,
                errno,
            };
            if count.is_some_and(|c| answered >= c) {
                return match self.reply(&next, data) {
                    Ok(_) | Err(Errno::EADDRNOTAVAIL) => Ok(answered),
                    Err(e) => Err(refused(e)),
                };
            }
            let (sent, m) = match self.reply_then_recv(&next, data, Some(FIRST_WAIT)) {
                Ok(r) => r,
                // The round trip failed as a whole, the reply unsent: too
                // big to send at all, or the connection broke.
                Err(e) => return Err(refused(e)),
            };
            match sent {
                Ok(()) | Err(Errno::EADDRNOTAVAIL) => {}
                Err(e) => return Err(refused(e)),
            }
            next = match m {
                Some(m) => m,
                None => self.recv().map_err(ServeError::Recv)?,
            };
        }
    }

    /// Sends a request and waits for its reply (up to `timeout`; `None` =
    /// forever). The reply may be synthetic (`$.KBUS.Replier.GoneAway`, ...):
    /// check [`Message::is_synthetic`]. On `ETIMEDOUT` the reply still comes
    /// later, into the ordinary queue.
    pub fn call(
        &self,
        name: &str,
        data: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<Message, Errno> {
        self.link.send_and_wait_reply(
            Outgoing {
                name: self.name(name),
                data: data.into(),
                flags: Flags::WANT_A_REPLY,
                ..Default::default()
            },
            deadline(timeout),
        )
    }

    /// Waits for the reply to our request `request` (up to `timeout`),
    /// leaving other messages queued.
    pub fn wait_reply(
        &self,
        request: MessageId,
        timeout: Option<Duration>,
    ) -> Result<Message, Errno> {
        self.wait_reply_until(request, deadline(timeout))
    }

    fn wait_reply_until(
        &self,
        request: MessageId,
        deadline: Option<Instant>,
    ) -> Result<Message, Errno> {
        self.wait_for(Request::TakeReply(request), deadline, |r| match r {
            Response::TakeReply(m) => Ok(m),
            _ => Err(Errno::EPROTO),
        })?
        .ok_or(Errno::ETIMEDOUT)
    }

    /// A waitable operation with a deadline, unpacked.
    fn wait_for<T>(
        &self,
        request: Request,
        deadline: Option<Instant>,
        unpack: impl FnOnce(Response) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        unpack(self.link.call_wait(request, deadline)?)
    }

    /// Takes the reply to our request `request` if it has arrived (`EINVAL`
    /// if we have no such request outstanding).
    pub fn take_reply(&self, request: MessageId) -> Result<Option<Message>, Errno> {
        self.calls().take_reply(self.bus.id(), self.id, request)
    }

    /// Drops the pending (`ALL_OR_WAIT`) send; false if there was none.
    pub fn discard_send(&self) -> Result<bool, Errno> {
        self.calls().discard_send(self.bus.id(), self.id, ())
    }

    /// How the pending send ended, once it has.
    pub fn take_send_outcome(&self) -> Result<Option<SendOutcome>, Errno> {
        self.calls().take_send_outcome(self.bus.id(), self.id, ())
    }

    // ----- receiving -------------------------------------------------------

    /// Takes the next message if there is one.
    pub fn try_recv(&self) -> Result<Option<Message>, Errno> {
        self.link.recv()
    }

    /// Takes up to `max` queued messages at once (at least 1: `EINVAL` for
    /// 0), in queue order, without waiting, stopping once it holds 64 MiB of
    /// data. One bus operation however many it returns: the way to drain a
    /// busy queue.
    pub fn try_recv_batch(&self, max: u32) -> Result<Vec<Message>, Errno> {
        self.calls().recv_batch(self.bus.id(), self.id, max)
    }

    /// Waits for the next message.
    pub fn recv(&self) -> Result<Message, Errno> {
        loop {
            if let Some(m) = self.recv_timeout(None)? {
                return Ok(m);
            }
        }
    }

    /// Waits up to `timeout` (`None` = forever) for the next message.
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Result<Option<Message>, Errno> {
        self.link.recv_wait(deadline(timeout))
    }

    /// Waits up to `timeout` (`None` = forever) until there is at least one
    /// message, then takes up to `max` at once (an empty result means the
    /// timeout passed). `EINVAL` for `max` 0.
    pub fn recv_batch_timeout(
        &self,
        max: u32,
        timeout: Option<Duration>,
    ) -> Result<Vec<Message>, Errno> {
        self.wait_for(Request::RecvBatch(max), deadline(timeout), |r| match r {
            Response::RecvBatch(v) => Ok(v),
            _ => Err(Errno::EPROTO),
        })
    }

    /// An fd that `poll`/`epoll` report readable while this endpoint has a
    /// message (or a send outcome) to take. Level-triggered; owned by the
    /// endpoint.
    pub fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        self.link.readiness_fd()
    }

    /// An fd that polls readable when this endpoint's readiness may have
    /// changed, without adding an fd of its own (over the daemon: the
    /// endpoint's connection). After it polls readable, [`Self::refresh`]
    /// says where the endpoint stands. For event loops that keep one fd per
    /// endpoint; [`Self::readiness_fd`] is the simpler level-triggered fd.
    pub fn wake_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        self.link.wake_fd()
    }

    /// Takes in, without blocking, what the bus has said about this
    /// endpoint, and returns whether it has something to take (a message, a
    /// set-aside event or a send outcome).
    pub fn refresh(&self) -> Result<bool, Errno> {
        self.link.refresh()
    }

    // ----- settings and queries -------------------------------------------

    /// Sets the queue limit (at least 1; queued messages plus reserved reply
    /// slots). Returns the previous limit.
    pub fn set_queue_limit(&self, limit: u32) -> Result<u32, Errno> {
        self.calls().set_queue_limit(self.bus.id(), self.id, limit)
    }

    /// Turns "only once" on or off (one copy per message however many of
    /// our bindings match). Returns the previous value.
    pub fn set_only_once(&self, on: bool) -> Result<bool, Errno> {
        self.calls().set_only_once(self.bus.id(), self.id, on)
    }

    /// Turns the bus's replier bind events on or off. Turning them on queues
    /// for us an event per existing replier (`EBUSY` if they do not fit).
    /// Returns the previous value.
    pub fn set_replier_bind_events(&self, on: bool) -> Result<bool, Errno> {
        self.calls()
            .set_replier_bind_events(self.bus.id(), self.id, on)
    }

    /// Turns KBUS compatibility on or off for this endpoint (see
    /// `docs/kbus.md`): its sends that fail after validation still take a
    /// serial (and become its `last_sent`), its messages are measured in
    /// KBUS's entire form against the maximum message size, and its
    /// requests go to the most recently bound of equal wildcard repliers.
    /// Returns the previous value.
    pub fn set_kbus_compat(&self, on: bool) -> Result<bool, Errno> {
        self.calls().set_kbus_compat(self.bus.id(), self.id, on)
    }

    /// Turns monitoring on or off: a monitor gets a copy of every message
    /// the bus queues for anyone, synthetic replies included (copies that do
    /// not fit are counted lost). Returns the previous value.
    pub fn set_monitor(&self, on: bool) -> Result<bool, Errno> {
        self.calls().set_monitor(self.bus.id(), self.id, on)
    }

    // ----- nodes and handles (capabilities) -------------------------------

    /// Creates a node owned by this endpoint and returns our handle to it.
    /// Others get handles to it only from messages carrying it
    /// ([`Outgoing::carrying`]); anyone holding one can send to it.
    pub fn create_node(&self) -> Result<HandleId, Errno> {
        self.calls().create_node(self.bus.id(), self.id, ())
    }

    /// Drops one reference to one of our handles. The owner's last
    /// reference to a live node cannot be dropped (`EBUSY`); `ENOENT` for a
    /// handle we do not hold. When only the owner is left holding a node,
    /// the owner gets `$.KBUS.Node.Released`.
    pub fn release_handle(&self, handle: HandleId) -> Result<(), Errno> {
        self.calls().release_handle(self.bus.id(), self.id, handle)
    }

    /// Destroys nodes we own, atomically: every holder (us included) gets
    /// `$.KBUS.Node.Destroyed` naming its handle, after every message
    /// already queued for it; later sends to them are discarded, and later
    /// messages carrying them deliver `HandleId::INVALID`. `EPERM` if one is
    /// not ours, `EINVAL` for a duplicate or an already destroyed node.
    pub fn destroy_nodes(&self, handles: &[HandleId]) -> Result<(), Errno> {
        self.calls()
            .destroy_nodes(self.bus.id(), self.id, handles.to_vec())
    }

    /// Sends to the nodes behind `handles`: one copy to each node's owner,
    /// all or none (`EBUSY` if an owner's queue is full), in the bus's one
    /// order. Copies for destroyed nodes are discarded.
    pub fn send_to_handles(
        &self,
        handles: &[HandleId],
        name: &str,
        data: impl Into<Bytes>,
    ) -> Result<MessageId, Errno> {
        self.send(Outgoing::to_handles(handles.to_vec(), name, data))
    }

    /// This endpoint's statistics.
    pub fn stats(&self) -> Result<EndpointStats, Errno> {
        self.calls().endpoint_stats(self.bus.id(), self.id, ())
    }

    /// Closes the endpoint: unread requests are answered `GoneAway`, taken
    /// but unanswered ones `Ignored`, bindings removed.
    pub fn close(self) -> Result<(), Errno> {
        self.link.close()
    }
}

#[cfg(feature = "async")]
use crate::transport::{CallPoll, StartedCall};
#[cfg(feature = "async")]
use std::task::Waker;

/// What the async API needs of an endpoint's transport.
#[cfg(feature = "async")]
impl Endpoint {
    /// Sends a request for an async call (see [`Link::start_call`]).
    pub(crate) fn start_call(
        &self,
        name: &str,
        data: impl Into<Bytes>,
    ) -> Result<StartedCall, Errno> {
        self.link.start_call(Outgoing {
            name: self.name(name),
            data: data.into(),
            flags: Flags::WANT_A_REPLY,
            ..Default::default()
        })
    }

    /// Where a started async call stands ([`Link::poll_call`]).
    pub(crate) fn poll_call(&self, ticket: u32, waker: Option<&Waker>) -> Result<CallPoll, Errno> {
        self.link.poll_call(ticket, waker)
    }

    /// Wakes `waker` at the next arrival, if the transport can
    /// ([`Link::wake_at_arrival`]).
    pub(crate) fn wake_at_arrival(&self, waker: &Waker) -> bool {
        self.link.wake_at_arrival(waker)
    }

    /// Does [`Self::wake_at_arrival`] work on this transport?
    pub(crate) fn wakes_tasks(&self) -> bool {
        self.link.wakes_tasks()
    }

    /// Gives up a started async call ([`Link::abandon_call`]).
    pub(crate) fn abandon_call(&self, ticket: u32) -> Option<Message> {
        self.link.abandon_call(ticket)
    }
}
