//! # busbar-c: busbar's C API
//!
//! `libbusbar.so` / `libbusbar.a` and `include/busbar.h` (generated from
//! this crate by cbindgen, committed, checked by `tests/header.rs`). Every
//! function wraps the Rust `busbar` crate, so C programs get the same bus on
//! both transports (in-process and a daemon). The header states the
//! conventions (errors as negative errno values, who owns what, timeouts);
//! each function's comment says what it does, whether it blocks and which
//! errors it returns.
//!
//! This crate is one of the places `unsafe` is allowed: every C pointer is
//! read in a `// SAFETY:`-commented block, and no panic crosses the
//! boundary ([`error::guard`]).

#![allow(unsafe_code)]
#![allow(non_camel_case_types)]
// Every exported function is `unsafe`: its pointer arguments must follow
// the header's conventions (valid or NULL, objects this library returned
// and not yet freed), which is the safety contract of each of them.
#![allow(clippy::missing_safety_doc)]

pub mod bus;
pub mod endpoint;
pub mod error;
pub mod message;
pub mod types;
