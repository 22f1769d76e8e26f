//! [`TokioReactor`]: the [`Reactor`] for tokio, through `AsyncFd`.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::task::Poll;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::Reactor;

/// tokio's reactor: the readiness fd in an `AsyncFd` (edge-triggered
/// epoll), `tokio::time::sleep` for the full-inbox poll. Works on the
/// multi-thread and current-thread runtimes; the runtime needs IO and time
/// enabled (`Builder::enable_all`, or `#[tokio::main]`).
#[derive(Debug)]
pub struct TokioReactor {
    fd: AsyncFd<OwnedFd>,
}

impl Reactor for TokioReactor {
    /// tokio 1.53.3 deprecated `AsyncFd`'s safe constructors for `unsafe`
    /// ones whose condition is that the fd stays open while registered;
    /// this crate forbids `unsafe`. The `AsyncFd` owns the fd (a duplicate
    /// of the readiness fd), which meets that condition by ownership, so
    /// the safe constructor is sound here.
    #[allow(deprecated)]
    fn register(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            fd: AsyncFd::with_interest(fd, Interest::READABLE)?,
        })
    }

    async fn ready_with<T>(&self, mut attempt: impl FnMut() -> Poll<T> + Send) -> io::Result<T> {
        loop {
            // `readable()`, not `poll_read_ready`: the latter keeps one
            // waker, so with several tasks waiting all but the last would
            // never be woken.
            let mut guard = self.fd.readable().await?;
            match attempt() {
                Poll::Ready(v) => return Ok(v),
                // Clears only the readiness this guard saw: an event that
                // came since makes the next `readable()` ready at once.
                Poll::Pending => guard.clear_ready(),
            }
        }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(duration)
    }
}
