//! Requests across machines, and the reply guarantee.
//!
//! **Out** (this bus's requester, another machine's replier): the proxy is
//! bound as replier for the remote pattern, so the bus hands it the
//! request. The proxy sends it with a Zenoh `get` to the serving bridge's
//! queryable and waits, without a thread, in the get's callback. The first
//! reply is sent to the requester as the proxy's reply, keeping the remote
//! reply's id, name, flags (`SYNTHETIC` included) and `orig_from`. If the
//! get ends without one (the deadline passed, the remote bridge or the
//! link went away), the callback's [`Answer`] is dropped unanswered and
//! sends `$.KBUS.Replier.Disappeared` instead. Either way the requester
//! gets exactly one reply.
//!
//! **In** (another machine's requester, this bus's replier): the queryable
//! sends the request from the forwarder endpoint with its forwarded id, and
//! keeps the query until the forwarder gets the reply, which the bus always
//! produces (the real one, or `GoneAway`/`Ignored`/`Unbound`). A request
//! the bus refuses at once is answered right away: `GoneAway` when no
//! replier is bound any more, `$.KBUS.RemoteError.<ERRNO>` otherwise.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use busbar::{Bytes, EndpointId, Errno, Flags, Header, Message, MessageId, Outgoing, synthetic};
use zenoh::Wait;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Reply};

use crate::bridge::{Bridge, Held, lock};
use crate::counters::Counters;
use crate::envelope::{Envelope, Kind, passed_on};
use crate::inject::bad_input;

/// Runs the proxy until the bus connection fails: every request the bus
/// gives it goes to the machine of its replier.
pub fn run_proxy(bridge: Arc<Bridge>) -> String {
    loop {
        let batch = match bridge.next_batch(&bridge.proxy, "proxy") {
            Ok(b) => b,
            Err(why) => return why,
        };
        for m in batch {
            if m.wants_us_to_reply() {
                send_out(&bridge, m);
            }
        }
    }
}

/// The obligation to answer one local request. Dropped unanswered (the get
/// ended without a usable reply), it answers `Disappeared`.
#[derive(Debug)]
pub struct Answer {
    bridge: Arc<Bridge>,
    request: Message,
    answered: bool,
}

impl Answer {
    fn reply_with(&mut self, reply: &Message) {
        let out = Outgoing {
            name: reply.name.clone(),
            data: reply.data.clone(),
            flags: passed_on(reply.flags, true).without(Flags::WANT_A_REPLY),
            to: self.request.from,
            in_reply_to: self.request.id,
            id: reply.id,
            orig_from: reply.orig_from,
            final_to: reply.final_to,
            caps: None,
        };
        self.answered = true;
        match self.bridge.proxy.send(out) {
            Ok(_) => {
                Counters::bump(&self.bridge.counters.replies_in);
            }
            // The requester closed meanwhile: the bus owes it nothing.
            Err(e @ (Errno::EADDRNOTAVAIL | Errno::ECONNREFUSED)) => {
                tracing::debug!("cannot give a remote reply to its requester: {e}");
            }
            // This bus refuses the reply (larger than its maximum message
            // size, ...): the requester still gets one, saying so.
            Err(e) if !reply.name.starts_with("$.KBUS.RemoteError.") => {
                tracing::warn!(name = %reply.name, "this bus refused a remote reply: {e}");
                self.fail(e);
            }
            Err(e) => tracing::warn!("cannot answer a request: {e}"),
        }
    }

    /// Answers `$.KBUS.RemoteError.<ERRNO>`.
    fn fail(&mut self, e: Errno) {
        let reply = bridge_reply(
            &self.bridge,
            &remote_error(e),
            self.request.id,
            self.request.from,
            self.bridge.synthetic_id(),
        );
        Counters::bump(&self.bridge.counters.synthetic_replies);
        self.reply_with(&reply);
    }

    fn disappeared(&mut self) {
        let reply = bridge_reply(
            &self.bridge,
            synthetic::DISAPPEARED,
            self.request.id,
            self.request.from,
            self.bridge.synthetic_id(),
        );
        Counters::bump(&self.bridge.counters.synthetic_replies);
        self.reply_with(&reply);
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.answered {
            self.disappeared();
        }
    }
}

fn send_out(bridge: &Arc<Bridge>, m: Message) {
    let network = bridge.settings.network;
    let target = if m.final_to.network != 0 && m.final_to.network != network {
        Some(m.final_to.network)
    } else {
        bridge.remote_replier(&m.name)
    };
    let mut answer = Answer {
        bridge: bridge.clone(),
        request: m.clone(),
        answered: false,
    };
    if m.header().fds.is_some() || !m.handles.is_empty() {
        // File descriptors and handles do not cross machines.
        return answer.fail(Errno::EOPNOTSUPP);
    }
    if m.id.network != 0 {
        // Sent here by another bridge for a replier that has gone from this
        // bus: never passed on again (no request travels in circles).
        let reply = bridge_reply(
            bridge,
            synthetic::GONE_AWAY,
            m.id,
            m.from,
            bridge.synthetic_id(),
        );
        Counters::bump(&bridge.counters.synthetic_replies);
        return answer.reply_with(&reply);
    }
    let Some(target) = target else {
        // The remote replier went between the bus's choice and now: the
        // answer, dropped, says Disappeared.
        return;
    };
    let env = bridge.envelope(Kind::Request, 0, m);
    let key = bridge.settings.keys.request(target, &env.message.name);
    let slot = Mutex::new(Some(answer));
    let expected = env.message.id;
    let callback = move |reply: Reply| {
        let Ok(sample) = reply.into_result() else {
            return;
        };
        let bytes = Bytes::from(sample.payload().to_bytes().into_owned());
        let mut slot = lock(&slot);
        let Some(answer) = slot.as_mut() else {
            return;
        };
        match Envelope::decode(bytes) {
            Ok(e) if e.kind == Kind::Reply && e.message.in_reply_to == expected => {
                answer.reply_with(&e.message);
                *slot = None;
            }
            Ok(_) => bad_input(&answer.bridge, sample.key_expr().as_str(), "not our reply"),
            Err(why) => bad_input(&answer.bridge, sample.key_expr().as_str(), why),
        }
    };
    Counters::bump(&bridge.counters.requests_out);
    let sent = bridge
        .session
        .get(key)
        .payload(env.encode())
        .target(QueryTarget::All)
        .consolidation(ConsolidationMode::None)
        .timeout(bridge.settings.deadline)
        .callback(callback)
        .wait();
    if let Err(e) = sent {
        // The callback (and its Answer) is dropped: Disappeared.
        tracing::warn!("cannot send a request over Zenoh: {e}");
    }
}

fn empty_header() -> Header {
    Header {
        id: MessageId::NONE,
        in_reply_to: MessageId::NONE,
        to: EndpointId::BUS,
        from: EndpointId::BUS,
        orig_from: Default::default(),
        final_to: Default::default(),
        name: "$.x".into(),
        data: Bytes::new(),
        creds: Default::default(),
        fds: None,
    }
}

/// A reply this bridge makes up, answering `in_reply_to` for `to`:
/// `SYNTHETIC`, no data.
fn bridge_reply(
    bridge: &Bridge,
    name: &str,
    in_reply_to: MessageId,
    to: EndpointId,
    id: MessageId,
) -> Message {
    let mut h = empty_header();
    h.id = id;
    h.in_reply_to = in_reply_to;
    h.to = to;
    h.name = name.into();
    h.orig_from = busbar::OrigFrom {
        network: bridge.settings.network,
        local: 0,
    };
    Message::new(h, Flags::SYNTHETIC)
}

/// Serves one query from another bridge: a request for a local replier.
pub fn serve(bridge: &Arc<Bridge>, query: Query) {
    let key = query.key_expr().as_str().to_owned();
    let Some(payload) = query.payload() else {
        return bad_input(bridge, &key, "a query without a payload");
    };
    let bytes = Bytes::from(payload.to_bytes().into_owned());
    let env = match Envelope::decode(bytes) {
        Ok(e) if e.kind == Kind::Request => e,
        Ok(_) => return bad_input(bridge, &key, "not a request"),
        Err(why) => return bad_input(bridge, &key, why),
    };
    let network = bridge.settings.network;
    let name_ok = bridge
        .settings
        .keys
        .name_of_request(network, &key)
        .is_some_and(|n| *n == *env.message.name);
    if !name_ok {
        return bad_input(bridge, &key, "the key is not the request's name");
    }
    if env.origin == network {
        return bad_input(
            bridge,
            &key,
            "our own network id (is another bridge using it?)",
        );
    }
    env.trace_arrival();
    let m = env.message;
    if !bridge.crosses(&m.name) {
        return answer_now(bridge, query, m.id, remote_error(Errno::EADDRNOTAVAIL));
    }
    // A stateful request for a replier here names it in final_to.
    let to = if m.final_to.network == network {
        EndpointId(m.final_to.local)
    } else {
        EndpointId::BUS
    };
    let out = Outgoing {
        name: m.name.clone(),
        data: m.data.clone(),
        flags: passed_on(m.flags, false).with(Flags::WANT_A_REPLY),
        to,
        id: m.id,
        orig_from: m.orig_from,
        final_to: m.final_to,
        ..Default::default()
    };
    // Held before it is sent: the reply may come at once.
    lock(&bridge.held).insert(
        m.id,
        Held {
            query,
            since: Instant::now(),
        },
    );
    Counters::bump(&bridge.counters.requests_in);
    if let Err(e) = bridge.forwarder.send(out)
        && let Some(held) = lock(&bridge.held).remove(&m.id)
    {
        let name = if matches!(e, Errno::EADDRNOTAVAIL | Errno::EPIPE) {
            synthetic::GONE_AWAY.to_owned()
        } else {
            remote_error(e)
        };
        answer_now(bridge, held.query, m.id, name);
    }
}

/// `$.KBUS.RemoteError.<ERRNO>`: what KBUS's Limpets answered when the far
/// bus refused a forwarded request.
fn remote_error(e: Errno) -> String {
    format!("$.KBUS.RemoteError.{}", e.name())
}

/// Answers a remote request at once, with a reply this bridge makes up.
fn answer_now(bridge: &Bridge, query: Query, request: MessageId, name: String) {
    let reply = bridge_reply(
        bridge,
        &name,
        request,
        EndpointId::BUS,
        bridge.synthetic_id(),
    );
    Counters::bump(&bridge.counters.synthetic_replies);
    reply_to_query(bridge, &query, reply);
}

fn reply_to_query(bridge: &Bridge, query: &Query, reply: Message) {
    let env = bridge.envelope(Kind::Reply, 0, reply);
    if let Err(e) = query.reply(query.key_expr().clone(), env.encode()).wait() {
        tracing::debug!("cannot answer a remote request (its requester's bridge went?): {e}");
    }
}

/// Runs the forwarder until the bus connection fails: every reply it gets
/// answers the query that brought its request.
pub fn run_forwarder(bridge: Arc<Bridge>) -> String {
    loop {
        let batch = match bridge.next_batch(&bridge.forwarder, "forwarder") {
            Ok(b) => b,
            Err(why) => return why,
        };
        for m in batch {
            if !m.is_reply() {
                continue;
            }
            let Some(held) = lock(&bridge.held).remove(&m.in_reply_to) else {
                // Swept: its requester's bridge answered Disappeared.
                tracing::debug!(id = %m.in_reply_to, "a reply for a request no longer held");
                continue;
            };
            Counters::bump(&bridge.counters.replies_out);
            if m.header().fds.is_some() || !m.handles.is_empty() {
                // File descriptors and handles do not cross machines.
                answer_now(
                    &bridge,
                    held.query,
                    m.in_reply_to,
                    remote_error(Errno::EOPNOTSUPP),
                );
                continue;
            }
            reply_to_query(&bridge, &held.query, m);
        }
    }
}

/// Drops the held requests older than the deadline: their requesters'
/// bridges have answered `Disappeared` already.
pub fn sweep(bridge: &Bridge) {
    let limit = bridge.settings.deadline * 2;
    lock(&bridge.held).retain(|_, h| h.since.elapsed() < limit);
}
