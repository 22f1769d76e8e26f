//! What one client may make the server hold, and who holds bus-wide powers.
//!
//! Every resource a connection can make the daemon keep is bounded here or
//! by the kernel's quotas; each limit is checked before the resource is
//! taken, and the offender (never another client) gets the error or is
//! disconnected. `docs/security.md` lists each limit with its config key.

use busbar_kernel::{Credentials, Nanos};

/// Hard limits per connection and per user (uid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once (refused with `ENFILE` beyond).
    pub max_connections: usize,
    /// Connections one uid may hold (refused with `EUSERS` beyond).
    pub max_connections_per_uid: usize,
    /// Endpoints one connection may hold open (`EMFILE` beyond).
    pub max_endpoints_per_connection: usize,
    /// Endpoints one unprivileged uid may hold open, all connections
    /// together (`EMFILE` beyond).
    pub max_endpoints_per_uid: usize,
    /// Bindings one unprivileged uid may hold, all its endpoints together
    /// (`EMFILE` beyond).
    pub max_bindings_per_uid: usize,
    /// Waiting requests (`FLAG_WAIT`) parked at once per connection
    /// (`EMFILE` beyond).
    pub max_parked_per_connection: usize,
    /// Unsent output bytes (message data riding in memfds counted as if it
    /// were inline) above which a connection's requests are no longer read
    /// or answered (they wait in the socket); parked waits are not answered
    /// either until it drains to half of this.
    pub max_output: usize,
    /// File descriptors received and not yet claimed by a frame, per
    /// connection (a protocol violation beyond: the connection is closed).
    pub max_unclaimed_fds_per_connection: usize,
    /// File descriptors the server holds for one uid outside the kernel's
    /// queues: unclaimed fds plus fds waiting to be written to it. Beyond,
    /// its connections are not read from (output) or are closed (input).
    pub max_fds_per_uid: usize,
    /// Bytes of incomplete frames buffered for one uid, all its
    /// connections together (the connection that passes it is closed with
    /// `ENOBUFS`).
    pub max_partial_bytes_per_uid: usize,
    /// The most data one message may carry inside its frame (`EMSGSIZE`
    /// beyond). Larger data travels as a sealed memfd, which the daemon maps
    /// instead of copying; the bus's maximum message size applies to both.
    pub max_inline_data: usize,
    /// Data memfds (messages whose data came as a sealed memfd) the daemon
    /// holds at once for one sending uid (`EDQUOT` beyond; privileged uids
    /// too). Each is a mapping in the daemon.
    pub max_data_memfds_per_uid: usize,
    /// Data memfds the daemon holds at once in all (`ENOBUFS` beyond): below
    /// the kernel's `vm.max_map_count` (65,530 by default).
    pub max_data_memfds: usize,
    /// The largest frame a client may send. Derive it from the message size
    /// with [`Limits::frame_for_message_size`].
    pub max_frame: usize,
    /// How long a new connection may take to send `Hello`.
    pub hello_timeout: Nanos,
    /// How long a closing connection may take to read its `Goodbye`.
    pub linger_timeout: Nanos,
}

/// Room in a frame beyond the message bytes: headers, name, handle lists,
/// the ids and credentials around a message.
pub const FRAME_HEADROOM: usize = 1 << 20;

impl Limits {
    /// The largest request frame for messages of up to `max_message_size`
    /// bytes (name plus data): one message plus [`FRAME_HEADROOM`].
    pub fn frame_for_message_size(max_message_size: u32) -> usize {
        (max_message_size as usize).saturating_add(FRAME_HEADROOM)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_uid: 512,
            max_endpoints_per_connection: 4096,
            max_endpoints_per_uid: 16384,
            max_bindings_per_uid: 65536,
            max_parked_per_connection: 1024,
            max_output: 4 << 20,
            max_unclaimed_fds_per_connection: 4 * busbar_kernel::MAX_FDS_PER_MESSAGE as usize,
            max_fds_per_uid: 16384,
            max_partial_bytes_per_uid: 256 << 20,
            max_inline_data: 4 << 20,
            max_data_memfds_per_uid: 4096,
            max_data_memfds: 32768,
            max_frame: Self::frame_for_message_size(64 << 20),
            hello_timeout: 5_000_000_000,
            linger_timeout: 5_000_000_000,
        }
    }
}

/// Who may use bus-wide powers (operations marked `privileged` in the
/// operation table, and forwarded message ids): root, the daemon's own
/// uid, and the uids and primary groups listed here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Privilege {
    /// The uid the daemon runs as.
    pub daemon_uid: u32,
    /// Further uids allowed.
    pub uids: Vec<u32>,
    /// Primary groups (the gid `SO_PEERCRED` reports) allowed.
    pub gids: Vec<u32>,
}

impl Privilege {
    /// Whether a peer with these credentials is privileged.
    pub fn allows(&self, c: &Credentials) -> bool {
        c.uid == 0
            || c.uid == self.daemon_uid
            || self.uids.contains(&c.uid)
            || self.gids.contains(&c.gid)
    }
}
