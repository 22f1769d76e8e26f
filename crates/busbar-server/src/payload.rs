//! Message data that travels as a sealed memfd (docs/protocol.md, "Data in
//! a memfd"): taken out of a request's fds and mapped on the way in, put
//! back as an fd on the way out, so the daemon never copies large data and
//! every receiver of one message shares one memfd.
//!
//! Mapping a received memfd is the one thing the session does to an fd
//! besides holding it; the checks (sealed against writing, shrinking,
//! growing and resealing) are `busbar_sys::memfd`'s.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use busbar_kernel::{Attachment, Errno, Message, Outgoing, Response};
use busbar_sys::memfd::{Release, SealedMemfd, find, into_bytes};
use bytes::Bytes;

use crate::Limits;

/// The data memfds the daemon holds mapped, in all and per sending uid.
/// Each is a mapping, and a process may have only so many (the kernel's
/// `vm.max_map_count`, 65,530 by default), so both counts are bounded
/// (`Limits::max_data_memfds`, `max_data_memfds_per_uid`): one user cannot
/// make the daemon unable to map anyone's data.
#[derive(Debug, Default, Clone)]
pub(crate) struct DataMemfds {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

impl DataMemfds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more for `uid`, or refuses: `EDQUOT` past the uid's share,
    /// `ENOBUFS` past the daemon's. The release uncounts it.
    fn take(&self, uid: u32, limits: &Limits) -> Result<Release, Errno> {
        let mut c = self.lock();
        if c.total >= limits.max_data_memfds {
            return Err(Errno::ENOBUFS);
        }
        let n = c.per_uid.entry(uid).or_default();
        if *n >= limits.max_data_memfds_per_uid {
            return Err(Errno::EDQUOT);
        }
        *n += 1;
        c.total += 1;
        let counts = self.clone();
        Ok(Box::new(move || {
            let mut c = counts.lock();
            c.total -= 1;
            if let Some(n) = c.per_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    c.per_uid.remove(&uid);
                }
            }
        }))
    }
}

/// Data at least this long that the daemon holds in a memfd goes out as
/// the memfd; shorter data goes inline (cheaper than an fd for a receiver).
pub const MIN_DATA_FD: usize = 4096;

/// Puts the data of `out` in place from the memfd that ends `fds` (the
/// message's fds as received, when its attachment says `data_in_last`),
/// counted for `uid` in `held`. `EINVAL` if the message also has inline
/// data or the fd is not a sealed memfd; `EDQUOT`/`ENOBUFS` past the
/// limits on memfds held ([`DataMemfds`]).
pub(crate) fn take_data_fd(
    out: &mut Outgoing,
    fds: &mut Vec<OwnedFd>,
    uid: u32,
    held: &DataMemfds,
    limits: &Limits,
) -> Result<(), Errno> {
    let memfd = fds.pop().ok_or(Errno::EINVAL)?;
    if !out.data.is_empty() {
        return Err(Errno::EINVAL);
    }
    let release = held.take(uid, limits)?;
    // Not populated: the daemon passes the data on without reading it.
    let sealed = SealedMemfd::open(memfd, false).map_err(|_| Errno::EINVAL)?;
    out.data = into_bytes(sealed.on_release(release));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_memfds_are_bounded_per_uid_and_in_all() {
        let limits = Limits {
            max_data_memfds_per_uid: 2,
            max_data_memfds: 3,
            ..Limits::default()
        };
        let held = DataMemfds::default();
        let a1 = held.take(1, &limits).ok().unwrap();
        let _a2 = held.take(1, &limits).ok().unwrap();
        assert_eq!(held.take(1, &limits).err(), Some(Errno::EDQUOT));
        let _b1 = held.take(2, &limits).ok().unwrap();
        assert_eq!(held.take(2, &limits).err(), Some(Errno::ENOBUFS));
        a1();
        let _b2 = held.take(2, &limits).ok().unwrap();
        assert_eq!(held.take(3, &limits).err(), Some(Errno::ENOBUFS));
    }
}
