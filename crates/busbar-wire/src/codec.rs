//! Checked little-endian encoding of the types that cross the wire.
//!
//! [`Reader`] never panics: every read checks what is left and fails with
//! [`WireError`]. Collection lengths are checked against the bytes left
//! before anything is allocated, so a hostile length cannot make a decoder
//! allocate more than the frame it came in.

use std::sync::Arc;

use bytes::Bytes;

use busbar_kernel::{
    Attachment, BindArgs, BindingInfo, BusCounters, BusId, BusInfo, BusStats, Capabilities,
    Credentials, EndpointId, EndpointStats, Errno, ErrnoCount, Flags, HandleId, Header, Message,
    MessageId, NameCount, OrigFrom, Outgoing, Quota, QuotaStats, SendArgs, SendOutcome, UserUsage,
};

/// Why a frame could not be decoded. Every case is a protocol violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The frame ended before a field did.
    Truncated,
    /// Bytes were left over after the last field.
    TrailingBytes,
    /// A field had an impossible value (bad bool, bad UTF-8, unknown tag).
    Invalid(&'static str),
    /// The frame kind is unknown.
    UnknownKind(u16),
    /// The frame is longer than allowed.
    TooLong(usize),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "frame truncated"),
            Self::TrailingBytes => write!(f, "trailing bytes after the last field"),
            Self::Invalid(what) => write!(f, "invalid {what}"),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k:#x}"),
            Self::TooLong(n) => write!(f, "frame of {n} bytes is longer than allowed"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for Errno {
    fn from(_: WireError) -> Self {
        Self::EPROTO
    }
}

/// A checked cursor over a frame body.
#[derive(Debug)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// Reads from `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes `n` bytes (zero-copy).
    pub fn take(&mut self, n: usize) -> Result<Bytes, WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated);
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let end = self.pos.checked_add(N).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Fails unless everything was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }

    /// A length prefix for a collection whose items take at least
    /// `min_item` bytes each: never more than the bytes left could hold.
    fn len(&mut self, min_item: usize) -> Result<usize, WireError> {
        let n = u32::decode(self)? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }
}

/// A type with a wire encoding.
pub trait Wire: Sized {
    /// The fewest bytes an encoding takes (for length checks).
    const MIN_LEN: usize;
    /// Appends the encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value.
    fn decode(r: &mut Reader) -> Result<Self, WireError>;
}

macro_rules! int_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const MIN_LEN: usize = size_of::<$t>();
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(r: &mut Reader) -> Result<Self, WireError> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}
int_wire!(u8, u16, u32, u64, i32);

impl Wire for () {
    const MIN_LEN: usize = 0;
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(_: &mut Reader) -> Result<Self, WireError> {
        Ok(())
    }
}

impl Wire for bool {
    const MIN_LEN: usize = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        match u8::decode(r)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid("bool")),
        }
    }
}

impl Wire for Bytes {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        out.extend_from_slice(self);
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let n = r.len(1)?;
        r.take(n)
    }
}

impl Wire for Arc<str> {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let n = r.len(1)?;
        let b = r.take(n)?;
        let s = std::str::from_utf8(&b).map_err(|_| WireError::Invalid("UTF-8 string"))?;
        Ok(Self::from(s))
    }
}

impl<T: Wire> Wire for Option<T> {
    const MIN_LEN: usize = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        match u8::decode(r)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            _ => Err(WireError::Invalid("option tag")),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        for v in self {
            v.encode(out);
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let n = r.len(T::MIN_LEN)?;
        let mut v = Self::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

impl Wire for Errno {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        self.number().encode(out);
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        Self::from_number(i32::decode(r)?).ok_or(WireError::Invalid("errno"))
    }
}

impl<T: Wire> Wire for Result<T, Errno> {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                0i32.encode(out);
                v.encode(out);
            }
            Err(e) => e.encode(out),
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        match i32::decode(r)? {
            0 => Ok(Ok(T::decode(r)?)),
            n => Ok(Err(
                Errno::from_number(n).ok_or(WireError::Invalid("errno"))?
            )),
        }
    }
}

/// Implements [`Wire`] for a struct as the concatenation of its fields.
macro_rules! struct_wire {
    ($t:ident { $($f:ident : $ft:ty),* $(,)? }) => {
        impl Wire for $t {
            const MIN_LEN: usize = 0 $(+ <$ft as Wire>::MIN_LEN)*;
            fn encode(&self, out: &mut Vec<u8>) {
                $( self.$f.encode(out); )*
            }
            fn decode(r: &mut Reader) -> Result<Self, WireError> {
                Ok($t { $( $f: <$ft>::decode(r)?, )* })
            }
        }
    };
}

/// Implements [`Wire`] for a one-field tuple struct.
macro_rules! newtype_wire {
    ($($t:ident($inner:ty)),*) => {$(
        impl Wire for $t {
            const MIN_LEN: usize = <$inner as Wire>::MIN_LEN;
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
            }
            fn decode(r: &mut Reader) -> Result<Self, WireError> {
                Ok($t(<$inner>::decode(r)?))
            }
        }
    )*};
}

newtype_wire!(BusId(u32), EndpointId(u32), Flags(u32), HandleId(u64));

/// The payload of an [`Attachment`] decoded from the wire: only the count
/// travels in the frame; the fds themselves travel beside it (`SCM_RIGHTS`)
/// and the transport puts them in place of this marker.
#[derive(Debug)]
pub struct FdsBesideFrame;

/// In an attachment's count on the wire: the last fd holds the message's
/// data (a sealed memfd), and the frame's data field is empty.
pub const DATA_IN_LAST_FD: u32 = 1 << 31;

impl Wire for Attachment {
    const MIN_LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        let marker = if self.data_in_last {
            DATA_IN_LAST_FD
        } else {
            0
        };
        (self.count | marker).encode(out);
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let raw = u32::decode(r)?;
        let count = raw & !DATA_IN_LAST_FD;
        if count == 0 {
            return Err(WireError::Invalid("empty fd attachment"));
        }
        Ok(Self {
            count,
            data_in_last: raw & DATA_IN_LAST_FD != 0,
            payload: Arc::new(FdsBesideFrame),
        })
    }
}
struct_wire!(MessageId {
    network: u32,
    serial: u32
});
struct_wire!(OrigFrom {
    network: u32,
    local: u32
});
struct_wire!(Credentials {
    pid: u32,
    uid: u32,
    gid: u32
});
struct_wire!(BindArgs { name: Arc<str>, replier: bool });
impl Wire for Outgoing {
    const MIN_LEN: usize = 4 + 4 + 4 + 4 + 8 + 8 + 8 + 8 + 4 + 4 + 1;
    fn encode(&self, out: &mut Vec<u8>) {
        self.name.encode(out);
        self.data.encode(out);
        self.flags.encode(out);
        self.to.encode(out);
        self.in_reply_to.encode(out);
        self.id.encode(out);
        self.orig_from.encode(out);
        self.final_to.encode(out);
        self.destinations().to_vec().encode(out);
        self.carried().to_vec().encode(out);
        self.attached_fds().cloned().encode(out);
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let mut m = Self {
            name: Arc::<str>::decode(r)?,
            data: Bytes::decode(r)?,
            flags: Flags::decode(r)?,
            to: EndpointId::decode(r)?,
            in_reply_to: MessageId::decode(r)?,
            id: MessageId::decode(r)?,
            orig_from: OrigFrom::decode(r)?,
            final_to: OrigFrom::decode(r)?,
            caps: None,
        };
        let caps = Capabilities {
            to_handles: Vec::decode(r)?,
            handles: Vec::decode(r)?,
            fds: Option::decode(r)?,
        };
        if caps != Capabilities::default() {
            m.caps = Some(Box::new(caps));
        }
        Ok(m)
    }
}
struct_wire!(SendArgs { message: Outgoing, deadline: Option<u64> });
struct_wire!(Header {
    id: MessageId,
    in_reply_to: MessageId,
    to: EndpointId,
    from: EndpointId,
    orig_from: OrigFrom,
    final_to: OrigFrom,
    name: Arc<str>,
    data: Bytes,
    creds: Credentials,
    fds: Option<Attachment>,
});
struct_wire!(EndpointStats {
    id: EndpointId,
    pid: u32,
    uid: u32,
    queued: u32,
    set_aside: u32,
    queue_limit: u32,
    lost: u64,
    sent: u64,
    received: u64,
    outstanding_requests: u32,
    owed_replies: u32,
    bindings: u32,
    only_once: bool,
    pending_send: Option<MessageId>,
    queued_bytes: u64,
    handles: u32,
    nodes: u32,
    last_sent: MessageId,
    kbus_compat: bool,
});
struct_wire!(BindingInfo {
    id: u64,
    endpoint: EndpointId,
    pid: u32,
    uid: u32,
    replier: bool,
    name: Arc<str>,
});
struct_wire!(BusInfo {
    bus: BusId,
    buses: u32,
    max_message_size: u32,
    absolute_max_message_size: u32,
    replier_bind_events: bool,
    connections: u32,
    fds_held: u64,
});
struct_wire!(Quota {
    messages: u32,
    bytes: u64,
    handles: u32,
    fds: u32
});
struct_wire!(UserUsage {
    uid: u32,
    sender_uid: u32,
    messages: u32,
    bytes: u64,
    handles: u32,
    fds: u32
});
struct_wire!(QuotaStats { quota: Quota, users: Vec<UserUsage> });
struct_wire!(BusStats {
    bus: BusId,
    endpoints: u32,
    bindings: u32,
    replier_bindings: u32,
    next_serial: u32,
    max_message_size: u32,
    replier_bind_events: bool,
    set_aside: u32,
    endpoint_stats: Vec<EndpointStats>,
    counters: BusCounters,
});
struct_wire!(NameCount { name: Arc<str>, count: u64 });
struct_wire!(ErrnoCount {
    errno: i32,
    count: u64
});
struct_wire!(BusCounters {
    sent: u64,
    delivered: u64,
    lost: u64,
    synthetic: Vec<NameCount>,
    refused: Vec<ErrnoCount>,
});

impl Wire for Message {
    const MIN_LEN: usize = Header::MIN_LEN + 8 + 4 + 8;
    fn encode(&self, out: &mut Vec<u8>) {
        self.header().encode(out);
        self.flags.encode(out);
        self.lost.encode(out);
        self.handles.encode(out);
        self.destination.encode(out);
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let header = Header::decode(r)?;
        let flags = Flags::decode(r)?;
        let mut m = Self::new(header, flags);
        m.lost = u32::decode(r)?;
        m.handles = Vec::decode(r)?;
        m.destination = HandleId::decode(r)?;
        Ok(m)
    }
}

impl Wire for SendOutcome {
    const MIN_LEN: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        self.id.encode(out);
        match self.result {
            Ok(()) => 0i32.encode(out),
            Err(e) => e.encode(out),
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let id = MessageId::decode(r)?;
        let result = match i32::decode(r)? {
            0 => Ok(()),
            n => Err(Errno::from_number(n).ok_or(WireError::Invalid("errno"))?),
        };
        Ok(Self { id, result })
    }
}
