//! Message data that travels as a sealed memfd (docs/protocol.md, "Data in
//! a memfd"): taken out of a request's fds and mapped on the way in, put
//! back as an fd on the way out, so the daemon never copies large data and
//! every receiver of one message shares one memfd.
//!
//! Mapping a received memfd is the one thing the session does to an fd
//! besides holding it; the checks (sealed against writing, shrinking,
//! growing and resealing) are `busbar_sys::memfd`'s.

use std::os::fd::OwnedFd;

use busbar_kernel::{Attachment, Errno, Message, Outgoing, Response};
use busbar_sys::memfd::{SealedMemfd, find, into_bytes};
use bytes::Bytes;

/// Data at least this long that the daemon holds in a memfd goes out as
/// the memfd; shorter data goes inline (cheaper than an fd for a receiver).
pub const MIN_DATA_FD: usize = 4096;

/// Puts the data of `out` in place from the memfd that ends `fds` (the
/// message's fds as received, when its attachment says `data_in_last`).
/// `EINVAL` if the message also has inline data or the fd is not a sealed
/// memfd.
pub(crate) fn take_data_fd(out: &mut Outgoing, fds: &mut Vec<OwnedFd>) -> Result<(), Errno> {
    let memfd = fds.pop().ok_or(Errno::EINVAL)?;
    if !out.data.is_empty() {
        return Err(Errno::EINVAL);
    }
    // Not populated: the daemon passes the data on without reading it.
    let sealed = SealedMemfd::open(memfd, false).map_err(|_| Errno::EINVAL)?;
    out.data = into_bytes(sealed);
    Ok(())
}

/// The message as it goes out: data held in a memfd (and long enough) is
/// sent as the memfd, after the message's own fds. Left inline if the fds
/// cannot be duplicated (the process is out of fds). Returns the bytes
/// sent as a memfd.
fn data_as_fd(m: &mut Message) -> usize {
    if m.data.len() < MIN_DATA_FD {
        return 0;
    }
    let Some(memfd) = find(&m.data) else {
        return 0;
    };
    let fds: Result<Vec<OwnedFd>, _> = m
        .fds()
        .iter()
        .map(OwnedFd::try_clone)
        .chain(std::iter::once(memfd.fd().try_clone_to_owned()))
        .collect();
    let Ok(fds) = fds else {
        return 0;
    };
    let len = m.data.len();
    let mut att = Attachment::from_fds(fds);
    att.data_in_last = true;
    m.set_fds(Some(att));
    m.set_data(Bytes::new());
    len
}

/// Every message in a response, as it goes out ([`data_as_fd`]). Returns
/// the bytes of data sent as memfds.
pub(crate) fn data_as_fds(result: &mut Result<Response, busbar_kernel::Errno>) -> usize {
    match result {
        Ok(Response::Recv(Some(m)) | Response::TakeReply(Some(m))) => data_as_fd(m),
        Ok(Response::RecvBatch(v)) => v.iter_mut().map(data_as_fd).sum(),
        _ => 0,
    }
}
