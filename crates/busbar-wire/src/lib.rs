//! # busbar-wire: the wire protocol
//!
//! How clients and the `busbar` daemon talk over a Unix stream socket:
//! length-prefixed frames ([`frame`]) whose bodies encode the operation
//! table's arguments and results ([`codec`]). The op codes, argument and
//! result types all come from `busbar_kernel::operation_table!`, so the wire
//! cannot drift from dispatch or from the typed calls. The full description
//! is `docs/protocol.md`.
//!
//! No IO here: this crate turns values into bytes and bytes into values, and
//! its decoders never panic on any input (fuzzed in `fuzz/`, tested with
//! random, truncated and oversized frames).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod frame;

pub use codec::{DATA_IN_LAST_FD, FdsBesideFrame, Reader, Wire, WireError};
pub use frame::{
    FLAG_LAST_REQUEST, FLAG_QUIET, FLAG_READABLE, FLAG_WAIT, Frame, FrameHeader, FrameReader,
    GOODBYE, HEADER_LEN, HELLO, MAGIC, RESPONSE, VERSION, WAIT_FOREVER, WAKE, WELCOME, Welcome,
    WireRequest, can_wait, emit_frame, emit_hello, emit_request, emit_response, emit_welcome,
    is_empty_response, is_empty_result, parse_hello, parse_request, parse_response, parse_welcome,
};
