//! # busbar-daemon: the bus served to other processes
//!
//! One reactor thread owns a bus kernel (the same `busbar-kernel` the
//! in-process bus links in) and serves it on a Unix socket with busbar's
//! wire protocol (`busbar-wire`, described in `docs/protocol.md`).
//! Credentials come from `SO_PEERCRED`; SIGTERM/SIGINT shut it down
//! cleanly (clients get `ESHUTDOWN`, the socket file is removed).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod host;
mod reactor;

pub use config::DaemonConfig;
pub use reactor::{
    Daemon, MAX_ENDPOINTS_PER_CONNECTION, OUT_LIMIT, ShutdownHandle, resolve_socket, run_daemon,
};
