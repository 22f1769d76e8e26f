//! The bridged message: what one bridge puts on Zenoh for the others.
//!
//! ```text
//! u8  version (1)
//! u8  kind: 1 announcement, 2 request, 3 reply
//! u32 origin: the network id of the bridge that put it (non-zero)
//! u64 instance: that bridge's run (random per start)
//! u64 seq: its announcement counter (0 for requests and replies)
//! the message, in busbar's wire encoding (little-endian, as on the
//! daemon's socket): header with its id, in_reply_to, to, from, orig_from,
//! final_to, name, data and the credentials its bus gave the sender,
//! then flags, lost, handles and destination
//! ```
//!
//! [`Envelope::decode`] is a checked parser: it never panics, and it
//! accepts only what a bridge could have put: a known version and kind, a
//! valid name, no file descriptors or handles, an id with a non-zero
//! network, and a kind that agrees with the message's flags. Everything
//! else is bad input, counted and dropped by the caller.

use busbar::{Bytes, Flags, Message, name::check_message_name};
use busbar_wire::{Reader, Wire};

/// The envelope version this bridge writes and reads.
pub const VERSION: u8 = 1;

/// What a bridged message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An announcement, for the listeners of other buses.
    Announcement = 1,
    /// A request, for the replier on the bus of the bridge it is sent to.
    Request = 2,
    /// The reply to a request (real, or synthetic from the replier's bus).
    Reply = 3,
}

/// A bridged message.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// What it is.
    pub kind: Kind,
    /// The network id of the bridge that put it.
    pub origin: u32,
    /// That bridge's run.
    pub instance: u64,
    /// Its announcement counter (announcements only).
    pub seq: u64,
    /// The message as its bus delivered it (id already carrying a network).
    pub message: Message,
}

impl Envelope {
    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.message.name.len() + self.message.data.len());
        VERSION.encode(&mut out);
        (self.kind as u8).encode(&mut out);
        self.origin.encode(&mut out);
        self.instance.encode(&mut out);
        self.seq.encode(&mut out);
        self.message.encode(&mut out);
        out
    }

    /// Parses and checks an envelope (see the module docs for what is
    /// refused); the error says why.
    pub fn decode(bytes: Bytes) -> Result<Self, &'static str> {
        let mut r = Reader::new(bytes);
        let version = u8::decode(&mut r).map_err(|_| "truncated")?;
        if version != VERSION {
            return Err("unknown envelope version");
        }
        let kind = match u8::decode(&mut r).map_err(|_| "truncated")? {
            1 => Kind::Announcement,
            2 => Kind::Request,
            3 => Kind::Reply,
            _ => return Err("unknown kind"),
        };
        let origin = u32::decode(&mut r).map_err(|_| "truncated")?;
        let instance = u64::decode(&mut r).map_err(|_| "truncated")?;
        let seq = u64::decode(&mut r).map_err(|_| "truncated")?;
        let message = Message::decode(&mut r).map_err(|_| "bad message encoding")?;
        if r.remaining() != 0 {
            return Err("trailing bytes");
        }
        if origin == 0 {
            return Err("origin network 0");
        }
        if message.id.network == 0 {
            return Err("message id without a network");
        }
        check_message_name(&message.name).map_err(|_| "bad message name")?;
        if message.header().fds.is_some() || !message.handles.is_empty() {
            return Err("file descriptors or handles");
        }
        let fits = match kind {
            Kind::Announcement => !message.is_request() && !message.is_reply(),
            Kind::Request => message.is_request() && !message.is_reply(),
            Kind::Reply => message.is_reply() && !message.is_request(),
        };
        if !fits {
            return Err("kind disagrees with the message");
        }
        Ok(Self {
            kind,
            origin,
            instance,
            seq,
            message,
        })
    }
}

impl Envelope {
    /// Logs (at debug level) an envelope from another machine, with the
    /// sender's pid and uid as its own bus saw them: local receivers get
    /// the bridge's credentials, so this is where they can be found.
    pub fn trace_arrival(&self) {
        let m = &self.message;
        tracing::debug!(
            kind = ?self.kind,
            name = %m.name,
            id = %m.id,
            origin = self.origin,
            pid = m.creds.pid,
            uid = m.creds.uid,
            "from another machine (pid and uid as its bus saw them)"
        );
    }
}

/// The flags a bridge passes on: the user's bits and the delivery options
/// that mean something on every bus (`URGENT`, `ALL_OR_FAIL`), and
/// `SYNTHETIC` on replies. `ALL_OR_WAIT` is the sender's own bus's affair:
/// a bridge does not make every other bus wait for a slow listener.
pub fn passed_on(flags: Flags, keep_synthetic: bool) -> Flags {
    let mut keep = Flags::USER_MASK
        .with(Flags::URGENT)
        .with(Flags::ALL_OR_FAIL)
        .with(Flags::WANT_A_REPLY);
    if keep_synthetic {
        keep = keep.with(Flags::SYNTHETIC);
    }
    Flags(flags.0 & keep.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar::{Credentials, EndpointId, Header, MessageId, OrigFrom};

    fn message(name: &str, flags: Flags, in_reply_to: MessageId) -> Message {
        Message::new(
            Header {
                id: MessageId {
                    network: 3,
                    serial: 9,
                },
                in_reply_to,
                to: EndpointId(0),
                from: EndpointId(4),
                orig_from: OrigFrom {
                    network: 3,
                    local: 4,
                },
                final_to: OrigFrom::default(),
                name: name.into(),
                data: Bytes::from_static(b"\x00\xffdata"),
                creds: Credentials {
                    pid: 10,
                    uid: 1000,
                    gid: 1000,
                },
                fds: None,
            },
            flags,
        )
    }

    fn envelope(kind: Kind, m: Message) -> Envelope {
        Envelope {
            kind,
            origin: 3,
            instance: 0xfeed,
            seq: 5,
            message: m,
        }
    }

    #[test]
    fn round_trip() {
        let e = envelope(
            Kind::Announcement,
            message("$.a.b", Flags(0x1234_0000), MessageId::NONE),
        );
        let d = Envelope::decode(Bytes::from(e.encode())).unwrap();
        assert_eq!(d.kind, Kind::Announcement);
        assert_eq!((d.origin, d.instance, d.seq), (3, 0xfeed, 5));
        assert_eq!(d.message, e.message);
    }

    #[test]
    fn every_truncation_and_every_byte_flip_is_refused_or_decodes() {
        let e = envelope(
            Kind::Request,
            message("$.svc", Flags::WANT_A_REPLY, MessageId::NONE),
        );
        let bytes = e.encode();
        for n in 0..bytes.len() {
            assert!(Envelope::decode(Bytes::copy_from_slice(&bytes[..n])).is_err());
        }
        for i in 0..bytes.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                // Never a panic; a decoded one still passes every check.
                if let Ok(d) = Envelope::decode(Bytes::from(b)) {
                    assert!(check_message_name(&d.message.name).is_ok());
                    assert_ne!(d.message.id.network, 0);
                }
            }
        }
    }

    #[test]
    fn refusals() {
        let bad = |e: Envelope| Envelope::decode(Bytes::from(e.encode())).unwrap_err();
        let ann = || message("$.a", Flags::default(), MessageId::NONE);
        assert_eq!(
            bad(envelope(Kind::Request, ann())),
            "kind disagrees with the message"
        );
        assert_eq!(
            bad(envelope(Kind::Reply, ann())),
            "kind disagrees with the message"
        );
        let mut e = envelope(Kind::Announcement, ann());
        e.origin = 0;
        assert_eq!(bad(e), "origin network 0");
        assert_eq!(
            bad(envelope(
                Kind::Announcement,
                message("$.a.*", Flags::default(), MessageId::NONE)
            )),
            "bad message name"
        );
        let mut b = envelope(Kind::Announcement, ann()).encode();
        b[0] = 2;
        assert_eq!(
            Envelope::decode(Bytes::from(b)).unwrap_err(),
            "unknown envelope version"
        );
        let mut b = envelope(Kind::Announcement, ann()).encode();
        b.push(0);
        assert_eq!(
            Envelope::decode(Bytes::from(b)).unwrap_err(),
            "trailing bytes"
        );
    }

    #[test]
    fn flags_passed_on() {
        let f = Flags(0xabcd_0000)
            .with(Flags::URGENT)
            .with(Flags::ALL_OR_WAIT)
            .with(Flags::SYNTHETIC)
            .with(Flags::WANT_YOU_TO_REPLY);
        assert_eq!(passed_on(f, false), Flags(0xabcd_0000).with(Flags::URGENT));
        assert_eq!(
            passed_on(f, true),
            Flags(0xabcd_0000)
                .with(Flags::URGENT)
                .with(Flags::SYNTHETIC)
        );
    }
}
