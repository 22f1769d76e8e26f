//! The plain structs and constants of the C API, and the helpers that read
//! C arguments (strings, arrays, out pointers) safely.

use std::ffi::{CStr, c_char, c_int};
use std::os::fd::{BorrowedFd, OwnedFd};

use busbar::{Errno, Flags, HandleId, MessageId, OrigFrom, Outgoing};

/// The message is a request.
pub const BUSBAR_WANT_A_REPLY: u32 = 0x1;
/// Set by the bus on the replier's copy of a request.
pub const BUSBAR_WANT_YOU_TO_REPLY: u32 = 0x2;
/// Set by the bus on the messages it makes itself (`$.KBUS.*`).
pub const BUSBAR_SYNTHETIC: u32 = 0x4;
/// Delivered to the front of each recipient's queue.
pub const BUSBAR_URGENT: u32 = 0x8;
/// All recipients or none; if a queue is full the send waits for room
/// (`-EAGAIN`, pending: see busbar_send_wait).
pub const BUSBAR_ALL_OR_WAIT: u32 = 0x100;
/// All recipients or none; if a queue is full the send fails (`-EBUSY`).
pub const BUSBAR_ALL_OR_FAIL: u32 = 0x200;
/// The most file descriptors one message may carry.
pub const BUSBAR_MAX_FDS_PER_MESSAGE: u32 = 253;
/// The longest name.
pub const BUSBAR_MAX_NAME_LEN: u32 = 1000;

/// A message id: `{network, serial}`; `{0, 0}` is none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct busbar_msg_id {
    /// 0 for messages sent on this bus; set by bridges.
    pub network: u32,
    /// The bus's serial number (from 1).
    pub serial: u32,
}

/// Who originally sent a message, or is its final target, across bridges.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct busbar_orig_from {
    /// The network id of the bus.
    pub network: u32,
    /// The endpoint there.
    pub local: u32,
}

/// Credentials the bus stamped on a message (its sender cannot forge them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct busbar_creds {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A message to send. Zero-initialise it (`busbar_outgoing m = {0};`), then
/// set what you need: with only `name` (and `data`) it is an announcement.
/// Nothing is kept after the call returns: the bus copies the data, and
/// duplicates the fds (you keep and close yours).
#[repr(C)]
#[derive(Debug)]
pub struct busbar_outgoing {
    /// The name (`$.a.b`, no wildcard), NUL-terminated. Required.
    pub name: *const c_char,
    /// The data (`data_len` bytes; NULL if 0).
    pub data: *const u8,
    /// Bytes of data.
    pub data_len: usize,
    /// `BUSBAR_WANT_A_REPLY` (a request), `BUSBAR_URGENT`,
    /// `BUSBAR_ALL_OR_WAIT` or `BUSBAR_ALL_OR_FAIL`, and bits 16..31 for
    /// the application (carried unchanged).
    pub flags: u32,
    /// A stateful request: the replier endpoint it must reach. A reply: the
    /// requester.
    pub to: u32,
    /// A reply: the id of the request it answers.
    pub in_reply_to: busbar_msg_id,
    /// Forwarded messages only (privileged): the id to keep.
    pub id: busbar_msg_id,
    /// Carried unchanged.
    pub orig_from: busbar_orig_from,
    /// Carried unchanged.
    pub final_to: busbar_orig_from,
    /// Send to these nodes (our handles to them) instead of by name.
    pub to_handles: *const u64,
    /// How many `to_handles`.
    pub to_handle_count: usize,
    /// Handles every receiver gets its own handle to.
    pub handles: *const u64,
    /// How many `handles`.
    pub handle_count: usize,
    /// File descriptors every receiver gets its own copy of (at most
    /// `BUSBAR_MAX_FDS_PER_MESSAGE`).
    pub fds: *const c_int,
    /// How many `fds`.
    pub fd_count: usize,
}

/// Statistics of one endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct busbar_endpoint_stats {
    /// The endpoint.
    pub id: u32,
    /// Its owner's pid, uid.
    pub pid: u32,
    /// (uid)
    pub uid: u32,
    /// Messages queued.
    pub queued: u32,
    /// Replier bind events set aside for it.
    pub set_aside: u32,
    /// Its queue limit.
    pub queue_limit: u32,
    /// Messages it lost because its queue was full.
    pub lost: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages taken.
    pub received: u64,
    /// Requests sent whose reply has not arrived.
    pub outstanding_requests: u32,
    /// Requests taken as replier and not answered.
    pub owed_replies: u32,
    /// Bindings held.
    pub bindings: u32,
    /// "Only once" is on.
    pub only_once: bool,
    /// An `ALL_OR_WAIT` send waits for room.
    pub has_pending_send: bool,
    /// Its id, if so.
    pub pending_send: busbar_msg_id,
    /// Bytes of queued messages.
    pub queued_bytes: u64,
    /// Handles held.
    pub handles: u32,
    /// Live nodes owned.
    pub nodes: u32,
    /// The id of its last send.
    pub last_sent: busbar_msg_id,
}

/// A bus's settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct busbar_bus_info {
    /// The bus.
    pub bus: u32,
    /// Buses in its kernel (ids 0 .. buses-1).
    pub buses: u32,
    /// Maximum message size (name plus data bytes).
    pub max_message_size: u32,
    /// The most it may be set to.
    pub absolute_max_message_size: u32,
    /// Replier bind events are on.
    pub replier_bind_events: bool,
}

/// A bus's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct busbar_bus_stats {
    /// The bus.
    pub bus: u32,
    /// Open endpoints.
    pub endpoints: u32,
    /// Bindings.
    pub bindings: u32,
    /// Replier bindings.
    pub replier_bindings: u32,
    /// The serial the next message will get.
    pub next_serial: u32,
    /// Maximum message size.
    pub max_message_size: u32,
    /// Replier bind events are on.
    pub replier_bind_events: bool,
    /// Unbind events in the set-aside list.
    pub set_aside: u32,
}

/// One binding (busbar_bus_names).
#[repr(C)]
#[derive(Debug)]
pub struct busbar_binding {
    /// The endpoint that bound.
    pub endpoint: u32,
    /// Its owner's pid.
    pub pid: u32,
    /// Its owner's uid.
    pub uid: u32,
    /// Replier (true) or listener.
    pub replier: bool,
    /// The name or pattern (freed with the array).
    pub name: *mut c_char,
}

/// A bus's quota per (receiving user, sending user).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct busbar_quota {
    /// Messages queued.
    pub messages: u32,
    /// Their bytes.
    pub bytes: u64,
    /// Handles held.
    pub handles: u32,
    /// File descriptors in queued messages.
    pub fds: u32,
}

impl From<MessageId> for busbar_msg_id {
    fn from(id: MessageId) -> Self {
        Self {
            network: id.network,
            serial: id.serial,
        }
    }
}

impl From<busbar_msg_id> for MessageId {
    fn from(id: busbar_msg_id) -> Self {
        Self {
            network: id.network,
            serial: id.serial,
        }
    }
}

impl From<OrigFrom> for busbar_orig_from {
    fn from(o: OrigFrom) -> Self {
        Self {
            network: o.network,
            local: o.local,
        }
    }
}

impl From<busbar_orig_from> for OrigFrom {
    fn from(o: busbar_orig_from) -> Self {
        Self {
            network: o.network,
            local: o.local,
        }
    }
}

/// A C string argument (`EINVAL` if NULL, `EBADMSG` if not UTF-8).
pub(crate) fn c_str<'a>(p: *const c_char) -> Result<&'a str, Errno> {
    if p.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller passed a NUL-terminated string, as the header
    // requires; it is only borrowed for the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Errno::EBADMSG)
}

/// An array argument of `n` items (`EINVAL` if NULL with `n > 0`).
pub(crate) fn c_slice<'a, T>(p: *const T, n: usize) -> Result<&'a [T], Errno> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller passed `n` readable items at `p`, as the header
    // requires; they are only borrowed for the call.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Stores `v` through an out pointer, if it is not NULL.
pub(crate) fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: a non-NULL out pointer points to a `T` the caller owns.
        unsafe { out.write(v) };
    }
}

/// Copies of the caller's fds (it keeps its own): `EBADF` for one that is
/// not open.
pub(crate) fn dup_fds(fds: &[c_int]) -> Result<Vec<OwnedFd>, Errno> {
    fds.iter()
        .map(|&fd| {
            if fd < 0 {
                return Err(Errno::EBADF);
            }
            // SAFETY: the caller says `fd` is open for the length of the
            // call; we only duplicate it.
            unsafe { BorrowedFd::borrow_raw(fd) }
                .try_clone_to_owned()
                .map_err(|_| Errno::EBADF)
        })
        .collect()
}

/// The busbar message a `busbar_outgoing` describes.
pub(crate) fn outgoing(m: &busbar_outgoing) -> Result<Outgoing, Errno> {
    let name = c_str(m.name)?;
    let data = c_slice(m.data, m.data_len)?.to_vec();
    let to_handles = c_slice(m.to_handles, m.to_handle_count)?;
    let mut out = if to_handles.is_empty() {
        Outgoing::announcement(name, data)
    } else {
        Outgoing::to_handles(
            to_handles.iter().map(|&h| HandleId(h)).collect(),
            name,
            data,
        )
    };
    out.flags = Flags(m.flags);
    out.to = busbar::EndpointId(m.to);
    out.in_reply_to = m.in_reply_to.into();
    out.id = m.id.into();
    out.orig_from = m.orig_from.into();
    out.final_to = m.final_to.into();
    let handles = c_slice(m.handles, m.handle_count)?;
    if !handles.is_empty() {
        out = out.carrying(handles.iter().map(|&h| HandleId(h)).collect());
    }
    let fds = c_slice(m.fds, m.fd_count)?;
    if !fds.is_empty() {
        if fds.len() > BUSBAR_MAX_FDS_PER_MESSAGE as usize {
            return Err(Errno::ETOOMANYREFS);
        }
        out = out.with_fds(dup_fds(fds)?);
    }
    Ok(out)
}
