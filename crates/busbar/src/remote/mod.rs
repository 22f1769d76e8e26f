//! The daemon transport: the same API over a Unix socket to `busbar daemon`.
//!
//! Each endpoint has its own connection (so a slow or blocked endpoint never
//! holds up another), plus one control connection per `Bus` for bus-scoped
//! operations. A call writes one request frame and reads until its response.
//! Waiting is done by the daemon: a waitable request (`FLAG_WAIT`) is parked
//! there and answered when it finds something or at its deadline.
//!
//! The readiness fd is an epoll set holding the socket (a `Wake`, or any
//! frame, waiting in it unread) and a local eventfd holding the readiness
//! level the frames already read say, level-triggered like the in-process
//! one. Every frame the daemon sends about the endpoint is newer than the
//! ones before it in the byte stream: a response carries the endpoint's
//! readability just after that operation (`FLAG_READABLE`), and a `Wake`
//! says something arrived since the endpoint's last response. So the level
//! is the one the *last* such frame read says, whoever read it and whatever
//! it answered, applied as frames are read, in stream order, under the
//! connection lock (`Conn::file_frames`). A `Wake` read together with a
//! response (the daemon sends at most one between two requests, so it is
//! never repeated) is thereby never lost: it leaves the eventfd set.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;
use std::time::Instant;

use busbar_kernel::{
    BusId, EndpointId, Errno, Message, MessageId, Outgoing, Request, Response, SendArgs,
};
use busbar_wire::{FLAG_LAST_REQUEST, FLAG_QUIET};

use crate::transport::{CallPoll, Connector, Link, StartedCall};

mod conn;
use conn::{Answer, Conn};

/// A way to reach the buses of one daemon.
#[derive(Debug)]
pub(crate) struct RemoteConnector {
    path: PathBuf,
    control: Conn,
}

impl RemoteConnector {
    pub(crate) fn connect(path: &Path) -> Result<Self, Errno> {
        Ok(Self {
            path: path.to_owned(),
            control: Conn::connect(path)?,
        })
    }
}

impl Connector for RemoteConnector {
    fn open(&self, bus: BusId) -> Result<Box<dyn Link>, Errno> {
        let conn = Conn::connect(&self.path)?;
        // The daemon stamps SO_PEERCRED credentials over these.
        let (r, _) = conn.call(
            bus,
            EndpointId::BUS,
            &Request::Open(Default::default()),
            None,
        )?;
        let Response::Open(endpoint) = r? else {
            return Err(Errno::EPROTO);
        };
        Ok(Box::new(RemoteLink {
            conn,
            bus,
            endpoint,
            closed: AtomicBool::new(false),
        }))
    }

    fn call(&self, bus: BusId, request: Request) -> Result<Response, Errno> {
        self.control.call(bus, EndpointId::BUS, &request, None)?.0
    }
}

#[derive(Debug)]
struct RemoteLink {
    conn: Conn,
    bus: BusId,
    endpoint: EndpointId,
    closed: AtomicBool,
}

impl RemoteLink {
    /// One operation; a receive is answered first from the replies of
    /// given-up async calls held here (they are the endpoint's messages).
    fn call_with(
        &self,
        request: Request,
        wait: Option<Option<Instant>>,
    ) -> Result<Response, Errno> {
        if let Some(r) = self.conn.take_strays(&request) {
            return Ok(r);
        }
        self.conn.call(self.bus, self.endpoint, &request, wait)?.0
    }
}

impl RemoteLink {
    /// In one write: a quiet send (answered only if it fails) and then
    /// `then`, waiting until `deadline`. Returns the send's outcome and
    /// `then`'s answer.
    fn quiet_send_then(
        &self,
        message: Outgoing,
        then: Request,
        then_flags: u16,
        deadline: Option<Instant>,
    ) -> Result<(Result<(), Errno>, Answer), Errno> {
        let send = Request::Send(SendArgs {
            message,
            deadline: None,
        });
        let wait = deadline
            .is_none_or(|d| d > Instant::now())
            .then_some(deadline);
        let mut rs = self.conn.call_many(
            self.bus,
            self.endpoint,
            &[(&send, None, FLAG_QUIET), (&then, wait, then_flags)],
        )?;
        let (next, flags) = rs.pop().flatten().ok_or(Errno::EPROTO)?;
        let sent = match rs.pop().flatten() {
            None => Ok(()),
            Some((Err(e), _)) => Err(e),
            Some((Ok(_), _)) => return Err(Errno::EPROTO),
        };
        Ok((sent, (next, flags)))
    }
}

impl Link for RemoteLink {
    fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    fn call(&self, request: Request) -> Result<Response, Errno> {
        self.call_with(request, None)
    }

    fn call_wait(&self, request: Request, deadline: Option<Instant>) -> Result<Response, Errno> {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return self.call_with(request, None);
        }
        self.call_with(request, Some(deadline))
    }

    fn send_then_wait(
        &self,
        message: Outgoing,
        then: Request,
        deadline: Option<Instant>,
    ) -> Result<(Result<(), Errno>, Response), Errno> {
        if let Some(r) = self.conn.take_strays(&then) {
            let sent = self.call_with(
                Request::Send(SendArgs {
                    message,
                    deadline: None,
                }),
                None,
            );
            return Ok((sent.map(|_| ()), r));
        }
        let (sent, (next, _)) = self.quiet_send_then(message, then, 0, deadline)?;
        Ok((sent, next?))
    }

    fn send_and_wait_reply(
        &self,
        request: Outgoing,
        deadline: Option<Instant>,
    ) -> Result<Message, Errno> {
        // The request, then "wait for the reply to the request just sent"
        // (TakeReply of id {0,0} with LAST_REQUEST), which the daemon parks.
        let take = Request::TakeReply(MessageId::NONE);
        let (sent, (taken, _)) =
            self.quiet_send_then(request, take, FLAG_LAST_REQUEST, deadline)?;
        sent?;
        match taken? {
            Response::TakeReply(Some(m)) => Ok(m),
            Response::TakeReply(None) => Err(Errno::ETIMEDOUT),
            _ => Err(Errno::EPROTO),
        }
    }

    fn start_call(&self, request: Outgoing) -> Result<StartedCall, Errno> {
        // The request, answered with its id, and "wait for the reply to the
        // request just sent", parked by the daemon until the reply comes.
        let send = Request::Send(SendArgs {
            message: request,
            deadline: None,
        });
        let take = Request::TakeReply(MessageId::NONE);
        match self.conn.start(
            self.bus,
            self.endpoint,
            &[(&send, None, 0), (&take, Some(None), FLAG_LAST_REQUEST)],
        )? {
            Ok(first) => Ok(StartedCall::Ticket(first)),
            Err(e) => Err(e),
        }
    }

    fn poll_call(&self, ticket: u32, waker: Option<&Waker>) -> Result<CallPoll, Errno> {
        let Some((taken, _)) = self.conn.poll_answer(ticket.wrapping_add(1), waker)? else {
            return Ok(CallPoll::Pending);
        };
        // The send's answer came first (the daemon answers in order).
        let (sent, _) = self.conn.poll_answer(ticket, None)?.ok_or(Errno::EPROTO)?;
        let id = match sent {
            Ok(Response::Send(id)) => id,
            Ok(_) => return Err(Errno::EPROTO),
            Err(e) => return Ok(CallPoll::Failed(e)),
        };
        Ok(match taken {
            Ok(Response::TakeReply(Some(m))) => CallPoll::Reply(m),
            // Not parked (too many waits parked on this connection): the
            // reply comes into the queue like any other.
            Err(Errno::EMFILE) | Ok(Response::TakeReply(None)) => CallPoll::Unparked(id),
            Err(e) => CallPoll::Failed(e),
            Ok(_) => return Err(Errno::EPROTO),
        })
    }

    fn abandon_call(&self, ticket: u32) -> Option<Message> {
        let _ = self.conn.abandon(ticket);
        match self.conn.abandon(ticket.wrapping_add(1)) {
            Some((Ok(Response::TakeReply(Some(m))), _)) => Some(m),
            _ => None,
        }
    }

    fn wake_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        Ok(self.conn.socket())
    }

    fn refresh(&self) -> Result<bool, Errno> {
        self.conn.refresh()
    }

    fn readiness_fd(&self) -> Result<BorrowedFd<'_>, Errno> {
        self.conn.readiness_fd()
    }

    fn close(&self) -> Result<(), Errno> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let r = self
            .conn
            .call(self.bus, self.endpoint, &Request::Close(()), None);
        self.conn.shutdown();
        r?.0.map(|_| ())
    }
}

impl Drop for RemoteLink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
