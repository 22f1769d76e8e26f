//! Frames to kernel operations: the handshake, ownership and privilege
//! checks, fd pairing, pipelined calls, parking of waiting requests, and the
//! responses. Each frame costs its kernel operation plus O(1) here.

use std::collections::{HashMap, VecDeque};

use busbar_kernel::{
    Attachment, BusId, Credentials, EndpointId, Errno, MessageId, OpCode, Outgoing, Request,
    Response, Scope,
};
use busbar_wire::{
    FLAG_LAST_REQUEST, FLAG_QUIET, FLAG_READABLE, FLAG_WAIT, Frame, VERSION, WAIT_FOREVER, Welcome,
    WireError, emit_response, emit_welcome, is_empty_result, parse_hello, parse_request,
};

use crate::Limits;
use crate::conn::{Owned, ReceivedFd, State};
use crate::payload;
use crate::session::{ConnId, Server, UidUse};

/// Gives each message in a request the fds that came with it, and its data
/// when that came as a memfd ([`payload::take_data_fd`]). `Ok(Some(errno))`
/// refuses the request: `EOPNOTSUPP` if an fd is a Unix socket, `EINVAL` if
/// a data memfd is not sealed, `EMSGSIZE` for inline data over
/// `max_inline_data`; an error if fewer fds came than the frame names.
fn claim_fds(
    request: &mut Request,
    fds_in: &mut VecDeque<ReceivedFd>,
    uid: u32,
    held: &payload::DataMemfds,
    limits: &Limits,
) -> Result<Option<Errno>, WireError> {
    let outs: Vec<&mut Outgoing> = match request {
        Request::Send(a) => vec![&mut a.message],
        Request::SendBatch(v) => v.iter_mut().map(|a| &mut a.message).collect(),
        _ => return Ok(None),
    };
    let mut refused = None;
    for out in outs {
        if out.data.len() > limits.max_inline_data {
            refused.get_or_insert(Errno::EMSGSIZE);
        }
        let Some(att) = out.attached_fds() else {
            continue;
        };
        let (n, data_in_last) = (att.count as usize, att.data_in_last);
        if fds_in.len() < n {
            return Err(WireError::Invalid("frame names more fds than came with it"));
        }
        let fds: Vec<_> = fds_in.drain(..n).collect();
        if fds.iter().any(|f| f.unix_socket) {
            refused.get_or_insert(Errno::EOPNOTSUPP);
        }
        let mut fds: Vec<_> = fds.into_iter().map(|f| f.fd).collect();
        if data_in_last
            && refused.is_none()
            && let Err(e) = payload::take_data_fd(out, &mut fds, uid, held, limits)
        {
            refused.get_or_insert(e);
        }
        out.set_attached_fds((!fds.is_empty()).then(|| Attachment::from_fds(fds)));
    }
    Ok(refused)
}

/// Whether a request forwards message ids (a bridge's power).
fn forwards_ids(request: &Request) -> bool {
    match request {
        Request::Send(a) => a.message.id != MessageId::NONE,
        Request::SendBatch(v) => v.iter().any(|a| a.message.id != MessageId::NONE),
        _ => false,
    }
}

/// Would this operation take an endpoint or a binding past the uid's limit?
fn over_uid_limit(
    uids: &HashMap<u32, UidUse, foldhash::fast::RandomState>,
    limits: &Limits,
    uid: u32,
    op: OpCode,
) -> bool {
    let u = uids.get(&uid).copied().unwrap_or_default();
    match op {
        OpCode::Open => u.endpoints >= limits.max_endpoints_per_uid,
        OpCode::Bind => u.bindings >= limits.max_bindings_per_uid,
        _ => false,
    }
}

impl Server {
    /// Handles every complete buffered frame of a connection, until its
    /// output is full (the rest waits for it to drain).
    pub(crate) fn process(&mut self, c: ConnId) {
        loop {
            let Some(conn) = self.conns.get_mut(&c) else {
                return;
            };
            if conn.state == State::Closing {
                return;
            }
            if self.out_full(&self.conns[&c]) {
                return;
            }
            let conn = self.conns.get_mut(&c).expect("checked above");
            let frame = match conn.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.violation(c, &e.to_string(), None, Errno::EPROTO),
            };
            self.handle_frame(c, frame);
            self.recharge(c);
        }
    }

    fn handle_frame(&mut self, c: ConnId, frame: Frame) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.state == State::Greeting {
            self.mark_dirty(c);
            match parse_hello(&frame) {
                Ok(VERSION) => {
                    let welcome = Welcome {
                        version: VERSION,
                        max_frame: self.limits.max_frame.min(u32::MAX as usize) as u32,
                        buses: self.kernel.bus_count(),
                    };
                    let conn = self.conns.get_mut(&c).expect("checked above");
                    emit_welcome(&mut conn.out.buf, welcome);
                    conn.state = State::Serving;
                }
                Ok(v) => {
                    self.log(
                        busbar_kernel::Level::Warn,
                        format_args!("client speaks protocol version {v}, not {VERSION}"),
                    );
                    self.goodbye(c, Errno::EOPNOTSUPP);
                }
                Err(e) => self.violation(c, &e.to_string(), None, Errno::EPROTO),
            }
            return;
        }
        let seq = frame.header.seq;
        let wire = match parse_request(&frame) {
            Ok(w) => w,
            Err(e) => {
                let addressed = OpCode::from_u16(frame.header.kind).map(|op| (seq, op));
                return self.violation(c, &e.to_string(), addressed, Errno::EPROTO);
            }
        };
        let (bus, ep) = (BusId(wire.bus), EndpointId(wire.endpoint));
        let op = wire.request.code();
        let mut request = wire.request;
        let fds_refused = match claim_fds(
            &mut request,
            &mut conn.fds_in,
            conn.creds.uid,
            &self.data_memfds,
            &self.limits,
        ) {
            Ok(refused) => refused,
            Err(e) => return self.violation(c, &e.to_string(), Some((seq, op)), Errno::EPROTO),
        };
        if let Request::TakeReply(id) = &mut request
            && frame.header.flags & FLAG_LAST_REQUEST != 0
        {
            // Pipelined call: the request this endpoint's last Send sent.
            *id = conn
                .endpoints
                .get(&(bus, ep))
                .and_then(|o| o.last_request)
                .unwrap_or(MessageId::NONE);
        }
        let wait = (frame.header.flags & FLAG_WAIT != 0 && op.can_wait()).then(|| {
            let ms = frame.header.status as u32;
            let deadline =
                (ms != WAIT_FOREVER).then(|| now.saturating_add(u64::from(ms) * 1_000_000));
            (request.clone(), deadline)
        });
        let privileged_op = op.is_privileged() || forwards_ids(&request);
        let result = if op.scope() == Scope::Endpoint && !conn.owns(bus, ep) {
            Err(Errno::EPERM)
        } else if privileged_op && !conn.privileged {
            self.stats.privilege_refusals += 1;
            Err(Errno::EPERM)
        } else if let Some(e) = fds_refused {
            Err(e)
        } else if (op == OpCode::Open
            && conn.endpoints.len() >= self.limits.max_endpoints_per_connection)
            || (!conn.privileged && over_uid_limit(&self.uids, &self.limits, conn.creds.uid, op))
        {
            Err(Errno::EMFILE)
        } else {
            let sends_request = matches!(&request, Request::Send(a) if a.message.is_request());
            if let Request::Open(creds) = &mut request {
                // Credentials come from SO_PEERCRED, never from the client.
                *creds = Credentials {
                    pid: conn.creds.pid,
                    uid: conn.creds.uid,
                    gid: conn.creds.gid,
                };
            }
            let r = self.kernel.dispatch(bus, ep, request);
            if op == OpCode::Send {
                let sent = match &r {
                    Ok(Response::Send(id)) if sends_request => Some(*id),
                    _ => None,
                };
                if let Some(o) = self
                    .conns
                    .get_mut(&c)
                    .and_then(|c| c.endpoints.get_mut(&(bus, ep)))
                {
                    o.last_request = sent;
                }
            }
            r
        };
        match &result {
            Ok(Response::Open(new)) => {
                self.owners.insert((bus, *new), c);
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.endpoints.insert(
                        (bus, *new),
                        Owned {
                            armed: true,
                            last_request: None,
                            bindings: 0,
                        },
                    );
                    self.uids.entry(conn.creds.uid).or_default().endpoints += 1;
                }
            }
            Ok(Response::Close(())) => self.forget_endpoint(c, bus, ep),
            Ok(Response::Bind(())) => self.count_binding(c, bus, ep, true),
            Ok(Response::Unbind(())) => self.count_binding(c, bus, ep, false),
            _ => {}
        }
        // Wake-ups this operation caused for others; the requester learns
        // its own readiness from the response flag.
        self.deliver_wakes(Some((bus, ep)));
        let readable = op.scope() == Scope::Endpoint && self.kernel.host().readable(bus, ep);
        let max_parked = self.limits.max_parked_per_connection;
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        conn.arm(bus, ep);
        let mut result = result;
        if let Some((request, deadline)) = wait {
            let live = deadline.is_none_or(|d| d > now);
            if live && is_empty_result(&result) {
                if conn.parked >= max_parked {
                    result = Err(Errno::EMFILE);
                } else {
                    conn.parked += 1;
                    self.parked.park(bus, ep, c, seq, request, deadline);
                    return;
                }
            }
        }
        if frame.header.flags & FLAG_QUIET != 0 && result.is_ok() {
            return;
        }
        let flags = if readable { FLAG_READABLE } else { 0 };
        let at = conn.out.buf.len();
        let data_in_fds = payload::data_as_fds(&mut result);
        emit_response(&mut conn.out.buf, seq, op, flags, &result);
        conn.out.note_fds(at, &result, data_in_fds);
        self.mark_dirty(c);
    }

    fn count_binding(&mut self, c: ConnId, bus: BusId, ep: EndpointId, bound: bool) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let uid = conn.creds.uid;
        if let Some(o) = conn.endpoints.get_mut(&(bus, ep)) {
            let u = self.uids.entry(uid).or_default();
            if bound {
                o.bindings += 1;
                u.bindings += 1;
            } else {
                o.bindings -= 1;
                u.bindings -= 1;
            }
        }
    }

    fn forget_endpoint(&mut self, c: ConnId, bus: BusId, ep: EndpointId) {
        self.retry_parked(bus, ep, None);
        let orphans = self.parked.take(bus, ep);
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.parked -= orphans.len();
            if let Some(o) = conn.endpoints.remove(&(bus, ep))
                && let Some(u) = self.uids.get_mut(&conn.creds.uid)
            {
                u.endpoints -= 1;
                u.bindings -= o.bindings;
            }
            conn.stalled.remove(&(bus, ep));
        }
        self.owners.remove(&(bus, ep));
        self.kernel.host_mut().levels.remove(&(bus, ep));
    }
}
