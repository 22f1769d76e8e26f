//! Frames: a 16-byte little-endian header and a body.
//!
//! ```text
//! offset size field
//!  0     4    len     whole frame length, header included (16..=max_frame)
//!  4     2    kind    op code (request), 0x8000|op code (response), or a control kind
//!  6     2    flags   responses: bit 0 = the endpoint is readable after the operation
//!                      requests: bit 1 = wait (park the request until it finds something)
//!                                bit 2 = `TakeReply` of the request the last `Send` sent
//!                                bit 3 = quiet: no response if the operation succeeds
//!  8     4    seq     request number, echoed by its response (0 for control frames)
//! 12     4    status  responses: 0, or the errno the operation failed with
//!                      requests with the wait flag: the wait in milliseconds (u32::MAX = no limit)
//! ```

use bytes::{Buf, Bytes, BytesMut};

use busbar_kernel::{Errno, OpCode, Request, Response};

use crate::codec::{Reader, Wire, WireError};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// `"busbar\0\x01"`: the first 8 bytes of a client's `Hello`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"busbar\0\x01");

/// Response kind bit.
pub const RESPONSE: u16 = 0x8000;
/// Client → daemon, first frame: body `u64 magic, u32 version`.
pub const HELLO: u16 = 0x4000;
/// Daemon → client, answer to `Hello`: body `u32 version, u32 max_frame, u32 buses`.
pub const WELCOME: u16 = 0x4001;
/// Daemon → client, unsolicited: the connection's endpoint has something new
/// (sent at most once between two requests). Empty body.
pub const WAKE: u16 = 0x4002;
/// Daemon → client, last frame: the daemon is shutting down (status
/// `ESHUTDOWN`) or the client broke the protocol (status `EPROTO`, ...).
pub const GOODBYE: u16 = 0x4003;

/// Response flag: the endpoint has something to take after this operation.
pub const FLAG_READABLE: u16 = 1;
/// Request flag: if `Recv`, `RecvBatch`, `TakeReply` or `TakeSendOutcome`
/// finds nothing, the daemon parks the request and answers it as soon as it
/// would find something, or when the wait (header `status` field, in ms;
/// `u32::MAX` = no limit) runs out, with the empty result.
pub const FLAG_WAIT: u16 = 2;
/// Request flag on `TakeReply`: ignore its id and take the reply to the
/// request that this endpoint's previous `Send` on this connection sent
/// (`EINVAL` if that send failed or was not a request). Lets a client write
/// a request and the wait for its reply in one go.
pub const FLAG_LAST_REQUEST: u16 = 4;
/// Request flag: send no response if the operation succeeds (only its
/// error). A client uses it on the `Send` of a pipelined call: the reply
/// itself proves the request was sent, and the client is not woken twice.
pub const FLAG_QUIET: u16 = 8;
/// `status` of a waiting request that has no time limit.
pub const WAIT_FOREVER: u32 = u32::MAX;

/// Can this operation wait (with [`FLAG_WAIT`])?
pub fn can_wait(op: OpCode) -> bool {
    op.can_wait()
}

/// Is this the "found nothing" result of a waitable operation?
pub fn is_empty_result(r: &Result<Response, Errno>) -> bool {
    r.as_ref().is_ok_and(is_empty_response)
}

/// Is this the "found nothing" response of a waitable operation?
pub fn is_empty_response(r: &Response) -> bool {
    match r {
        Response::Recv(m) | Response::TakeReply(m) => m.is_none(),
        Response::TakeSendOutcome(o) => o.is_none(),
        Response::RecvBatch(v) => v.is_empty(),
        _ => false,
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whole frame length.
    pub len: u32,
    /// Frame kind.
    pub kind: u16,
    /// Flags.
    pub flags: u16,
    /// Request number.
    pub seq: u32,
    /// 0 or an errno number.
    pub status: i32,
}

impl FrameHeader {
    /// Parses a header from the first 16 bytes of `b` (`None` if shorter).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Self {
            len: u32_at(0),
            kind: u16::from_le_bytes([h[4], h[5]]),
            flags: u16::from_le_bytes([h[6], h[7]]),
            seq: u32_at(8),
            status: u32_at(12) as i32,
        })
    }

    fn emit(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..6].copy_from_slice(&self.kind.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.status.to_le_bytes());
    }
}

/// Appends a frame whose body `body` writes.
pub fn emit_frame(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    status: i32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    body(out);
    // Every frame busbar makes is far below 4 GiB (messages are bounded by
    // the maximum message size, batches by `RECV_BATCH_BYTES`); saturate
    // rather than wrap if that ever broke, so the peer sees a bad length.
    let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    FrameHeader {
        len,
        kind,
        flags,
        seq,
        status,
    }
    .emit(&mut out[start..start + HEADER_LEN]);
}

/// A frame split off a byte stream.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Its header.
    pub header: FrameHeader,
    /// Its body (header stripped).
    pub body: Bytes,
}

/// Splits a byte stream into frames, checking lengths before buffering.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameReader {
    /// A reader refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(64 * 1024),
            max_frame,
        }
    }

    /// The buffer to read more bytes into (append to it).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, if one is buffered. A bad length is an
    /// error (the stream cannot be resynchronised).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let Some(header) = FrameHeader::parse(&self.buf) else {
            return Ok(None);
        };
        let len = header.len as usize;
        if len < HEADER_LEN {
            return Err(WireError::Invalid("frame length"));
        }
        if len > self.max_frame {
            return Err(WireError::TooLong(len));
        }
        if self.buf.len() < len {
            // Memory is taken as bytes arrive, never from a declared length.
            return Ok(None);
        }
        let mut frame = self.buf.split_to(len).freeze();
        frame.advance(HEADER_LEN);
        Ok(Some(Frame {
            header,
            body: frame,
        }))
    }
}

fn decode_all<T: Wire>(body: Bytes) -> Result<T, WireError> {
    let mut r = Reader::new(body);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// `Hello` body.
pub fn emit_hello(out: &mut Vec<u8>) {
    emit_frame(out, HELLO, 0, 0, 0, |b| {
        MAGIC.encode(b);
        VERSION.encode(b);
    });
}

/// Parses a `Hello` body: the client's version.
pub fn parse_hello(frame: &Frame) -> Result<u32, WireError> {
    if frame.header.kind != HELLO {
        return Err(WireError::UnknownKind(frame.header.kind));
    }
    let (magic, version): (u64, u32) = {
        let mut r = Reader::new(frame.body.clone());
        let m = u64::decode(&mut r)?;
        let v = u32::decode(&mut r)?;
        r.finish()?;
        (m, v)
    };
    if magic != MAGIC {
        return Err(WireError::Invalid("hello magic"));
    }
    Ok(version)
}

/// What a daemon says in `Welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version.
    pub version: u32,
    /// Largest frame either side may send.
    pub max_frame: u32,
    /// Buses the daemon serves now.
    pub buses: u32,
}

/// `Welcome` frame.
pub fn emit_welcome(out: &mut Vec<u8>, w: Welcome) {
    emit_frame(out, WELCOME, 0, 0, 0, |b| {
        w.version.encode(b);
        w.max_frame.encode(b);
        w.buses.encode(b);
    });
}

/// Parses a `Welcome` frame.
pub fn parse_welcome(frame: &Frame) -> Result<Welcome, WireError> {
    if frame.header.kind != WELCOME {
        return Err(WireError::UnknownKind(frame.header.kind));
    }
    let mut r = Reader::new(frame.body.clone());
    let w = Welcome {
        version: u32::decode(&mut r)?,
        max_frame: u32::decode(&mut r)?,
        buses: u32::decode(&mut r)?,
    };
    r.finish()?;
    Ok(w)
}

/// A request on the wire: which bus and endpoint it is for, and the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRequest {
    /// The bus.
    pub bus: u32,
    /// The endpoint (0 for kernel- and bus-scoped operations).
    pub endpoint: u32,
    /// The operation.
    pub request: Request,
}

macro_rules! define_wire {
    ($( $(#[$doc:meta])* $code:literal => $name:ident($args:ty) -> $reply:ty, $scope:ident, $method:ident, [$($err:ident),*], [$($prop:ident),*]; )*) => {
        /// Appends a request frame (body: `u32 bus, u32 endpoint`, then the
        /// arguments). `wait_ms`: set [`FLAG_WAIT`] with this wait. `flags`:
        /// further request flags ([`FLAG_LAST_REQUEST`]).
        pub fn emit_request(out: &mut Vec<u8>, seq: u32, bus: u32, endpoint: u32, request: &Request, wait_ms: Option<u32>, flags: u16) {
            let kind = request.code() as u16;
            let (flags, status) = match wait_ms {
                Some(ms) => (flags | FLAG_WAIT, ms as i32),
                None => (flags, 0),
            };
            emit_frame(out, kind, flags, seq, status, |b| {
                bus.encode(b);
                endpoint.encode(b);
                match request { $( Request::$name(a) => a.encode(b), )* }
            });
        }

        /// Decodes a request frame.
        pub fn parse_request(frame: &Frame) -> Result<WireRequest, WireError> {
            let kind = frame.header.kind;
            let op = OpCode::from_u16(kind).ok_or(WireError::UnknownKind(kind))?;
            let mut r = Reader::new(frame.body.clone());
            let bus = u32::decode(&mut r)?;
            let endpoint = u32::decode(&mut r)?;
            let request = match op {
                $( OpCode::$name => Request::$name(<$args>::decode(&mut r)?), )*
            };
            r.finish()?;
            Ok(WireRequest { bus, endpoint, request })
        }

        /// Appends the response frame to request `seq` of kind `op`.
        pub fn emit_response(out: &mut Vec<u8>, seq: u32, op: OpCode, flags: u16, result: &Result<Response, Errno>) {
            let kind = RESPONSE | op as u16;
            match result {
                Err(e) => emit_frame(out, kind, flags, seq, e.number(), |_| {}),
                Ok(resp) => emit_frame(out, kind, flags, seq, 0, |b| match resp {
                    $( Response::$name(v) => v.encode(b), )*
                }),
            }
        }

        /// Decodes a response frame (`Err` inside: the operation failed).
        pub fn parse_response(frame: &Frame) -> Result<Result<Response, Errno>, WireError> {
            let kind = frame.header.kind;
            if kind & RESPONSE == 0 {
                return Err(WireError::UnknownKind(kind));
            }
            let op = OpCode::from_u16(kind & !RESPONSE).ok_or(WireError::UnknownKind(kind))?;
            if frame.header.status != 0 {
                if !frame.body.is_empty() {
                    return Err(WireError::TrailingBytes);
                }
                return Ok(Err(Errno::from_number(frame.header.status).ok_or(WireError::Invalid("errno"))?));
            }
            Ok(Ok(match op {
                $( OpCode::$name => Response::$name(decode_all::<$reply>(frame.body.clone())?), )*
            }))
        }
    };
}

busbar_kernel::operation_table!(define_wire);
