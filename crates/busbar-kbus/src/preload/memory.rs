//! The program's memory, read and written with `process_vm_readv` and
//! `process_vm_writev` on our own pid: a bad pointer is `EFAULT`, as from
//! the kernel, never a crash.

use busbar::Errno;

use crate::ksock::Memory;

/// This process's memory.
#[derive(Debug, Default)]
pub(crate) struct ProcessMemory;

fn check(n: isize, len: usize) -> Result<(), Errno> {
    if n < 0 || n as usize != len {
        Err(Errno::EFAULT)
    } else {
        Ok(())
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut out = vec![0u8; len];
        if len == 0 {
            return Ok(out);
        }
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        let local = libc::iovec {
            iov_base: out.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: `local` describes `out`, which we own and which outlives
        // the call; the kernel checks `remote` (a bad address is EFAULT).
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        check(n, len)?;
        Ok(out)
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        if bytes.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        let local = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: `local` describes `bytes`, only read by the kernel; the
        // kernel checks `remote` (a bad address is EFAULT).
        let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
        check(n, bytes.len())
    }
}
