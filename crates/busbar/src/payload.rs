//! Large data without copies: through a daemon, data of at least
//! [`memfd_threshold`] bytes travels as a sealed memfd (mapped read-only by
//! the daemon and by each receiver, shared by all of them) instead of
//! inside the frame. [`PayloadBuffer`] lets a sender build the data in such
//! a memfd directly, so a large send copies nothing at all. In-process, data
//! is never copied whatever its size (every receiver shares one `Bytes`).
//!
//! Receivers see ordinary `Message::data`: a `Bytes` over the mapping,
//! unmapped when the last clone of it drops. A memfd that is not sealed
//! against writing, shrinking, growing and resealing is refused (`EINVAL`
//! to a sender that passes one; a daemon that did would be a protocol
//! error), so nobody can change data after it was sent.

use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use busbar_kernel::{Attachment, Errno, Message, Outgoing, Request};
use busbar_sys::memfd::{MemfdBuffer, SealedMemfd, find, into_bytes};
use bytes::Bytes;

/// The default [`memfd_threshold`]: 256 KiB. Measured with `busbar bench`
/// (BENCHMARKS.md): a request/reply through the daemon is faster inline up
/// to 128 KiB and faster as a memfd from 256 KiB.
pub const DEFAULT_MEMFD_THRESHOLD: usize = 256 << 10;

/// 0: not read from the environment yet.
static THRESHOLD: AtomicUsize = AtomicUsize::new(0);

/// Data at least this long goes to a daemon as a sealed memfd: this
/// process's setting ([`set_memfd_threshold`]), else `$BUSBAR_MEMFD_THRESHOLD`
/// (bytes), else [`DEFAULT_MEMFD_THRESHOLD`].
pub fn memfd_threshold() -> usize {
    match THRESHOLD.load(Ordering::Relaxed) {
        0 => {
            let t = std::env::var("BUSBAR_MEMFD_THRESHOLD")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(DEFAULT_MEMFD_THRESHOLD)
                .max(1);
            // A racing `set_memfd_threshold` wins.
            let _ = THRESHOLD.compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
            THRESHOLD.load(Ordering::Relaxed)
        }
        t => t,
    }
}

/// Sets [`memfd_threshold`] for this process (at least 1 byte; `usize::MAX`
/// sends everything inline). Data built in a [`PayloadBuffer`] goes as its
/// memfd whenever it is at least this long.
pub fn set_memfd_threshold(bytes: usize) {
    THRESHOLD.store(bytes.max(1), Ordering::Relaxed);
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_number)
        .unwrap_or(Errno::ENOMEM)
}

/// Is `data` a read-only mapping of a whole sealed memfd (data that came
/// through a daemon as a memfd, or was built in a [`PayloadBuffer`])? Such
/// data can be sent on through a daemon without a copy.
pub fn is_sealed_memfd(data: &Bytes) -> bool {
    find(data).is_some()
}

/// Message data built in place in a memfd: fill it (it derefs to
/// `[u8]`), then [`PayloadBuffer::seal`] it into a `Bytes` to send. Through
/// a daemon the memfd itself is passed, so neither the sender, the daemon
/// nor any receiver copies the data.
///
/// ```
/// use busbar::{Bus, PayloadBuffer};
///
/// let bus = Bus::in_process();
/// let (camera, viewer) = (bus.open()?, bus.open()?);
/// viewer.bind("$.camera.frame")?;
/// let mut frame = PayloadBuffer::new(6 << 20)?;     // a 6 MiB frame
/// frame.fill(0x80);                                 // the camera writes it here
/// camera.announce("$.camera.frame", frame.seal()?)?;
/// assert_eq!(viewer.recv()?.data.len(), 6 << 20);
/// # Ok::<(), busbar::Errno>(())
/// ```
#[derive(Debug)]
pub struct PayloadBuffer {
    buf: MemfdBuffer,
}

impl PayloadBuffer {
    /// A buffer of `len` zero bytes in a new memfd (`ENOMEM`, `EMFILE`, ...
    /// if the system cannot make one).
    pub fn new(len: usize) -> Result<Self, Errno> {
        Ok(Self {
            buf: MemfdBuffer::new(len).map_err(|e| io_errno(&e))?,
        })
    }

    /// Seals the memfd against every change and gives its bytes as data to
    /// send (any number of times, to any number of receivers).
    pub fn seal(self) -> Result<Bytes, Errno> {
        let sealed = self.buf.seal().map_err(|e| io_errno(&e))?;
        Ok(into_bytes(sealed))
    }
}

impl Deref for PayloadBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_slice()
    }
}

impl DerefMut for PayloadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }
}

/// The message as it goes to the daemon: `None` if it goes as it is; else
/// a copy whose data travels as a sealed memfd after its own fds (the
/// data's own memfd if it was built in a [`PayloadBuffer`], else a new one
/// with a copy of the data).
fn outgoing_to_wire(m: &Outgoing) -> Result<Option<Outgoing>, Errno> {
    if m.data.is_empty() || m.data.len() < memfd_threshold() {
        return Ok(None);
    }
    let memfd = match find(&m.data) {
        Some(memfd) => memfd,
        None => Arc::new(SealedMemfd::copy_of(&m.data).map_err(|e| io_errno(&e))?),
    };
    let own = m.attached_fds().and_then(Attachment::fds).unwrap_or(&[]);
    let fds = own
        .iter()
        .map(OwnedFd::try_clone)
        .chain(std::iter::once(memfd.fd().try_clone_to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io_errno(&e))?;
    let mut out = m.clone();
    out.data = Bytes::new();
    let mut att = Attachment::from_fds(fds);
    att.data_in_last = true;
    out.set_attached_fds(Some(att));
    Ok(Some(out))
}

/// Does the request carry data that goes as a memfd?
pub(crate) fn has_large_data(r: &Request) -> bool {
    let large = |m: &Outgoing| !m.data.is_empty() && m.data.len() >= memfd_threshold();
    match r {
        Request::Send(a) => large(&a.message),
        Request::SendBatch(v) => v.iter().any(|a| large(&a.message)),
        _ => false,
    }
}

/// The request as it goes to the daemon (`None`: as it is), with large
/// data as memfds ([`outgoing_to_wire`]).
pub(crate) fn request_to_wire(r: &Request) -> Result<Option<Request>, Errno> {
    match r {
        Request::Send(a) => Ok(outgoing_to_wire(&a.message)?.map(|message| {
            let mut a = a.clone();
            a.message = message;
            Request::Send(a)
        })),
        Request::SendBatch(v) => {
            let mut converted = None;
            for (i, a) in v.iter().enumerate() {
                if let Some(message) = outgoing_to_wire(&a.message)? {
                    let batch: &mut Vec<_> = converted.get_or_insert_with(|| v.clone());
                    batch[i].message = message;
                }
            }
            Ok(converted.map(Request::SendBatch))
        }
        _ => Ok(None),
    }
}

/// Gives a received message the data that came as the memfd ending `fds`
/// (its fds as received). `EPROTO` if it is not a sealed memfd: a daemon
/// that passes anything else breaks the protocol.
pub(crate) fn data_from_wire(m: &mut Message, fds: &mut Vec<OwnedFd>) -> Result<(), Errno> {
    let memfd = fds.pop().ok_or(Errno::EPROTO)?;
    // Populated: a receiver reads its data.
    let sealed = SealedMemfd::open(memfd, true).map_err(|_| Errno::EPROTO)?;
    m.set_data(into_bytes(sealed));
    Ok(())
}
