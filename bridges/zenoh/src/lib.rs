//! `busbar-zenoh`: joins busbar buses on several machines over Zenoh.
//!
//! One bridge per bus. [`bridge`] describes the shape, [`envelope`] what
//! crosses the network, [`keys`] the key expressions; docs/bridging.md says
//! what holds across machines.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod cli;
pub mod control;
pub mod counters;
pub mod envelope;
pub mod inject;
pub mod keys;
pub mod requests;
pub mod start;
pub mod tap;
