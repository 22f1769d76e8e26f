//! # busbar-server: the daemon's protocol, sans-IO
//!
//! A [`Server`] owns a bus kernel and the state of every client
//! connection: frame reassembly, the handshake, ownership of endpoints,
//! privilege, parked waits, `Wake` arming, pipelined calls, fd pairing, and
//! every limit on what a client can make the daemon hold ([`Limits`]). It
//! performs no IO and reads no clock: the daemon's epoll shell and the
//! simulator drive it with events (bytes read, bytes written, time) in the
//! style of quinn-proto, so the same protocol logic runs in production and
//! under deterministic fault injection.
//!
//! Threat model in short (the whole of it is `docs/security.md`): clients
//! are mutually distrusting local users. A client can use its own
//! endpoints, and bus-wide powers only if privileged ([`Privilege`]); every
//! resource it makes the server hold is charged or bounded, and exceeding a
//! bound costs only the offender.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod dispatch;
mod host;
mod invariants;
mod limits;
mod parked;
mod payload;
mod session;
mod wakes;

pub use conn::ReceivedFd;
pub use host::LogSink;
pub use limits::{FRAME_HEADROOM, Limits, Privilege};
pub use session::{ConnId, REPORT_EVERY, Server, ServerStats, Status, WriteError, goodbye_frame};
