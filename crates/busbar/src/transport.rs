//! How a [`crate::Bus`] reaches its kernel. One trait pair, two
//! implementations: in-process (the kernel linked in, [`crate::local`]) and,
//! later, the daemon client. Everything above this seam (the whole public
//! API) is shared, so a program moves between them by changing the line that
//! makes the `Bus`.

use std::fmt::Debug;
use std::os::fd::BorrowedFd;
use std::task::Waker;
use std::time::Instant;

use busbar_kernel::{
    BusId, EndpointId, Errno, Message, MessageId, Operations, Outgoing, Request, Response, SendArgs,
};

/// A way to reach a kernel's buses.
pub(crate) trait Connector: Send + Sync + Debug {
    /// Opens an endpoint on `bus`.
    fn open(&self, bus: BusId) -> Result<Box<dyn Link>, Errno>;
    /// Performs a kernel- or bus-scoped operation.
    fn call(&self, bus: BusId, request: Request) -> Result<Response, Errno>;
}

/// One open endpoint's connection to its bus.
pub(crate) trait Link: Send + Sync + Debug {
    /// The endpoint's id.
    fn endpoint(&self) -> EndpointId;
    /// Performs an operation as this endpoint.
    fn call(&self, request: Request) -> Result<Response, Errno>;
    /// Performs `Send`: the same as [`Self::call`] with it, which a
    /// transport may do without building a [`Request`] (every message goes
    /// through here).
    fn send(&self, args: SendArgs) -> Result<MessageId, Errno> {
        match self.call(Request::Send(args))? {
            Response::Send(id) => Ok(id),
            _ => Err(Errno::EPROTO),
        }
    }
    /// Performs `Recv` (takes the next message, if any), like [`Self::send`].
    fn recv(&self) -> Result<Option<Message>, Errno> {
        match self.call(Request::Recv(()))? {
            Response::Recv(m) => Ok(m),
            _ => Err(Errno::EPROTO),
        }
    }
    /// Performs `Recv`, waiting until there is a message or `deadline`
    /// passes (`None`), like [`Self::call_wait`] with it.
    fn recv_wait(&self, deadline: Option<Instant>) -> Result<Option<Message>, Errno> {
        match self.call_wait(Request::Recv(()), deadline)? {
            Response::Recv(m) => Ok(m),
            _ => Err(Errno::EPROTO),
        }
    }
    /// Performs a waitable operation (`Recv`, `RecvBatch`, `TakeReply`,
    /// `TakeSendOutcome`): if it finds nothing, waits until it would find
    /// something, or until `deadline` (then returns the empty result). No
    /// wake-up can be missed: the transport re-checks after every one.
    fn call_wait(&self, request: Request, deadline: Option<Instant>) -> Result<Response, Errno>;
    /// Sends `message`, then performs the waitable operation `then` (until
    /// `deadline`), as one round trip where the transport allows: whether
    /// the send succeeded, and `then`'s response (it happens whatever the
    /// send did).
    fn send_then_wait(
        &self,
        message: Outgoing,
        then: Request,
        deadline: Option<Instant>,
    ) -> Result<(Result<(), Errno>, Response), Errno>;
    /// Sends a request and waits (until `deadline`) for its reply: the
    /// reply, `ETIMEDOUT`, or the send's error.
    fn send_and_wait_reply(
        &self,
        request: Outgoing,
        deadline: Option<Instant>,
    ) -> Result<Message, Errno>;
    /// Sends a request for an async call. A transport that can have its
    /// reply come by itself (the daemon: a `TakeReply` parked with it, so
    /// the reply is that operation's answer, with no further round trip)
    /// returns a ticket for [`Self::poll_call`]; otherwise the request's
    /// id, whose reply is then looked for after readiness events.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn start_call(&self, request: Outgoing) -> Result<StartedCall, Errno> {
        match self.call(Request::Send(SendArgs {
            message: request,
            deadline: None,
        }))? {
            Response::Send(id) => Ok(StartedCall::Sent(id)),
            _ => Err(Errno::EPROTO),
        }
    }
    /// Where a started call stands, without blocking; `waker` (if given) is
    /// woken when that may have changed.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn poll_call(&self, ticket: u32, waker: Option<&Waker>) -> Result<CallPoll, Errno> {
        let _ = (ticket, waker);
        Err(Errno::EINVAL)
    }
    /// Gives up a started call: its reply if it has come (otherwise the
    /// reply, when it comes, is handed out by the endpoint's next receive).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn abandon_call(&self, ticket: u32) -> Option<Message> {
        let _ = ticket;
        None
    }
    /// Registers `waker` to be woken at the endpoint's next arrival (or
    /// close), if the transport can (in-process: the bus wakes it directly,
    /// sooner than through the readiness fd); false if not. Register, then
    /// look: an arrival after the look wakes it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn wake_at_arrival(&self, waker: &Waker) -> bool {
        let _ = waker;
        false
    }
    /// Does [`Self::wake_at_arrival`] work here?
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn wakes_tasks(&self) -> bool {
        false
    }
    /// An fd that polls readable while the endpoint has something to take.
    fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno>;
    /// An fd that polls readable when the endpoint's readiness may have
    /// changed (daemon: the connection's socket, with a frame unread).
    /// Adds no fd of its own. After it polls readable, call `refresh`.
    fn wake_fd(&self) -> Result<BorrowedFd<'_>, Errno>;
    /// Takes in, without blocking, whatever the transport has been told
    /// about the endpoint, and returns whether it has something to take.
    fn refresh(&self) -> Result<bool, Errno>;
    /// Closes the endpoint (idempotent).
    fn close(&self) -> Result<(), Errno>;
}

/// The table's typed calls ([`Operations`]) over a connector.
pub(crate) struct ViaConnector<'a>(pub &'a dyn Connector);

impl Operations for ViaConnector<'_> {
    fn call(&mut self, bus: BusId, _: EndpointId, request: Request) -> Result<Response, Errno> {
        self.0.call(bus, request)
    }
}

/// The table's typed calls ([`Operations`]) over an endpoint's link.
pub(crate) struct ViaLink<'a>(pub &'a dyn Link);

impl Operations for ViaLink<'_> {
    fn call(&mut self, _: BusId, _: EndpointId, request: Request) -> Result<Response, Errno> {
        self.0.call(request)
    }
}

/// How an async call's request went ([`Link::start_call`]).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) enum StartedCall {
    /// Sent; look for the reply to this id.
    Sent(MessageId),
    /// Sent, with its reply coming by itself: poll this ticket.
    Ticket(u32),
}

/// Where a started call stands ([`Link::poll_call`]).
#[derive(Debug)]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) enum CallPoll {
    /// Nothing yet.
    Pending,
    /// The reply (perhaps synthetic).
    Reply(Message),
    /// The request was refused.
    Failed(Errno),
    /// The request went out as this id, but its reply will not come by
    /// itself (the daemon would park no more waits): look for it.
    Unparked(MessageId),
}
