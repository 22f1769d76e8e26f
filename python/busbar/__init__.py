"""busbar: a message bus for Linux with kernel-grade guarantees.

Named messages (``$.sensors.camera.frame``), any number of listeners, exactly
one replier per name, a reply that is guaranteed (the bus answers for a
replier that goes away), one total order, never-silent full queues::

    import busbar

    bus = busbar.Bus.in_process()          # or busbar.Bus.connect()
    with bus.open() as replier, bus.open() as client:
        replier.bind("$.clock.time", replier=True)
        rid = client.request("$.clock.time", b"what time is it?")
        req = replier.recv(timeout=5)
        replier.reply(req, b"noon")
        print(client.wait_reply(rid, timeout=5).data)   # b'noon'

Errors are :class:`BusbarError` (an ``OSError``; ``errno`` is the Linux
number) or one of its subclasses. Blocking calls release the GIL and stop on
Ctrl-C. :class:`AsyncEndpoint` gives the asyncio API.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from typing import Any, AsyncIterator, Deque, Dict, List, Optional, Tuple

from ._busbar import (  # noqa: F401
    AddressInUseError,
    Bus,
    BusbarError,
    BusTimeoutError,
    ConnectionLostError,
    Endpoint,
    InvalidNameError,
    Message,
    NoReplierError,
    NotAllowedError,
    QueueFullError,
    strerror,
)

__all__ = [
    "AddressInUseError", "AsyncEndpoint", "Bus", "BusbarError", "BusTimeoutError",
    "ConnectionLostError", "Endpoint", "Flags", "InvalidNameError", "Message",
    "NoReplierError", "NotAllowedError", "QueueFullError", "strerror",
    "GONE_AWAY", "IGNORED", "UNBOUND", "DISAPPEARED", "ERROR_SENDING",
]

#: The bus's own replies (``msg.is_synthetic``).
GONE_AWAY = "$.KBUS.Replier.GoneAway"
IGNORED = "$.KBUS.Replier.Ignored"
UNBOUND = "$.KBUS.Replier.Unbound"
DISAPPEARED = "$.KBUS.Replier.Disappeared"
ERROR_SENDING = "$.KBUS.ErrorSending"


class Flags(enum.IntFlag):
    """Message flags (bits 16..31 belong to the application)."""

    NONE = 0
    WANT_A_REPLY = 0x1
    WANT_YOU_TO_REPLY = 0x2
    SYNTHETIC = 0x4
    URGENT = 0x8
    ALL_OR_WAIT = 0x100
    ALL_OR_FAIL = 0x200


class AsyncEndpoint:
    """The asyncio face of an :class:`Endpoint`: ``await recv()``,
    ``await call(...)``, ``async for msg in aep``, on one event loop.

    Waiting is ``loop.add_reader`` on the endpoint's readiness fd; no thread
    is used. Messages taken from the bus wait in this object's inbox until a
    ``recv`` hands them out, and a reply goes to the ``call`` waiting for it.
    Cancelling a ``recv`` or a ``call`` loses nothing: the reply of a
    cancelled call is handed out by a later ``recv`` (it is a message like
    any other), and a message is never half taken.

    While a ``call`` waits, other incoming messages move into the inbox, up
    to ``inbox_limit`` of them; past that the bus queue is left to hold (and
    to apply its own limit and loss count), and the call looks for its reply
    every 10 ms instead.
    """

    #: Batch size for draining the bus queue into the inbox.
    _BATCH = 64

    def __init__(self, endpoint: Endpoint, inbox_limit: int = 4096) -> None:
        self.endpoint = endpoint
        self.inbox_limit = inbox_limit
        self._inbox: Deque[Message] = deque()
        self._replies: Dict[Tuple[int, int], "asyncio.Future[Message]"] = {}
        self._watchers: List["asyncio.Future[None]"] = []
        self._reader: Optional[Tuple[asyncio.AbstractEventLoop, int]] = None

    def __getattr__(self, name: str) -> Any:
        # Everything that does not wait: as the endpoint does it.
        return getattr(self.endpoint, name)

    async def __aenter__(self) -> "AsyncEndpoint":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the endpoint (the bus answers what it owed); messages still
        in the inbox are dropped with it."""
        self._stop_reading()
        self._inbox.clear()
        self.endpoint.close()

    # ----- readiness ---------------------------------------------------------

    def _on_readable(self) -> None:
        watchers, self._watchers = self._watchers, []
        self._stop_reading()
        for w in watchers:
            if not w.done():
                w.set_result(None)

    def _stop_reading(self) -> None:
        if self._reader is not None:
            loop, fd = self._reader
            self._reader = None
            loop.remove_reader(fd)

    def _watch(self) -> "asyncio.Future[None]":
        """A future done when the readiness fd polls readable (one reader per
        endpoint, shared by every coroutine waiting on it). Pass it to
        ``_unwatch`` when done with it."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._watchers.append(fut)
        if self._reader is None:
            fd = self.endpoint.fileno()
            loop.add_reader(fd, self._on_readable)
            self._reader = (loop, fd)
        return fut

    def _unwatch(self, fut: "asyncio.Future[None]") -> None:
        if fut in self._watchers:
            self._watchers.remove(fut)
        if not self._watchers:
            self._stop_reading()

    async def _until(self, deadline: Optional[float], *also: "asyncio.Future[Any]") -> bool:
        """Waits until the fd polls readable, one of `also` is done, or the
        loop's clock passes `deadline`; False if the deadline passed."""
        loop = asyncio.get_running_loop()
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return False
        fut = self._watch()
        try:
            await asyncio.wait([fut, *also], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._unwatch(fut)
        return True

    # ----- taking messages (never across an await: a cancelled wait has
    # taken nothing) --------------------------------------------------------

    def _route(self, m: Message) -> bool:
        """Hands a reply to the call awaiting it; False for anything else."""
        waiter = self._replies.get(m.in_reply_to) if m.is_reply else None
        if waiter is None or waiter.done():
            return False
        waiter.set_result(m)
        return True

    def _next(self) -> Optional[Message]:
        """The next message for ``recv``, if any is here or queued."""
        if self._inbox:
            return self._inbox.popleft()
        while True:
            m = self.endpoint.try_recv()
            if m is None or not self._route(m):
                return m

    def _pump(self) -> bool:
        """Moves what the bus queue holds into the inbox (a reply straight to
        the call awaiting it), while the inbox has room. True if the inbox
        is full and messages may be left in the bus queue."""
        while len(self._inbox) < self.inbox_limit:
            room = min(self._BATCH, self.inbox_limit - len(self._inbox))
            batch = self.endpoint.try_recv_batch(room)
            for m in batch:
                if not self._route(m):
                    self._inbox.append(m)
            if len(batch) < room:
                return False
        return True

    def _take_kept_reply(self, rid: Tuple[int, int]) -> Optional[Message]:
        for i, m in enumerate(self._inbox):
            if m.is_reply and m.in_reply_to == rid:
                del self._inbox[i]
                return m
        return None

    # ----- the API -----------------------------------------------------------

    async def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message; None after `timeout` seconds (None: forever)."""
        deadline = _deadline(timeout)
        while True:
            m = self._next()
            if m is not None:
                return m
            if not await self._until(deadline):
                return None

    async def wait_reply(self, rid: Tuple[int, int], timeout: Optional[float] = None) -> Message:
        """The reply to our request `rid` (possibly synthetic); other messages
        stay for ``recv``. Raises :class:`BusTimeoutError` after `timeout`
        seconds (the reply then comes to a later ``recv``)."""
        m = self._take_kept_reply(rid) or self.endpoint.take_reply(rid)
        if m is not None:
            return m
        if rid in self._replies:
            raise ValueError(f"a wait for the reply to {rid} is already running")
        deadline = _deadline(timeout)
        waiter: "asyncio.Future[Message]" = asyncio.get_running_loop().create_future()
        self._replies[rid] = waiter
        returned = False
        try:
            while True:
                full = self._pump()
                if waiter.done():
                    returned = True
                    return waiter.result()
                if full:
                    # The inbox is full: look for the reply alone, now and then.
                    m = self.endpoint.take_reply(rid)
                    if m is not None:
                        returned = True
                        return m
                    if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                        break
                    await asyncio.sleep(0.01)
                elif not await self._until(deadline, waiter):
                    break
            raise BusTimeoutError(110, "ETIMEDOUT: no reply in time")
        finally:
            del self._replies[rid]
            if waiter.done() and not returned:
                # This wait was cancelled or timed out as the reply came:
                # a later recv hands it out.
                self._inbox.append(waiter.result())

    async def call(self, name: str, data: bytes = b"", timeout: Optional[float] = None) -> Message:
        """Sends a request and waits for its reply (possibly synthetic).
        Raises :class:`BusTimeoutError` after `timeout` seconds."""
        rid = self.endpoint.request(name, data)
        return await self.wait_reply(rid, timeout)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while not self.endpoint.closed:
            m = await self.recv()
            if m is not None:
                yield m


def _deadline(timeout: Optional[float]) -> Optional[float]:
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("timeout must be >= 0 seconds")
    return asyncio.get_running_loop().time() + timeout
