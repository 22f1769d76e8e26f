//! Large message data in sealed memfds, mapped read-only.
//!
//! A [`SealedMemfd`] is a memfd sealed against writing, shrinking, growing
//! and further sealing, and a read-only shared mapping of all of it: its
//! bytes can never change while anyone holds it, so it can be handed to any
//! number of receivers (across processes, with `SCM_RIGHTS`) without a
//! copy. [`SealedMemfd::open`] refuses an fd that is not such a memfd, so a
//! malicious sender cannot hand a receiver memory it could still change.
//!
//! [`into_bytes`] turns one into a `bytes::Bytes` over the mapping
//! (unmapped when the last `Bytes` drops) and remembers it, so a transport
//! holding only the `Bytes` can find the memfd again ([`find`]) and pass
//! the fd instead of the bytes. [`MemfdBuffer`] is a writable memfd for a
//! sender to fill in place; sealing it gives the `SealedMemfd`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate};
use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap, munmap};

/// The seals a payload memfd must carry.
pub const PAYLOAD_SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// A mapping of `len` bytes at `ptr` (nothing when `len` is 0).
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

/// From this size a writable mapping asks for transparent huge pages
/// (one 2 MiB page instead of 512 faults and 512 allocations). The kernel
/// gives them only where shared-memory huge pages are allowed
/// (`/sys/kernel/mm/transparent_hugepage/shmem_enabled` is `advise`,
/// `within_size` or `always`); elsewhere the advice changes nothing.
const HUGE_PAGE: usize = 2 << 20;

impl Mapping {
    /// `populate`: map every page now (one call, much cheaper than a
    /// fault per page for memory about to be read or written whole).
    fn new(fd: BorrowedFd<'_>, len: usize, writable: bool, populate: bool) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // A writable mapping is populated below, after the huge-page advice
        // (MAP_POPULATE would allocate small pages first, and on a shared
        // mapping it populates for reading, so every first write faults
        // again).
        let flags = if populate && !writable {
            MapFlags::SHARED | MapFlags::POPULATE
        } else {
            MapFlags::SHARED
        };
        // SAFETY: a new mapping at an address the kernel chooses, of an fd
        // we hold, `len` bytes (the file's size); nothing else is touched.
        // Unmapped exactly once, in `Drop`.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, prot, flags, fd, 0)? };
        let map = Self {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?,
            len,
        };
        if writable {
            if len >= HUGE_PAGE {
                // SAFETY: advice on the mapping just made, all of it; it
                // changes how pages are allocated, never their contents.
                // Refused (EINVAL) by kernels without THP: harmless.
                let _ = unsafe { madvise(ptr, len, Advice::LinuxHugepage) };
            }
            if populate {
                // SAFETY: as above; faults every page in for writing (new
                // pages are zero, as they would be on first touch). Kernels
                // before 5.14 refuse it and the pages fault in on first
                // write instead.
                let _ = unsafe { madvise(ptr, len, Advice::LinuxPopulateWrite) };
            }
        }
        Ok(map)
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for our whole life (or is
        // dangling with `len` 0, valid for an empty slice).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`; the mapping is writable (MemfdBuffer only)
        // and `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, unmapped once; no slice of
            // it outlives `self` (they borrow it).
            let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

// SAFETY: the mapping is plain memory owned by this value; moving it to
// another thread moves the only owner.
unsafe impl Send for Mapping {}
// SAFETY: shared access is read-only (`as_slice`); writing needs `&mut`.
unsafe impl Sync for Mapping {}

/// Run when a [`SealedMemfd`] is dropped (its holder's accounting).
pub type Release = Box<dyn FnOnce() + Send + Sync>;

/// A sealed memfd and a read-only mapping of all of it.
pub struct SealedMemfd {
    map: Mapping,
    fd: OwnedFd,
    release: Option<Release>,
}

impl std::fmt::Debug for SealedMemfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedMemfd")
            .field("len", &self.map.len)
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

impl SealedMemfd {
    /// Takes a memfd that carries [`PAYLOAD_SEALS`] and maps all of it
    /// read-only (`populate`: with every page mapped at once, for data about
    /// to be read whole). `InvalidInput` if `fd` is not a sealed memfd (a
    /// file, a pipe, an unsealed memfd or one that can still be written).
    pub fn open(fd: OwnedFd, populate: bool) -> io::Result<Self> {
        let seals = fcntl_get_seals(&fd).map_err(|_| invalid("not a memfd"))?;
        if !seals.contains(PAYLOAD_SEALS) {
            return Err(invalid(
                "the memfd is not sealed against writing, shrinking, growing and resealing",
            ));
        }
        let len = usize::try_from(fstat(&fd)?.st_size).map_err(|_| invalid("bad size"))?;
        Ok(Self {
            map: Mapping::new(fd.as_fd(), len, false, populate)?,
            fd,
            release: None,
        })
    }

    /// Runs `release` when this memfd (and every `Bytes` over it) is gone:
    /// for whoever counts the mappings it holds.
    pub fn on_release(mut self, release: Release) -> Self {
        self.release = Some(release);
        self
    }

    /// A new sealed memfd holding a copy of `data`. Written with `write`,
    /// not through a mapping: the kernel then need not zero the new pages
    /// first, and the sender maps nothing it would have to unmap again.
    pub fn copy_of(data: &[u8]) -> io::Result<Self> {
        let fd = new_memfd()?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, data)?;
        let fd = OwnedFd::from(file);
        fcntl_add_seals(&fd, PAYLOAD_SEALS)?;
        Self::open(fd, false)
    }

    /// The memfd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Its bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// Its size.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }
}

impl Drop for SealedMemfd {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
        if self.map.len > 0 {
            let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
            let key = self.map.ptr.as_ptr() as usize;
            if r.get(&key).is_some_and(|w| w.strong_count() == 0) {
                r.remove(&key);
            }
        }
    }
}

/// A new empty memfd that can be sealed.
fn new_memfd() -> io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create(
        "busbar-payload",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?)
}

/// A writable memfd of a fixed size, to fill in place and then seal.
#[derive(Debug)]
pub struct MemfdBuffer {
    map: Mapping,
    fd: OwnedFd,
}

impl MemfdBuffer {
    /// A new memfd of `len` zero bytes, mapped writable.
    pub fn new(len: usize) -> io::Result<Self> {
        let fd = new_memfd()?;
        ftruncate(&fd, len as u64)?;
        Ok(Self {
            // Populated: the buffer is about to be written whole.
            map: Mapping::new(fd.as_fd(), len, true, true)?,
            fd,
        })
    }

    /// The bytes to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.map.as_mut_slice()
    }

    /// The bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// Unmaps the writable mapping, seals the memfd ([`PAYLOAD_SEALS`]) and
    /// maps it read-only: from here on nobody can change its bytes.
    pub fn seal(self) -> io::Result<SealedMemfd> {
        let Self { map, fd } = self;
        // F_SEAL_WRITE is refused while a writable shared mapping exists.
        drop(map);
        fcntl_add_seals(&fd, PAYLOAD_SEALS)?;
        SealedMemfd::open(fd, false)
    }
}

type Registry = Mutex<HashMap<usize, Weak<SealedMemfd>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

/// Owns the memfd behind a `Bytes`.
struct Owner(Arc<SealedMemfd>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Its bytes, as a `Bytes` over the mapping (no copy), remembered so that
/// [`find`] can give the memfd back for that `Bytes` or a clone of it.
pub fn into_bytes(m: SealedMemfd) -> Bytes {
    if m.is_empty() {
        return Bytes::new();
    }
    let m = Arc::new(m);
    let key = m.map.ptr.as_ptr() as usize;
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::downgrade(&m));
    Bytes::from_owner(Owner(m))
}

/// The sealed memfd whose whole mapping `data` is (made by
/// [`into_bytes`]), if it is one; a slice of it is not.
pub fn find(data: &Bytes) -> Option<Arc<SealedMemfd>> {
    if data.is_empty() {
        return None;
    }
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let m = r.get(&(data.as_ptr() as usize))?.upgrade()?;
    (m.len() == data.len()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_are_found_and_unmapped_when_dropped() {
        let m = SealedMemfd::copy_of(b"hello, memfd").unwrap();
        let b = into_bytes(m);
        assert_eq!(&b[..], b"hello, memfd");
        let clone = b.clone();
        assert!(find(&clone).is_some());
        assert!(find(&b.slice(1..)).is_none(), "a slice is not the memfd");
        assert!(find(&Bytes::copy_from_slice(&b)).is_none());
        let key = b.as_ptr() as usize;
        drop((b, clone));
        assert!(
            registry().lock().unwrap().get(&key).is_none(),
            "forgotten when the last Bytes goes"
        );
    }

    #[test]
    fn only_sealed_memfds_open() {
        // Unsealed.
        let fd = crate::memfd_with("x", b"data").unwrap();
        assert_eq!(
            SealedMemfd::open(fd, false).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // Sealed against growing only: still writable.
        let fd = crate::memfd_with("x", b"data").unwrap();
        fcntl_add_seals(&fd, SealFlags::GROW | SealFlags::SHRINK).unwrap();
        assert!(SealedMemfd::open(fd, false).is_err());
        // Not a memfd at all.
        let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(SealedMemfd::open(f, false).is_err());
    }

    #[test]
    fn a_sealed_memfd_cannot_be_changed() {
        let mut b = MemfdBuffer::new(4).unwrap();
        b.as_mut_slice().copy_from_slice(b"abcd");
        let m = b.seal().unwrap();
        assert_eq!(m.as_slice(), b"abcd");
        assert!(rustix::io::pwrite(m.fd(), b"x", 0).is_err());
        assert!(ftruncate(m.fd(), 1).is_err());
        assert!(ftruncate(m.fd(), 8).is_err());
        // SAFETY: (test) a mapping attempt that must fail; nothing is mapped.
        let w = unsafe {
            mmap(
                std::ptr::null_mut(),
                4,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                m.fd(),
                0,
            )
        };
        assert!(w.is_err(), "no writable shared mapping of a sealed memfd");
    }
}
