//! Messages: ids, flags, credentials, what a sender hands the bus
//! ([`Outgoing`]) and what a receiver gets back ([`Message`]).

use core::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// A bus: an independent message space inside one kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusId(pub u32);

/// An endpoint on one bus. Ids start at 1 and are never reused on that bus;
/// `EndpointId(0)` means "the bus itself" (the `from` of synthetic messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u32);

impl EndpointId {
    /// The bus itself.
    pub const BUS: Self = Self(0);
}

impl fmt::Display for BusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A handle: an endpoint's capability to a node (its own or another
/// endpoint's). Ids are local to their holder, start at 1 and are never
/// reused; `HandleId::INVALID` (0) stands for a handle to a node that was
/// destroyed before the message carrying it was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct HandleId(pub u64);

impl HandleId {
    /// No handle / a handle to a destroyed node.
    pub const INVALID: Self = Self(0);

    /// Is this a real handle id?
    pub fn is_valid(self) -> bool {
        self != Self::INVALID
    }
}

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

/// File descriptors attached to a message, opaque to the kernel: the
/// transport puts them in (`payload`, e.g. an `Arc<Vec<OwnedFd>>`), each
/// receiver's transport gives its user its own copies. All copies of a
/// message share one attachment; the last one dropped closes the fds, so a
/// message dropped unread leaks nothing.
///
/// On the wire only, the last fd may hold the message's data instead of
/// the frame (`data_in_last`: a sealed memfd; docs/protocol.md): transports
/// take it out on receipt, so the kernel and users never see such an
/// attachment.
#[derive(Clone)]
pub struct Attachment {
    /// How many fds (the data's memfd included, if `data_in_last`).
    pub count: u32,
    /// The last fd is a sealed memfd holding the message's data.
    pub data_in_last: bool,
    /// The fds themselves, in the transport's representation.
    pub payload: Arc<dyn core::any::Any + Send + Sync>,
}

impl Attachment {
    /// An attachment of real fds (what transports and users make).
    pub fn from_fds(fds: Vec<std::os::fd::OwnedFd>) -> Self {
        Self {
            count: fds.len() as u32,
            data_in_last: false,
            payload: Arc::new(fds),
        }
    }

    /// The fds, if the payload holds real ones.
    pub fn fds(&self) -> Option<&[std::os::fd::OwnedFd]> {
        self.payload
            .downcast_ref::<Vec<std::os::fd::OwnedFd>>()
            .map(Vec::as_slice)
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Attachment({} fds)", self.count)
    }
}

impl PartialEq for Attachment {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.data_in_last == other.data_in_last
    }
}

impl Eq for Attachment {}

/// The most file descriptors one message may carry (the kernel's
/// `SCM_MAX_FD`); more is `ETOOMANYREFS`.
pub const MAX_FDS_PER_MESSAGE: u32 = 253;

/// The most handles one message may carry, and the most nodes it may be
/// sent to; more is `ETOOMANYREFS`. (Every receiver gets its own handle
/// per carried node, so this bounds what one send makes the bus hold.)
pub const MAX_HANDLES_PER_MESSAGE: usize = 1024;

/// A message id: `{network, serial}`. `{0,0}` means "none". Locally sent
/// messages have network 0 and a serial from the bus's one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Non-zero only for messages forwarded from another bus.
    pub network: u32,
    /// The serial number, from the bus's counter (starts at 1, skips 0).
    pub serial: u32,
}

impl MessageId {
    /// The "no id" value.
    pub const NONE: Self = Self {
        network: 0,
        serial: 0,
    };

    /// Is this the "no id" value?
    pub fn is_none(self) -> bool {
        self == Self::NONE
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{}]", self.network, self.serial)
    }
}

/// `{network, local}` pair naming an endpoint across bridged buses
/// (`orig_from`, `final_to`). Carried through unchanged by the bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OrigFrom {
    /// The network the endpoint is on (0 = this bus).
    pub network: u32,
    /// The endpoint id on that network.
    pub local: u32,
}

/// Message flags. Bits 0–15 belong to the bus, 16–31 to the user (carried
/// through untouched).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    /// The message is a request.
    pub const WANT_A_REPLY: Self = Self(1 << 0);
    /// Set by the bus on the replier's copy of a request (and only there).
    pub const WANT_YOU_TO_REPLY: Self = Self(1 << 1);
    /// Generated by the bus. Cleared on anything a user sends.
    pub const SYNTHETIC: Self = Self(1 << 2);
    /// Put each copy at the front of its recipient's queue.
    pub const URGENT: Self = Self(1 << 3);
    /// Everyone or nobody; if a queue is full, `EAGAIN` and the send waits.
    pub const ALL_OR_WAIT: Self = Self(1 << 8);
    /// Everyone or nobody; if a queue is full, `EBUSY`.
    pub const ALL_OR_FAIL: Self = Self(1 << 9);
    /// The bits that belong to the bus.
    pub const BUS_MASK: Self = Self(0x0000_ffff);
    /// The bits that belong to the user.
    pub const USER_MASK: Self = Self(0xffff_0000);
    /// Every bus flag with its name, for display.
    pub const NAMED: &'static [(Self, &'static str)] = &[
        (Self::WANT_A_REPLY, "WANT_A_REPLY"),
        (Self::WANT_YOU_TO_REPLY, "WANT_YOU_TO_REPLY"),
        (Self::SYNTHETIC, "SYNTHETIC"),
        (Self::URGENT, "URGENT"),
        (Self::ALL_OR_WAIT, "ALL_OR_WAIT"),
        (Self::ALL_OR_FAIL, "ALL_OR_FAIL"),
    ];

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Are all bits of `other` set?
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` set.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` with the bits of `other` cleared.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The names of the bus flags that are set, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|&(_, n)| n)
            .collect()
    }
}

impl core::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.with(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#x}", self.0)?;
        for n in self.names() {
            write!(f, " {n}")?;
        }
        write!(f, ")")
    }
}

/// Who sent a message, as established by the bus when the endpoint was
/// opened (never as claimed by the sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What a sender asks the bus to send. The bus sets `from`, the serial (when
/// `network` is 0), `WANT_YOU_TO_REPLY` and `SYNTHETIC` itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// The message name (no wildcards).
    pub name: Arc<str>,
    /// Opaque payload.
    pub data: Bytes,
    /// Flags; `WANT_YOU_TO_REPLY` and `SYNTHETIC` are ignored.
    pub flags: Flags,
    /// For a stateful request, the replier it must reach; for a reply, the requester.
    pub to: EndpointId,
    /// For a reply, the id of the request it answers.
    pub in_reply_to: MessageId,
    /// Forwarded messages only: the id to keep (with a non-zero network).
    pub id: MessageId,
    /// Carried through unchanged.
    pub orig_from: OrigFrom,
    /// Carried through unchanged.
    pub final_to: OrigFrom,
    /// Capabilities: nodes to send to, handles and fds to carry. Boxed,
    /// since most messages have none (and a smaller `Outgoing` moves faster).
    pub caps: Option<Box<Capabilities>>,
}

/// What a message carries besides its name and data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Send to these nodes (the sender's handles to them) instead of by
    /// name: an atomic multicast, one copy per node to its owner.
    pub to_handles: Vec<HandleId>,
    /// Handles (the sender's) that every receiver gets its own handle to.
    pub handles: Vec<HandleId>,
    /// File descriptors every receiver gets its own copies of.
    pub fds: Option<Attachment>,
}

impl Outgoing {
    fn caps_mut(&mut self) -> &mut Capabilities {
        self.caps.get_or_insert_with(Default::default)
    }

    /// The nodes it is sent to (empty: routed by name).
    #[inline]
    pub fn destinations(&self) -> &[HandleId] {
        self.caps.as_ref().map_or(&[], |c| &c.to_handles)
    }

    /// The handles it carries.
    #[inline]
    pub fn carried(&self) -> &[HandleId] {
        self.caps.as_ref().map_or(&[], |c| &c.handles)
    }

    /// The fds it carries.
    #[inline]
    pub fn attached_fds(&self) -> Option<&Attachment> {
        self.caps.as_ref().and_then(|c| c.fds.as_ref())
    }

    /// Replaces the fds it carries (transports use it).
    pub fn set_attached_fds(&mut self, fds: Option<Attachment>) {
        self.caps_mut().fds = fds;
    }

    /// A message to the nodes behind `handles` (atomic multicast, all or
    /// none), not routed by name; `name` still says what it is.
    pub fn to_handles(handles: Vec<HandleId>, name: &str, data: impl Into<Bytes>) -> Self {
        let mut m = Self::announcement(name, data);
        m.caps_mut().to_handles = handles;
        m
    }

    /// Makes the message carry file descriptors (at most
    /// [`MAX_FDS_PER_MESSAGE`]): every receiver gets them.
    pub fn with_fds(mut self, fds: Vec<std::os::fd::OwnedFd>) -> Self {
        if !fds.is_empty() {
            self.caps_mut().fds = Some(Attachment::from_fds(fds));
        }
        self
    }

    /// Makes the message carry `handles`: each receiver gets its own handle
    /// to each of their nodes.
    pub fn carrying(mut self, handles: Vec<HandleId>) -> Self {
        self.caps_mut().handles = handles;
        self
    }

    /// An announcement: to every matching listener.
    pub fn announcement(name: &str, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            ..Default::default()
        }
    }

    /// A request: to the name's replier (and its listeners).
    pub fn request(name: &str, data: impl Into<Bytes>) -> Self {
        Self {
            flags: Flags::WANT_A_REPLY,
            ..Self::announcement(name, data)
        }
    }

    /// The reply to `request`, which must have reached us as its replier.
    pub fn reply_to(request: &Message, data: impl Into<Bytes>) -> Self {
        Self {
            name: request.name.clone(),
            data: data.into(),
            to: request.from,
            in_reply_to: request.id,
            ..Default::default()
        }
    }

    /// A stateful request: a request that must reach the same replier that
    /// sent `earlier` (a reply), or that `earlier` (a stateful request) was for.
    pub fn stateful_request(earlier: &Message, name: &str, data: impl Into<Bytes>) -> Self {
        let (to, final_to) = if earlier.is_reply() {
            (earlier.from, earlier.orig_from)
        } else {
            (earlier.to, earlier.final_to)
        };
        Self {
            to,
            final_to,
            ..Self::request(name, data)
        }
    }

    /// Adds flags (e.g. [`Flags::URGENT`], [`Flags::ALL_OR_FAIL`]).
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = self.flags.with(flags);
        self
    }

    /// Is this a request?
    #[inline]
    pub fn is_request(&self) -> bool {
        self.flags.contains(Flags::WANT_A_REPLY)
    }

    /// Is this a reply?
    #[inline]
    pub fn is_reply(&self) -> bool {
        !self.in_reply_to.is_none()
    }
}

/// The part of a message that every receiver shares (one allocation per
/// send, whatever the number of receivers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The bus-assigned id.
    pub id: MessageId,
    /// For replies: the request answered.
    pub in_reply_to: MessageId,
    /// The addressed endpoint (requester of a reply, replier of a stateful request), or 0.
    pub to: EndpointId,
    /// The sending endpoint (0 for the bus itself).
    pub from: EndpointId,
    /// Carried through from the sender.
    pub orig_from: OrigFrom,
    /// Carried through from the sender.
    pub final_to: OrigFrom,
    /// The message name.
    pub name: Arc<str>,
    /// The payload.
    pub data: Bytes,
    /// The sender's credentials, established by the bus.
    pub creds: Credentials,
    /// File descriptors carried.
    pub fds: Option<Attachment>,
}

/// A message as delivered to one receiver: the shared [`Header`] (its
/// fields read directly, `m.id`, `m.name`, `m.data`, through `Deref`) plus
/// this copy's flags and loss report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    header: Arc<Header>,
    /// Flags of this copy (`WANT_YOU_TO_REPLY` only on the replier's copy).
    pub flags: Flags,
    /// How many messages this receiver lost (its queue was full) since the
    /// previous message delivered to it.
    pub lost: u32,
    /// The receiver's own handles to the nodes the message carried
    /// (`HandleId::INVALID` for nodes destroyed before it was sent).
    pub handles: Vec<HandleId>,
    /// For a message sent to a node, and for node notifications: the
    /// receiver's handle to that node; otherwise `HandleId::INVALID`.
    pub destination: HandleId,
}

impl core::ops::Deref for Message {
    type Target = Header;
    #[inline]
    fn deref(&self) -> &Header {
        &self.header
    }
}

impl Message {
    /// A message with this header and flags (and no loss report).
    #[inline]
    pub fn new(header: Header, flags: Flags) -> Self {
        Self {
            header: Arc::new(header),
            flags,
            lost: 0,
            handles: Vec::new(),
            destination: HandleId::INVALID,
        }
    }

    /// The shared header.
    #[inline]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Replaces the attachment (transports use it to put received fds in
    /// place of the count that came in the frame).
    pub fn set_fds(&mut self, fds: Option<Attachment>) {
        Arc::make_mut(&mut self.header).fds = fds;
    }

    /// Replaces the data (transports use it for data that came in a memfd,
    /// and to send data that way).
    pub fn set_data(&mut self, data: Bytes) {
        Arc::make_mut(&mut self.header).data = data;
    }

    /// The file descriptors the message carried: this receiver's own
    /// (closed when the message is dropped; `try_clone` one to keep it).
    pub fn fds(&self) -> &[std::os::fd::OwnedFd] {
        self.header
            .fds
            .as_ref()
            .and_then(Attachment::fds)
            .unwrap_or(&[])
    }

    /// What kind of message this is, for display: `"synthetic"`,
    /// `"request"`, `"reply"` or `"announcement"`.
    pub fn kind(&self) -> &'static str {
        if self.is_synthetic() {
            "synthetic"
        } else if self.is_request() {
            "request"
        } else if self.is_reply() {
            "reply"
        } else {
            "announcement"
        }
    }

    /// Was this generated by the bus?
    #[inline]
    pub fn is_synthetic(&self) -> bool {
        self.flags.contains(Flags::SYNTHETIC)
    }
    /// Is this a request?
    #[inline]
    pub fn is_request(&self) -> bool {
        self.flags.contains(Flags::WANT_A_REPLY)
    }
    /// Is this a reply (real or synthetic)?
    #[inline]
    pub fn is_reply(&self) -> bool {
        !self.in_reply_to.is_none()
    }
    /// Is this the replier's copy of a request, which we must answer?
    #[inline]
    pub fn wants_us_to_reply(&self) -> bool {
        self.flags.contains(Flags::WANT_A_REPLY) && self.flags.contains(Flags::WANT_YOU_TO_REPLY)
    }
    /// Is this a stateful request (a request addressed to one replier)?
    pub fn is_stateful_request(&self) -> bool {
        self.is_request() && self.to != EndpointId::BUS
    }
    /// Is this an urgent message?
    pub fn is_urgent(&self) -> bool {
        self.flags.contains(Flags::URGENT)
    }
}

/// Names of the messages the bus itself generates.
pub mod synthetic {
    /// The replier closed with the request unread.
    pub const GONE_AWAY: &str = "$.KBUS.Replier.GoneAway";
    /// The replier closed after reading the request, without replying.
    pub const IGNORED: &str = "$.KBUS.Replier.Ignored";
    /// The replier unbound with the request unread.
    pub const UNBOUND: &str = "$.KBUS.Replier.Unbound";
    /// A pending (`ALL_OR_WAIT`) request found no replier when it could proceed.
    pub const DISAPPEARED: &str = "$.KBUS.Replier.Disappeared";
    /// A pending (`ALL_OR_WAIT`) request failed for another reason.
    pub const ERROR_SENDING: &str = "$.KBUS.ErrorSending";
    /// A replier bound or unbound (when replier bind events are on).
    pub const REPLIER_BIND_EVENT: &str = "$.KBUS.ReplierBindEvent";
    /// Replier unbind events were lost (the set-aside list overflowed).
    pub const UNBIND_EVENTS_LOST: &str = "$.KBUS.UnbindEventsLost";
    /// A node we hold a handle to was destroyed (`destination` names it).
    pub const NODE_DESTROYED: &str = "$.KBUS.Node.Destroyed";
    /// Nobody but us (the owner) holds a handle to our node any more.
    pub const NODE_RELEASED: &str = "$.KBUS.Node.Released";
}

/// The payload of a `$.KBUS.ReplierBindEvent`: `u32 is_bind, u32 binder,
/// u32 name_len, name` (little-endian, name NUL-padded to a multiple of 4),
/// the layout KBUS used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplierBindEvent {
    /// True for a bind, false for an unbind.
    pub is_bind: bool,
    /// The endpoint that bound or unbound.
    pub binder: EndpointId,
    /// The name (pattern) bound or unbound.
    pub name: String,
}

impl ReplierBindEvent {
    /// Encodes the event payload.
    pub fn encode(&self) -> Bytes {
        let padded = (self.name.len() + 1).div_ceil(4) * 4;
        let mut v = Vec::with_capacity(12 + padded);
        v.extend_from_slice(&u32::from(self.is_bind).to_le_bytes());
        v.extend_from_slice(&self.binder.0.to_le_bytes());
        v.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        v.extend_from_slice(self.name.as_bytes());
        v.resize(12 + padded, 0);
        Bytes::from(v)
    }

    /// Decodes an event payload; `None` if it is malformed.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(data.get(i..i + 4)?.try_into().ok()?))
        };
        let is_bind = word(0)? != 0;
        let binder = EndpointId(word(4)?);
        let len = word(8)? as usize;
        let name = data.get(12..12usize.checked_add(len)?)?;
        let name = std::str::from_utf8(name).ok()?.to_owned();
        Some(Self {
            is_bind,
            binder,
            name,
        })
    }
}

/// The size of a message in KBUS's "entire" form on a 64-bit machine (the
/// measure of KBUS's maximum message size): the 88-byte header, the name
/// NUL-terminated and padded to 4 bytes, the data padded to 4 bytes, and
/// the final 4-byte guard.
pub fn kbus_entire_len(name_len: usize, data_len: usize) -> usize {
    88 + (name_len + 1).div_ceil(4) * 4 + data_len.div_ceil(4) * 4 + 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_event_round_trip() {
        let e = ReplierBindEvent {
            is_bind: true,
            binder: EndpointId(7),
            name: "$.a.b".into(),
        };
        let b = e.encode();
        assert_eq!(b.len(), 12 + 8);
        assert_eq!(ReplierBindEvent::decode(&b), Some(e));
        assert_eq!(ReplierBindEvent::decode(&b[..11]), None);
        assert_eq!(
            ReplierBindEvent::decode(&[0, 0, 0, 0, 1, 0, 0, 0, 255, 255, 255, 255]),
            None
        );
    }

    #[test]
    fn flags() {
        let f = Flags::WANT_A_REPLY | Flags::URGENT;
        assert!(f.contains(Flags::URGENT));
        assert_eq!(f.names(), ["WANT_A_REPLY", "URGENT"]);
        assert!(!f.without(Flags::URGENT).contains(Flags::URGENT));
    }
}
