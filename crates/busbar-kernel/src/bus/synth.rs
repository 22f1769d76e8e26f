//! Messages the bus itself originates (replies such as `GoneAway`, node
//! notices, bind events): bus credentials, a fresh serial, `SYNTHETIC`, never
//! charged to a quota. A synthetic reply is queued only while its requester
//! still awaits the request, in the slot the request reserved, so it always
//! fits. synthetic_reply: O(monitors).

use std::sync::Arc;

use bytes::Bytes;

use crate::{Credentials, EndpointId, Flags, Header, Host, Level, Message, MessageId};

use super::Bus;

fn bus_creds() -> Credentials {
    Credentials::default()
}

impl Bus {
    pub(super) fn synthetic_message(&mut self, name: &str, data: Bytes, flags: Flags) -> Message {
        self.synthetic(
            name,
            data,
            flags,
            MessageId::NONE,
            EndpointId::BUS,
            EndpointId::BUS,
        )
    }

    pub(super) fn synthetic(
        &mut self,
        name: &str,
        data: Bytes,
        flags: Flags,
        in_reply_to: MessageId,
        to: EndpointId,
        from: EndpointId,
    ) -> Message {
        self.counters.synthetic(name);
        let header = Header {
            id: self.fresh_id(),
            in_reply_to,
            to,
            from,
            orig_from: Default::default(),
            final_to: Default::default(),
            name: Arc::from(name),
            data,
            creds: bus_creds(),
            fds: None,
        };
        Message::new(header, flags.with(Flags::SYNTHETIC))
    }

    /// Queues a synthetic reply for `requester`'s request, using the slot the
    /// request reserved. Does nothing if the requester no longer awaits it.
    pub(super) fn synthetic_reply<H: Host>(
        &mut self,
        host: &mut H,
        name: &'static str,
        from: EndpointId,
        requester: EndpointId,
        request: MessageId,
    ) {
        let Some(r) = self.endpoints.get_mut(&requester) else {
            return;
        };
        if !r.outstanding.remove(&request) {
            return;
        }
        let msg = self.synthetic(name, Bytes::new(), Flags::empty(), request, requester, from);
        self.copy_to_monitors(host, &msg);
        host.log(
            Level::Debug,
            format_args!(
                "bus {} {name} to endpoint {requester} for request {request}",
                self.id
            ),
        );
        self.push(host, requester, msg, None, false);
    }
}
