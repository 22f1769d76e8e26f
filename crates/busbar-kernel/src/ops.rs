//! The operation table: the one place that defines every operation busbar
//! offers (code, arguments, reply, scope, the errors it may return).
//!
//! [`operation_table!`](crate::operation_table) feeds a callback macro the whole table; from it the
//! kernel derives its dispatch ([`crate::Kernel::call`]), this module derives
//! [`Request`], [`Response`], [`OpCode`] and the typed calls of
//! [`Operations`], and the daemon's wire format derives its op codes. The
//! in-process and daemon paths therefore cannot drift apart.
//!
//! Scope says who an operation acts on: `kernel` (the whole kernel), `bus`
//! (one bus; the endpoint is ignored) or `endpoint` (one open endpoint, which
//! must exist: `ENOENT` otherwise).

use crate::{
    BusId, BusStats, Credentials, EndpointId, EndpointStats, Errno, Message, MessageId, Nanos,
    Outgoing,
};

/// Calls `$callback!` with the operation table. Each row is
/// `code => Variant(Args) -> Reply, scope, method, [errors], [properties];`.
/// Properties: `privileged` (a bus-wide power: the daemon allows it only to
/// privileged clients), `can_wait` (may be parked until it finds something),
/// `sends_messages` (its arguments carry messages, and maybe fds),
/// `takes_messages` (its result carries messages, and maybe fds).
#[macro_export]
macro_rules! operation_table {
    ($callback:ident) => {
        $callback! {
            /// Creates a new bus in this kernel and returns its id.
            1 => CreateBus(()) -> $crate::BusId, kernel, create_bus, [ENOMEM], [privileged];
            /// Opens an endpoint on a bus with the given (bus-established) credentials.
            2 => Open($crate::Credentials) -> $crate::EndpointId, bus, open, [ENOENT, ENOMEM], [];
            /// Closes an endpoint: queue drained with synthetic replies, bindings removed, owed requests answered `Ignored`.
            3 => Close(()) -> (), endpoint, close, [ENOENT], [];
            /// Binds a name (pattern) as listener or replier.
            4 => Bind($crate::BindArgs) -> (), endpoint, bind, [ENOENT, EBADMSG, ENAMETOOLONG, EADDRINUSE, EAGAIN], [];
            /// Removes the most recent matching binding and the queued messages it caused.
            5 => Unbind($crate::BindArgs) -> (), endpoint, unbind, [ENOENT, EBADMSG, ENAMETOOLONG, EINVAL, EAGAIN], [];
            /// Sends a message; returns its id. `EAGAIN` (`ALL_OR_WAIT`) leaves it pending.
            6 => Send($crate::SendArgs) -> $crate::MessageId, endpoint, send, [ENOENT, EINVAL, EBADMSG, ENAMETOOLONG, EMSGSIZE, ENOLCK, EADDRNOTAVAIL, ECONNREFUSED, EPIPE, EBUSY, EAGAIN, EALREADY, EDQUOT, ETOOMANYREFS], [sends_messages];
            /// Takes the next message, if any.
            7 => Recv(()) -> Option<$crate::Message>, endpoint, recv, [ENOENT], [can_wait, takes_messages];
            /// Takes the reply (real or synthetic) to one of our requests, if it has arrived.
            8 => TakeReply($crate::MessageId) -> Option<$crate::Message>, endpoint, take_reply, [ENOENT, EINVAL], [can_wait, takes_messages];
            /// Drops the pending send, if any; says whether there was one.
            9 => DiscardSend(()) -> bool, endpoint, discard_send, [ENOENT], [];
            /// Takes the outcome of a pending send that has finished.
            10 => TakeSendOutcome(()) -> Option<$crate::SendOutcome>, endpoint, take_send_outcome, [ENOENT], [can_wait];
            /// Sets this endpoint's queue limit (at least 1); returns the previous one.
            11 => SetQueueLimit(u32) -> u32, endpoint, set_queue_limit, [ENOENT, EINVAL], [];
            /// Sets "only once" (one copy per message however many bindings match); returns the previous value.
            12 => SetOnlyOnce(bool) -> bool, endpoint, set_only_once, [ENOENT], [];
            /// Switches the bus's replier bind events; switching on sends the caller an event per existing replier. Returns the previous value.
            13 => SetReplierBindEvents(bool) -> bool, endpoint, set_replier_bind_events, [ENOENT, EBUSY], [privileged];
            /// Sets the bus's maximum message size (name plus data bytes); returns the previous value.
            14 => SetMaxMessageSize(u32) -> u32, bus, set_max_message_size, [ENOENT, EINVAL], [privileged];
            /// The endpoint that would receive a request sent to this name now.
            15 => FindReplier(std::sync::Arc<str>) -> Option<$crate::EndpointId>, bus, find_replier, [ENOENT, EBADMSG, ENAMETOOLONG], [];
            /// Statistics of one endpoint.
            16 => EndpointStats(()) -> $crate::EndpointStats, endpoint, endpoint_stats, [ENOENT], [];
            /// Statistics of the bus and all its endpoints.
            17 => BusStats(()) -> $crate::BusStats, bus, bus_stats, [ENOENT], [];
            /// Takes up to this many queued messages at once (at least 1), in queue order, stopping after 64 MiB of data.
            18 => RecvBatch(u32) -> Vec<$crate::Message>, endpoint, recv_batch, [ENOENT, EINVAL], [can_wait, takes_messages];
            /// Sends several messages in order, as if by one `Send` each; one result per message.
            19 => SendBatch(Vec<$crate::SendArgs>) -> Vec<$crate::SendResult>, endpoint, send_batch, [ENOENT], [sends_messages];
            /// Makes this endpoint a monitor: it gets a copy of every message the bus queues for anyone (synthetic ones included). Returns the previous value.
            20 => SetMonitor(bool) -> bool, endpoint, set_monitor, [ENOENT], [privileged];
            /// Creates a node owned by this endpoint; returns our (pinned) handle to it.
            21 => CreateNode(()) -> $crate::HandleId, endpoint, create_node, [ENOENT, EDQUOT], [];
            /// Drops one reference to one of our handles (`EBUSY` for the owner's last one while the node lives).
            22 => ReleaseHandle($crate::HandleId) -> (), endpoint, release_handle, [ENOENT, EBUSY], [];
            /// Destroys some of our nodes, atomically; every holder is told.
            23 => DestroyNodes(Vec<$crate::HandleId>) -> (), endpoint, destroy_nodes, [ENOENT, EPERM, EINVAL], [];
            /// Sets the bus's quota per receiving user; returns the previous one.
            24 => SetQuota($crate::Quota) -> $crate::Quota, bus, set_quota, [ENOENT], [privileged];
            /// The bus's quota and what each user has charged.
            25 => QuotaStats(()) -> $crate::QuotaStats, bus, quota_stats, [ENOENT], [];
            /// Switches this endpoint to KBUS's observable rules (see `docs/kbus.md`): its sends that fail after validation still take a serial, its messages are measured in KBUS's entire form, its requests reach the most recently bound of equal wildcard repliers. Returns the previous value.
            26 => SetKbusCompat(bool) -> bool, endpoint, set_kbus_compat, [ENOENT], [];
            /// The bus's bindings made after binding `after` (0: from the first), oldest first, at most `LIST_BINDINGS_PAGE` of them, with their endpoints' owners; fewer means the end.
            27 => ListBindings(u64) -> Vec<$crate::BindingInfo>, bus, list_bindings, [ENOENT], [];
            /// The bus's settings, and how many buses the kernel has: cheap (no per-endpoint data), so a client can ask before each large write.
            28 => BusInfo(()) -> $crate::BusInfo, bus, bus_info, [ENOENT], [];
            /// The replier bound to exactly this pattern string (no wildcard resolution: KBUS's `REPLIER` query).
            29 => PatternReplier(std::sync::Arc<str>) -> Option<$crate::EndpointId>, bus, pattern_replier, [ENOENT, EBADMSG, ENAMETOOLONG], [];
        }
    };
}

/// Arguments of `Bind` and `Unbind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindArgs {
    /// The name or pattern.
    pub name: std::sync::Arc<str>,
    /// Replier (true) or listener (false).
    pub replier: bool,
}

/// Arguments of `Send`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendArgs {
    /// The message.
    pub message: Outgoing,
    /// For `ALL_OR_WAIT`: give up (outcome `ETIMEDOUT`) if still pending at this time.
    pub deadline: Option<Nanos>,
}

/// The result of one send in a `SendBatch`.
pub type SendResult = Result<MessageId, Errno>;

/// How a pending (`ALL_OR_WAIT`) send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendOutcome {
    /// The id the message was given when it went pending.
    pub id: MessageId,
    /// `Ok` if it was delivered, else why not.
    pub result: Result<(), Errno>,
}

macro_rules! define_ops {
    ($( $(#[$doc:meta])* $code:literal => $name:ident($args:ty) -> $reply:ty, $scope:ident, $method:ident, [$($err:ident),*], [$($prop:ident),*]; )*) => {
        /// Stable operation codes (used on the wire).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum OpCode {
            $( $(#[$doc])* $name = $code, )*
        }

        /// Who an operation acts on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Scope {
            /// The whole kernel.
            Kernel,
            /// One bus.
            Bus,
            /// One endpoint.
            Endpoint,
        }

        impl OpCode {
            /// Every operation, in code order.
            pub const ALL: &'static [OpCode] = &[ $( OpCode::$name, )* ];

            /// The code for a number.
            pub fn from_u16(n: u16) -> Option<Self> {
                match n { $( $code => Some(OpCode::$name), )* _ => None }
            }
            /// The operation's name.
            pub fn name(self) -> &'static str {
                match self { $( OpCode::$name => stringify!($name), )* }
            }
            /// What the operation acts on.
            pub fn scope(self) -> Scope {
                match self { $( OpCode::$name => define_ops!(@scope $scope), )* }
            }
            /// The errors the kernel may return for it. Transports add their own:
            /// `ESHUTDOWN`, `EPROTO`, `ECONNRESET`, and the daemon's `EPERM`
            /// (privilege, ownership), `EMFILE` and `ENOBUFS` (its limits).
            pub fn errors(self) -> &'static [Errno] {
                match self { $( OpCode::$name => &[$(Errno::$err),*], )* }
            }
            fn properties(self) -> u8 {
                match self { $( OpCode::$name => 0 $(| property::$prop)*, )* }
            }
            /// A bus-wide power (quota, maximum message size, bind-event
            /// switch, creating buses, monitoring): the daemon allows it only
            /// to privileged clients (`EPERM` otherwise).
            pub fn is_privileged(self) -> bool {
                self.properties() & property::privileged != 0
            }
            /// Can it wait (be parked until it finds something)?
            pub fn can_wait(self) -> bool {
                self.properties() & property::can_wait != 0
            }
            /// Do its arguments carry messages (and so maybe fds)?
            pub fn sends_messages(self) -> bool {
                self.properties() & property::sends_messages != 0
            }
            /// Does its result carry messages (and so maybe fds)?
            pub fn takes_messages(self) -> bool {
                self.properties() & property::takes_messages != 0
            }
        }

        /// An operation with its arguments.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Request {
            $( $(#[$doc])* $name($args), )*
        }

        /// An operation's successful result.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Response {
            $( $(#[$doc])* $name($reply), )*
        }

        impl Request {
            /// The operation code.
            pub fn code(&self) -> OpCode {
                match self { $( Request::$name(_) => OpCode::$name, )* }
            }
        }

        impl Response {
            /// The operation code this is a result of.
            pub fn code(&self) -> OpCode {
                match self { $( Response::$name(_) => OpCode::$name, )* }
            }
        }

        /// Typed calls derived from the table. Implement [`Operations::call`]
        /// (one untyped entry point: in-process, over a socket, ...) and get a
        /// typed method per operation. A response of the wrong kind is `EPROTO`.
        pub trait Operations {
            /// Performs one operation for `endpoint` on `bus`.
            fn call(&mut self, bus: BusId, endpoint: EndpointId, request: Request) -> Result<Response, Errno>;

            $(
                $(#[$doc])*
                fn $method(&mut self, bus: BusId, endpoint: EndpointId, args: $args) -> Result<$reply, Errno> {
                    match self.call(bus, endpoint, Request::$name(args))? {
                        Response::$name(r) => Ok(r),
                        _ => Err(Errno::EPROTO),
                    }
                }
            )*
        }
    };
    (@scope kernel) => { Scope::Kernel };
    (@scope bus) => { Scope::Bus };
    (@scope endpoint) => { Scope::Endpoint };
}

/// The properties an operation can have in the table (bits).
#[allow(non_upper_case_globals)]
mod property {
    pub const privileged: u8 = 1;
    pub const can_wait: u8 = 2;
    pub const sends_messages: u8 = 4;
    pub const takes_messages: u8 = 8;
}

operation_table!(define_ops);

// The types named in the table, re-checked here so the table cannot refer to
// something that does not exist.
const _: fn(BusStats, EndpointStats, Message, Credentials) = |_, _, _, _| {};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &op in OpCode::ALL {
            assert!(seen.insert(op as u16));
            assert_eq!(OpCode::from_u16(op as u16), Some(op));
            assert!(!op.name().is_empty());
        }
        assert_eq!(OpCode::from_u16(0), None);
        assert_eq!(OpCode::Send.scope(), Scope::Endpoint);
        assert!(OpCode::Send.errors().contains(&Errno::ENOLCK));
        assert!(OpCode::SetQuota.is_privileged() && !OpCode::Send.is_privileged());
        assert!(OpCode::Recv.can_wait() && !OpCode::Send.can_wait());
        assert!(OpCode::SendBatch.sends_messages() && OpCode::RecvBatch.takes_messages());
    }
}
