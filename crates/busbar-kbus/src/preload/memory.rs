//! The program's memory, read and written with `process_vm_readv` and
//! `process_vm_writev` on our own pid: a bad pointer is `EFAULT`, as from
//! the kernel, never a crash. Where those calls are refused (a seccomp
//! policy that forbids them), memory is copied directly, after a NULL check,
//! as a C library would.

use std::sync::atomic::{AtomicBool, Ordering};

use busbar::Errno;

use crate::ksock::Memory;

/// This process's memory.
#[derive(Debug, Default)]
pub(crate) struct ProcessMemory;

/// `process_vm_*` were refused: copy directly from now on.
static DIRECT: AtomicBool = AtomicBool::new(false);

fn refused() -> bool {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let e = unsafe { *libc::__errno_location() };
    e == libc::ENOSYS || e == libc::EPERM
}

impl ProcessMemory {
    /// Fills `out` from `addr`, allocating nothing (safe in a `vfork` child
    /// and a signal handler). `EFAULT` if it cannot all be read.
    pub(crate) fn read_into(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
        let len = out.len();
        if len == 0 {
            return Ok(());
        }
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        if !DIRECT.load(Ordering::Relaxed) {
            let local = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: len,
            };
            let remote = libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: len,
            };
            // SAFETY: `local` describes `out`, which we borrow mutably for
            // the call; the kernel checks `remote` (a bad address is EFAULT).
            let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
            if n >= 0 && n as usize == len {
                return Ok(());
            }
            if n >= 0 || !refused() {
                return Err(Errno::EFAULT);
            }
            DIRECT.store(true, Ordering::Relaxed);
        }
        // SAFETY: the program handed us this non-NULL pointer as `len`
        // readable bytes (an argument of the call it made), as the API it
        // called requires; `out` holds `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(addr as usize as *const u8, out.as_mut_ptr(), len) };
        Ok(())
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut out = vec![0u8; len];
        Self::read_into(addr, &mut out)?;
        Ok(out)
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        if bytes.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        if !DIRECT.load(Ordering::Relaxed) {
            let local = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let remote = libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            // SAFETY: `local` describes `bytes`, only read by the kernel;
            // the kernel checks `remote` (a bad address is EFAULT).
            let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
            if n >= 0 && n as usize == bytes.len() {
                return Ok(());
            }
            if n >= 0 || !refused() {
                return Err(Errno::EFAULT);
            }
            DIRECT.store(true, Ordering::Relaxed);
        }
        // SAFETY: the program handed us this non-NULL pointer as an ioctl's
        // out argument of this size, as the KBUS ABI requires.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as usize as *mut u8, bytes.len())
        };
        Ok(())
    }
}
