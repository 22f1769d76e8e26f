//! # busbar-kbus: KBUS programs on busbar, unchanged
//!
//! KBUS programs talk to `/dev/kbusN` with `open`, `write`, `read`,
//! `ioctl`, `poll` and `close`. This crate gives them a busbar daemon
//! instead of the (out of tree, unmaintained) kernel module:
//! `libbusbar_kbus.so`, loaded with `LD_PRELOAD` (or `busbar kbus --
//! PROGRAM`), emulates the device files in the program's own address
//! space, each Ksock an endpoint of the daemon's bus N.
//!
//! Layers:
//!
//! - [`abi`], [`ioctl`], [`writer`]: the device ABI as a safe codec (header
//!   layout, entire and pointy forms, ioctl numbers, the partial-write
//!   state machine with KBUS's checks and errnos).
//! - [`ksock`]: one Ksock's state over a busbar endpoint, with program
//!   memory behind a trait; tested against the in-process bus.
//! - [`proc`]: `/proc/kbus/bindings` and `/proc/kbus/stats`.
//! - `preload` (the only `unsafe`): the glibc entry points, the fd table,
//!   readiness for `poll`/`select`/`epoll`.
//!
//! `docs/kbus.md` says how to run KBUS programs and what is emulated.

#![warn(missing_docs)]

pub mod abi;
pub mod ioctl;
pub mod ksock;
mod preload;
pub mod proc;
pub mod writer;
