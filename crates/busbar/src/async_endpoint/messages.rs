//! [`Messages`]: an [`AsyncEndpoint`]'s incoming messages as a `Stream`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{AsyncEndpoint, Reactor};
use crate::{Errno, Message};

type Recv<'a> = Pin<Box<dyn Future<Output = Result<Message, Errno>> + Send + 'a>>;

/// The incoming messages of an [`AsyncEndpoint`], as a
/// [`futures_core::Stream`] (from [`AsyncEndpoint::messages`]). Each item is
/// what [`AsyncEndpoint::recv`] would return; the stream never ends by
/// itself (an error, such as `ECONNRESET` when the daemon goes, is an item).
/// Cancel safe, like `recv`: dropping the stream drops its pending `recv`.
pub struct Messages<'a, R: Reactor> {
    endpoint: &'a AsyncEndpoint<R>,
    pending: Option<Recv<'a>>,
}

impl<'a, R: Reactor> Messages<'a, R> {
    pub(super) fn new(endpoint: &'a AsyncEndpoint<R>) -> Self {
        Self {
            endpoint,
            pending: None,
        }
    }
}

impl<R: Reactor> fmt::Debug for Messages<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("endpoint", self.endpoint)
            .field("waiting", &self.pending.is_some())
            .finish()
    }
}

impl<R: Reactor> Stream for Messages<'_, R> {
    type Item = Result<Message, Errno>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let endpoint = self.endpoint;
        let recv = self
            .pending
            .get_or_insert_with(|| Box::pin(endpoint.recv()));
        let item = std::task::ready!(recv.as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(Some(item))
    }
}
