//! # busbar-daemon: the bus served to other processes
//!
//! One reactor thread owns a bus kernel (the same `busbar-kernel` the
//! in-process bus links in) and serves it on a Unix socket with busbar's
//! wire protocol (`busbar-wire`, described in `docs/protocol.md`).
//! Credentials come from `SO_PEERCRED`; SIGTERM/SIGINT shut it down
//! cleanly (clients get `ESHUTDOWN`, the socket file is removed).
//!
//! The protocol itself lives in `busbar-server`, a sans-IO session; this
//! crate is its epoll shell, its configuration and its socket.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod metrics;
mod reactor;
mod socket_dir;

pub use busbar_server::{Limits, Privilege};
pub use config::DaemonConfig;
pub use reactor::{Daemon, ShutdownHandle, resolve_socket, run_daemon};
