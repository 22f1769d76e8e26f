"""Type stubs for busbar's native module (``busbar._busbar``).

Import from ``busbar``, not from here: ``busbar`` re-exports every name and
adds ``Flags`` and ``AsyncEndpoint``.
"""

from typing import IO, Any, Dict, List, Optional, Protocol, Sequence, Tuple, Union, final

from busbar import Flags

__all__ = [
    "AddressInUseError", "Binding", "Bus", "BusTimeoutError", "BusbarError", "ConnectionLostError",
    "Endpoint", "InvalidNameError", "Message", "NoReplierError", "NotAllowedError", "QueueFullError",
    "strerror",
]


#: Message data: anything with the buffer protocol (bytes, bytearray,
#: memoryview, array.array, ...).
_Buffer = Union[bytes, bytearray, memoryview]

#: A message id: ``(network, serial)``.
_MessageId = Tuple[int, int]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

#: An fd to pass: an int, or anything with ``fileno()``.
_FdLike = Union[int, _HasFileno]

class BusbarError(OSError):
    """A busbar operation failed: ``errno`` is the Linux errno number (the
    same as busbar's Rust ``Errno``), ``strerror`` says what it means."""

class NoReplierError(BusbarError):
    """EADDRNOTAVAIL: no replier is bound to the name (or the requester has gone)."""

class AddressInUseError(BusbarError):
    """EADDRINUSE: the name already has a replier."""

class QueueFullError(BusbarError):
    """EBUSY: a recipient's queue is full (or EAGAIN: the send is pending)."""

class InvalidNameError(BusbarError):
    """EBADMSG or ENAMETOOLONG: not a valid message name or pattern."""

class NotAllowedError(BusbarError):
    """ECONNREFUSED or EPERM: this endpoint may not do that."""

class BusTimeoutError(BusbarError):
    """ETIMEDOUT: nothing came in time."""

class ConnectionLostError(BusbarError):
    """ECONNRESET or ESHUTDOWN: the daemon is gone."""

def strerror(errno: int) -> str:
    """What an errno means, in busbar's words."""

@final
class Binding:
    """One binding on a bus: who listens to, or replies for, which name."""

    id: int
    endpoint: int
    pid: int
    uid: int
    replier: bool
    name: str

@final
class Bus:
    """A bus: in-process, or one bus of a busbar daemon."""

    @staticmethod
    def in_process() -> Bus:
        """A new in-process bus (no daemon needed)."""
    @staticmethod
    def connect(path: Optional[str] = None) -> Bus:
        """Connects to a busbar daemon at ``path``, or the default socket
        ($BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock,
        /tmp/busbar-<uid>/bus.sock). Blocks for the handshake."""
    @property
    def id(self) -> int:
        """This bus's number."""
    def bus(self, id: int) -> Bus:
        """Another bus of the same kernel or daemon (errors surface on use)."""
    def create_bus(self) -> Bus:
        """Creates a new bus (privileged through a daemon)."""
    def open(self) -> Endpoint:
        """Opens an endpoint on this bus."""
    def find_replier(self, name: str) -> Optional[int]:
        """The endpoint a request to ``name`` would reach now, or None."""
    def names(self) -> List[Binding]:
        """Every binding on the bus, oldest first."""
    def set_max_message_size(self, size: int) -> int:
        """Sets the bus's maximum message size (name plus data); returns the
        previous one."""
    def stats(self) -> Dict[str, Any]:
        """The bus's statistics: one dict per endpoint under "endpoints", the
        counters (sent, delivered, lost, synthetic, refused) under "counters"."""

@final
class Endpoint:
    """An endpoint: bind names, send, receive. Blocking calls release the
    GIL, stop on Ctrl-C, and end with EBADF if the endpoint is closed from
    another thread."""

    @property
    def id(self) -> int:
        """The endpoint's id."""
    @property
    def closed(self) -> bool:
        """Has it been closed?"""
    def bind(self, name: str, replier: bool = False) -> None:
        """Binds a name or pattern (``$.a.*``, ``$.a.%``) as a listener, or as
        the replier (one per name on the bus)."""
    def unbind(self, name: str, replier: bool = False) -> None:
        """Removes the most recent such binding."""
    def send(
        self,
        name: str,
        data: _Buffer = ...,
        *,
        flags: int = 0,
        to: int = 0,
        in_reply_to: Optional[_MessageId] = None,
        handles: Sequence[int] = ...,
        to_handles: Sequence[int] = ...,
        fds: Sequence[_FdLike] = ...,
        orig_from: Optional[Tuple[int, int]] = None,
        final_to: Optional[Tuple[int, int]] = None,
    ) -> _MessageId:
        """Sends a message with every field under control; returns its id."""
    def send_wait(
        self, name: str, data: _Buffer = ..., *, flags: int = 0, timeout: Optional[float] = None
    ) -> _MessageId:
        """Sends with ALL_OR_WAIT, waiting while it is pending for room; on
        timeout or Ctrl-C the send is given up."""
    def send_batch(
        self, messages: Sequence[Union[Tuple[str, _Buffer], Tuple[str, _Buffer, int]]]
    ) -> List[Union[_MessageId, BusbarError]]:
        """Sends announcements in order as one bus operation; one result per
        message: its id, or the error it met (returned, not raised)."""
    def announce(self, name: str, data: _Buffer = ...) -> _MessageId:
        """Sends an announcement to every listener of ``name``."""
    def request(self, name: str, data: _Buffer = ...) -> _MessageId:
        """Sends a request to the replier of ``name`` (``NoReplierError`` if
        none); wait for the reply with ``wait_reply``."""
    def reply(self, request: Message, data: _Buffer = ...) -> _MessageId:
        """Replies to a request this endpoint received as its replier."""
    def stateful_request(self, earlier: Message, name: str, data: _Buffer = ...) -> _MessageId:
        """A request that must reach the replier that answered ``earlier``."""
    def call(self, name: str, data: _Buffer = ..., timeout: Optional[float] = None) -> Message:
        """Sends a request and waits for its reply (possibly synthetic)."""
    def wait_reply(self, id: _MessageId, timeout: Optional[float] = None) -> Message:
        """Waits for the reply to our request ``id``; other messages stay
        queued. ``BusTimeoutError`` on timeout."""
    def take_reply(self, id: _MessageId) -> Optional[Message]:
        """The reply to our request ``id`` if it has arrived, else None."""
    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, waiting up to ``timeout`` seconds (None:
        forever); None on timeout."""
    def try_recv(self) -> Optional[Message]:
        """The next message if one is queued, else None."""
    def try_recv_batch(self, max: int = 64) -> List[Message]:
        """Up to ``max`` queued messages, without waiting."""
    def recv_batch(self, max: int = 64, timeout: Optional[float] = None) -> List[Message]:
        """Up to ``max`` messages, waiting for the first; [] on timeout."""
    def fileno(self) -> int:
        """The readiness fd (readable while there is something to take)."""
    def discard_send(self) -> bool:
        """Drops the pending ALL_OR_WAIT send; True if there was one."""
    def take_send_outcome(self) -> Optional[Tuple[_MessageId, int]]:
        """How the pending send ended, if it has: (id, errno or 0)."""
    def set_queue_limit(self, limit: int) -> int:
        """Sets the queue limit; returns the previous one."""
    def set_only_once(self, on: bool) -> bool:
        """Turns "only once" on or off; returns the previous value."""
    def set_replier_bind_events(self, on: bool) -> bool:
        """Turns the bus's replier bind events on or off."""
    def set_monitor(self, on: bool) -> bool:
        """Turns monitoring on or off (privileged through a daemon)."""
    def stats(self) -> Dict[str, Any]:
        """This endpoint's counters."""
    def create_node(self) -> int:
        """Creates a node owned by this endpoint; returns our handle to it."""
    def release_handle(self, handle: int) -> None:
        """Drops one reference to one of our handles."""
    def destroy_nodes(self, handles: Sequence[int]) -> None:
        """Destroys nodes we own, atomically."""
    def close(self) -> None:
        """Closes the endpoint; the bus answers what it owed. Idempotent."""
    def __enter__(self) -> Endpoint: ...
    def __exit__(self, *exc: object) -> bool:
        """Closes the endpoint."""
    def __iter__(self) -> Endpoint: ...
    def __next__(self) -> Message:
        """The next message, waiting for it; the iteration stops when the
        endpoint is closed (here or from another thread)."""

@final
class Message:
    """A received message (read-only)."""

    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def id(self) -> _MessageId: ...
    @property
    def in_reply_to(self) -> _MessageId:
        """For a reply: the request's id; (0, 0) otherwise."""
    @property
    def to(self) -> int:
        """The endpoint it was addressed to (0: none)."""
    @property
    def from_(self) -> int:
        """The endpoint that sent it (0: the bus itself)."""
    @property
    def orig_from(self) -> Tuple[int, int]: ...
    @property
    def final_to(self) -> Tuple[int, int]: ...
    @property
    def flags(self) -> Flags:
        """Its flags, as ``busbar.Flags`` (an ``enum.IntFlag``)."""
    @property
    def creds(self) -> Tuple[int, int, int]:
        """(pid, uid, gid) of the sender, as the bus established them."""
    @property
    def lost(self) -> int:
        """Messages this endpoint lost just before this one (queue full)."""
    @property
    def is_synthetic(self) -> bool: ...
    @property
    def is_request(self) -> bool: ...
    @property
    def is_reply(self) -> bool: ...
    @property
    def wants_us_to_reply(self) -> bool: ...
    @property
    def handles(self) -> List[int]: ...
    @property
    def destination(self) -> int: ...
    def take_fds(self) -> List[int]:
        """Copies of the fds it carried, as ints the caller owns."""
    def take_files(self, mode: str = "rb", **kwargs: Any) -> List[IO[Any]]:
        """Copies of the fds it carried, as file objects the caller owns."""
