//! The one error type of busbar: [`Errno`], with stable Linux errno numbers.
//!
//! Every operation, on every transport, fails with one of these values and
//! nothing else. The numbers are the x86-64/generic Linux values that KBUS
//! used, so a C or Python binding can hand them straight to `errno` users.
//! A failed operation has no observable effect on the bus.

use core::fmt;

/// A NUL-terminated literal as a C string (checked when compiled).
const fn c_str(s: &'static str) -> &'static core::ffi::CStr {
    match core::ffi::CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("an errno text contains a NUL"),
    }
}

macro_rules! errnos {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $text:literal; )*) => {
        /// A busbar error: a stable errno number with a fixed meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $( $(#[$doc])* $name = $num, )*
        }

        impl Errno {
            /// Every errno busbar can return, in numeric order.
            pub const ALL: &'static [Errno] = &[ $( Errno::$name, )* ];

            /// The errno number (`EBUSY` is 16).
            pub const fn number(self) -> i32 {
                self as i32
            }

            /// The errno for a number, if busbar uses it.
            pub const fn from_number(n: i32) -> Option<Self> {
                match n {
                    $( $num => Some(Errno::$name), )*
                    _ => None,
                }
            }

            /// The symbolic name, `"EBUSY"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Errno::$name => stringify!($name), )*
                }
            }

            /// A plain sentence saying what went wrong, like `strerror(3)` but
            /// with busbar's meaning of the error.
            pub const fn strerror(self) -> &'static str {
                match self {
                    $( Errno::$name => $text, )*
                }
            }

            /// [`Self::strerror`] as a C string (static, for C callers).
            pub const fn strerror_c(self) -> &'static core::ffi::CStr {
                match self {
                    $( Errno::$name => c_str(concat!($text, "\0")), )*
                }
            }

            /// [`Self::name`] as a C string (static, for C callers).
            pub const fn name_c(self) -> &'static core::ffi::CStr {
                match self {
                    $( Errno::$name => c_str(concat!(stringify!($name), "\0")), )*
                }
            }
        }
    };
}

errnos! {
    /// The operation is not allowed for this caller.
    EPERM = 1, "operation not permitted: bus-wide powers need a privileged client (root, the daemon's user, or one listed in privileged_uids/privileged_groups of its config), and an endpoint can be used only by the connection that opened it";
    /// No such bus or endpoint.
    ENOENT = 2, "no such bus or endpoint";
    /// The waiter was interrupted.
    EINTR = 4, "interrupted";
    /// The OS refused a resource the bus needed (an fd, a socket).
    EIO = 5, "I/O error";
    /// The fd is not open for this (KBUS: a write to a read-only Ksock).
    EBADF = 9, "bad file descriptor, or not open for writing";
    /// A wait for room (`ALL_OR_WAIT`) is pending, or a bind event listener is full.
    EAGAIN = 11, "a recipient's queue is full; the send is pending (or the bind event could not be delivered)";
    /// The bus ran out of memory.
    ENOMEM = 12, "out of memory";
    /// The daemon answering at the socket runs as a user this client does
    /// not trust.
    EACCES = 13, "the daemon at this socket runs as a user this client does not trust (not this user nor root; list its uid in BUSBAR_TRUSTED_UIDS to allow it)";
    /// A pointer argument cannot be read or written (KBUS device emulation).
    EFAULT = 14, "bad address";
    /// A recipient's queue is full.
    EBUSY = 16, "a recipient's queue is full";
    /// A device used as a directory (KBUS device emulation).
    ENOTDIR = 20, "not a directory";
    /// An argument is invalid (bad flags, no such binding, a limit out of range).
    EINVAL = 22, "invalid argument";
    /// The daemon has too many connections (its `max_connections` limit).
    ENFILE = 23, "the daemon serves as many connections as it may (max_connections); try again later";
    /// This user holds as many of a resource as a per-user limit allows (connections, fds).
    EMFILE = 24, "a per-connection or per-user limit of the daemon is reached (connections, endpoints, bindings, parked waits or fds); close some";
    /// Not a command this device knows (a KBUS ioctl it does not have).
    ENOTTY = 25, "inappropriate ioctl for device";
    /// A stateful request's replier is no longer the endpoint that holds the name.
    EPIPE = 32, "the named replier is no longer the endpoint bound to this name";
    /// A name is longer than 1000 bytes.
    ENAMETOOLONG = 36, "message name is longer than 1000 bytes";
    /// The reply slot for a request cannot be reserved: the sender's own queue is full.
    ENOLCK = 37, "no room in the sender's own queue to reserve a slot for the reply";
    /// The C library has no such function (KBUS device emulation).
    ENOSYS = 38, "function not implemented";
    /// No message is available.
    ENOMSG = 42, "no message";
    /// The peer broke the protocol.
    EPROTO = 71, "protocol error";
    /// The name is not a valid message name, or is a wildcard where one is not allowed.
    EBADMSG = 74, "invalid message name";
    /// This user has as many connections to the daemon as it may (`max_connections_per_uid`).
    EUSERS = 87, "this user has as many connections to the daemon as it may (max_connections_per_uid)";
    /// The message is larger than the bus's maximum message size.
    EMSGSIZE = 90, "message is larger than the bus's maximum message size";
    /// The operation is not supported by this peer or version.
    EOPNOTSUPP = 95, "operation not supported";
    /// The name already has a replier.
    EADDRINUSE = 98, "the name already has a replier";
    /// Nobody can receive this: no replier for a request, or the reply's requester has gone.
    EADDRNOTAVAIL = 99, "no replier is bound to this name (or the requester has gone)";
    /// The connection to the daemon was lost.
    ECONNRESET = 104, "connection to the bus was lost";
    /// The daemon cannot buffer more for this client (output, partial frames or unclaimed fds).
    ENOBUFS = 105, "the daemon will not buffer more for this client (it does not read its socket, or sends more than a frame holds)";
    /// The bus or transport has shut down.
    ESHUTDOWN = 108, "the bus has shut down";
    /// Too many file descriptors in one message.
    ETOOMANYREFS = 109, "too many file descriptors (253) or handles (1024) in one message";
    /// A deadline passed.
    ETIMEDOUT = 110, "timed out";
    /// This endpoint may not reply to that message (not its replier, or already answered).
    ECONNREFUSED = 111, "this endpoint is not the replier awaited for that request";
    /// A send is already pending on this endpoint.
    EALREADY = 114, "a send is already pending on this endpoint";
    /// A quota of the receiving user would be exceeded.
    EDQUOT = 122, "the receiver's quota would be exceeded";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.strerror())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_linux_values() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_number(e.number()), Some(e));
            assert!(!e.strerror().is_empty());
        }
        assert_eq!(Errno::EBUSY.number(), 16);
        assert_eq!(Errno::EADDRINUSE.number(), 98);
        assert_eq!(Errno::ENOLCK.number(), 37);
        assert_eq!(Errno::EBADMSG.number(), 74);
        assert_eq!(Errno::EDQUOT.number(), 122);
        assert_eq!(Errno::ESHUTDOWN.number(), 108);
        assert_eq!(Errno::from_number(0), None);
        assert!(Errno::ALL.windows(2).all(|w| w[0].number() < w[1].number()));
        assert_eq!(
            Errno::EPIPE.to_string(),
            format!("EPIPE: {}", Errno::EPIPE.strerror())
        );
    }
}
