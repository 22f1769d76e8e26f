//! One client connection as the session sees it: its frame reader, its
//! output (bytes, and the fds that must ride on given bytes), the endpoints
//! it opened, the fds it sent ahead of the frames that claim them.
//!
//! Output invariant: `Output::fds` is ordered by offset; each entry's fds
//! go out with the first byte of the frame at that offset (`SCM_RIGHTS` on
//! that byte), the rest of the bytes with plain writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use busbar_kernel::{
    Attachment, BusId, Credentials, EndpointId, Errno, MessageId, Nanos, Response,
};
use busbar_wire::FrameReader;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for `Hello` (until the hello deadline).
    Greeting,
    /// Handling requests.
    Serving,
    /// A `Goodbye` is queued; nothing more is read; closed once it is
    /// written (or at the linger deadline).
    Closing,
}

/// An endpoint a connection opened.
#[derive(Debug)]
pub(crate) struct Owned {
    /// A `Wake` may be sent (re-armed by every request on the endpoint).
    pub armed: bool,
    /// The request the endpoint's last `Send` sent, if that is what it did:
    /// what `TakeReply` of id `{0,0}` waits for (pipelined calls).
    pub last_request: Option<MessageId>,
    /// Bindings it holds (charged to the uid).
    pub bindings: usize,
}

/// Bytes to send, and the fds that go with some of them.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pub sent: usize,
    /// (offset, attachments, fds of them already sent, bytes of message
    /// data in those fds).
    pub fds: VecDeque<(usize, Vec<Attachment>, usize, usize)>,
    /// Fds in `fds` not yet sent.
    pub fd_count: usize,
    /// Message data in memfds among `fds` not yet sent, in bytes.
    pub data_in_fds: usize,
}

impl Output {
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// What the output holds for the output limit: its bytes, and the
    /// message data riding in memfds (as if it were inline), so a client
    /// that stops reading holds no more data back from its queue either way.
    pub fn weight(&self) -> usize {
        self.pending() + self.data_in_fds
    }

    /// Records the fds a response frame starting at `at` must carry, with
    /// `data_in_fds` bytes of message data in them.
    pub fn note_fds(&mut self, at: usize, result: &Result<Response, Errno>, data_in_fds: usize) {
        let atts: Vec<Attachment> = match result {
            Ok(Response::Recv(Some(m)) | Response::TakeReply(Some(m))) => {
                m.fds.iter().cloned().collect()
            }
            Ok(Response::RecvBatch(v)) => v.iter().filter_map(|m| m.fds.clone()).collect(),
            _ => Vec::new(),
        };
        if !atts.is_empty() {
            self.fd_count += atts.iter().map(|a| a.count as usize).sum::<usize>();
            self.data_in_fds += data_in_fds;
            self.fds.push_back((at, atts, 0, data_in_fds));
        }
    }

    /// The next bytes to write, and the fds that go with them.
    pub fn transmit(&self) -> Option<(&[u8], Vec<BorrowedFd<'_>>)> {
        if self.sent == self.buf.len() {
            return None;
        }
        let with_fds = self.fds.front().is_some_and(|f| f.0 == self.sent);
        let end = self
            .fds
            .iter()
            .map(|f| f.0)
            .find(|&o| o > self.sent)
            .unwrap_or(self.buf.len());
        let fds = match self.fds.front() {
            Some((_, atts, done, _)) if with_fds => atts
                .iter()
                .filter_map(Attachment::fds)
                .flatten()
                .map(AsFd::as_fd)
                .skip(*done)
                .collect(),
            _ => Vec::new(),
        };
        Some((&self.buf[self.sent..end], fds))
    }

    /// Records that `n` bytes and `nfds` of the fds offered went out.
    pub fn sent(&mut self, n: usize, nfds: usize, max_keep: usize) {
        let with_fds = self.fds.front().is_some_and(|f| f.0 == self.sent);
        self.sent += n;
        if with_fds && let Some(front) = self.fds.front_mut() {
            front.2 += nfds;
            self.fd_count -= nfds;
            let total: usize = front.1.iter().map(|a| a.count as usize).sum();
            if front.2 >= total {
                self.data_in_fds -= front.3;
                self.fds.pop_front();
            } else {
                // The rest ride on the next byte.
                front.0 = self.sent;
            }
        }
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent > max_keep {
            self.buf.drain(..self.sent);
            for f in &mut self.fds {
                f.0 -= self.sent;
            }
            self.sent = 0;
        }
    }
}

/// A file descriptor a client sent, as the driver classified it.
#[derive(Debug)]
pub struct ReceivedFd {
    /// The fd (now the daemon's).
    pub fd: OwnedFd,
    /// It is a Unix socket: refused in messages (a connection passed over
    /// itself would never be closed).
    pub unix_socket: bool,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub creds: Credentials,
    pub privileged: bool,
    pub reader: FrameReader,
    pub out: Output,
    pub state: State,
    /// The client shut its writing side: answer what it sent, then close.
    pub eof: bool,
    pub endpoints: HashMap<(BusId, EndpointId), Owned, foldhash::fast::RandomState>,
    pub fds_in: VecDeque<ReceivedFd>,
    /// Parked waits of this connection.
    pub parked: usize,
    /// Endpoints whose parked waits were not retried because the output
    /// was full; retried when it drains.
    pub stalled: HashSet<(BusId, EndpointId), foldhash::fast::RandomState>,
    /// In the dirty list.
    pub dirty: bool,
    /// Writing is paused until then (the OS refused the fds: back-off).
    pub write_paused_until: Option<Nanos>,
    pub write_backoff: Nanos,
    /// Bytes of incomplete frames last charged to the uid.
    pub partial_charged: usize,
    /// Fds last charged to the uid (unclaimed plus waiting to be written).
    pub fds_charged: usize,
}

impl Conn {
    pub fn new(creds: Credentials, privileged: bool, max_frame: usize) -> Self {
        Self {
            creds,
            privileged,
            reader: FrameReader::new(max_frame),
            out: Output::default(),
            state: State::Greeting,
            eof: false,
            endpoints: HashMap::default(),
            fds_in: VecDeque::new(),
            parked: 0,
            stalled: HashSet::default(),
            dirty: false,
            write_paused_until: None,
            write_backoff: 0,
            partial_charged: 0,
            fds_charged: 0,
        }
    }

    pub fn owns(&self, bus: BusId, ep: EndpointId) -> bool {
        self.endpoints.contains_key(&(bus, ep))
    }

    pub fn arm(&mut self, bus: BusId, ep: EndpointId) {
        if let Some(o) = self.endpoints.get_mut(&(bus, ep)) {
            o.armed = true;
        }
    }

    /// Takes the right to send a `Wake` for this endpoint.
    pub fn disarm(&mut self, bus: BusId, ep: EndpointId) -> bool {
        self.endpoints
            .get_mut(&(bus, ep))
            .is_some_and(|o| std::mem::replace(&mut o.armed, false))
    }

    /// Fds held for this connection outside the kernel.
    pub fn fds_held(&self) -> usize {
        self.fds_in.len() + self.out.fd_count
    }
}
