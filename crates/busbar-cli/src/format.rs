//! How messages and stats are printed: one line of text, or one JSON object
//! per line.

use busbar::{BindingInfo, BusStats, Message, QuotaStats};
use serde_json::{Value, json};

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// A message as one JSON object.
pub fn message_json(m: &Message) -> Value {
    let mut v = json!({
        "id": [m.id.network, m.id.serial],
        "name": &*m.name,
        "from": m.from.0,
        "to": m.to.0,
        "in_reply_to": [m.in_reply_to.network, m.in_reply_to.serial],
        "orig_from": [m.orig_from.network, m.orig_from.local],
        "final_to": [m.final_to.network, m.final_to.local],
        "flags": m.flags.0,
        "flag_names": m.flags.names(),
        "lost": m.lost,
        "pid": m.creds.pid,
        "uid": m.creds.uid,
        "gid": m.creds.gid,
    });
    match std::str::from_utf8(&m.data) {
        Ok(s) => v["data"] = json!(s),
        Err(_) => v["data_b64"] = json!(base64(&m.data)),
    }
    if m.destination.is_valid() {
        v["destination"] = json!(m.destination.0);
    }
    if !m.handles.is_empty() {
        v["handles"] = json!(m.handles.iter().map(|h| h.0).collect::<Vec<_>>());
    }
    if let Some(a) = &m.fds {
        v["fds"] = json!(a.count);
    }
    v
}

/// A message as one line of text.
pub fn message_line(m: &Message) -> String {
    let kind = m.kind();
    let data = match std::str::from_utf8(&m.data) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("base64:{}", base64(&m.data)),
    };
    let mut line = format!(
        "{} {} {kind} from={} to={} pid={} data={data}",
        m.id, m.name, m.from, m.to, m.creds.pid
    );
    if m.is_reply() {
        line.push_str(&format!(" in_reply_to={}", m.in_reply_to));
    }
    // From another bus (through a bridge): who sent it there.
    if m.orig_from.network != 0 {
        line.push_str(&format!(
            " orig_from=[{},{}]",
            m.orig_from.network, m.orig_from.local
        ));
    }
    let names = m.flags.names();
    if !names.is_empty() || m.flags.0 & 0xffff_0000 != 0 {
        line.push_str(&format!(" flags={:#x}({})", m.flags.0, names.join("|")));
    }
    if m.lost > 0 {
        line.push_str(&format!(" lost={}", m.lost));
    }
    if m.destination.is_valid() {
        line.push_str(&format!(" destination={}", m.destination));
    }
    if !m.handles.is_empty() {
        let hs: Vec<String> = m.handles.iter().map(ToString::to_string).collect();
        line.push_str(&format!(" handles=[{}]", hs.join(",")));
    }
    if let Some(a) = &m.fds {
        line.push_str(&format!(" fds={}", a.count));
    }
    line
}

/// Bus statistics (with quota use) as JSON.
pub fn stats_json(s: &BusStats, q: &QuotaStats, bindings: &[BindingInfo]) -> Value {
    json!({
        "bus": s.bus.0,
        "endpoints": s.endpoints,
        "bindings": s.bindings,
        "replier_bindings": s.replier_bindings,
        "next_serial": s.next_serial,
        "max_message_size": s.max_message_size,
        "replier_bind_events": s.replier_bind_events,
        "set_aside": s.set_aside,
        "endpoint_stats": s.endpoint_stats.iter().map(|e| json!({
            "id": e.id.0,
            "pid": e.pid,
            "uid": e.uid,
            "queued": e.queued,
            "queue_limit": e.queue_limit,
            "set_aside": e.set_aside,
            "lost": e.lost,
            "sent": e.sent,
            "received": e.received,
            "outstanding_requests": e.outstanding_requests,
            "owed_replies": e.owed_replies,
            "bindings": e.bindings,
            "only_once": e.only_once,
            "pending_send": e.pending_send.map(|id| [id.network, id.serial]),
            "queued_bytes": e.queued_bytes,
            "handles": e.handles,
            "nodes": e.nodes,
            "last_sent": [e.last_sent.network, e.last_sent.serial],
            "kbus_compat": e.kbus_compat,
            "binding_names": bindings.iter().filter(|b| b.endpoint == e.id).map(|b| json!({
                "name": &*b.name,
                "replier": b.replier,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "quota": {
            "messages": q.quota.messages,
            "bytes": q.quota.bytes,
            "handles": q.quota.handles,
            "fds": q.quota.fds,
        },
        "usage": q.users.iter().map(|u| json!({
            "uid": u.uid,
            "sender_uid": u.sender_uid,
            "messages": u.messages,
            "bytes": u.bytes,
            "handles": u.handles,
            "fds": u.fds,
        })).collect::<Vec<_>>(),
    })
}

/// Bus statistics (with quota use) as tables.
pub fn stats_table(s: &BusStats, q: &QuotaStats) -> String {
    let mut out = format!(
        "bus {}: {} endpoints, {} bindings ({} repliers), next serial {}, max message size {}, replier bind events {}, set aside {}\n",
        s.bus,
        s.endpoints,
        s.bindings,
        s.replier_bindings,
        s.next_serial,
        s.max_message_size,
        if s.replier_bind_events { "on" } else { "off" },
        s.set_aside
    );
    out.push_str(&format!(
        "{:>8} {:>8} {:>6} {:>13} {:>10} {:>8} {:>10} {:>10} {:>11} {:>5} {:>8} {:>7} {:>5}\n",
        "endpoint",
        "pid",
        "uid",
        "queued/limit",
        "bytes",
        "lost",
        "sent",
        "received",
        "outstanding",
        "owed",
        "bindings",
        "handles",
        "nodes"
    ));
    for e in &s.endpoint_stats {
        out.push_str(&format!(
            "{:>8} {:>8} {:>6} {:>13} {:>10} {:>8} {:>10} {:>10} {:>11} {:>5} {:>8} {:>7} {:>5}\n",
            e.id.0,
            e.pid,
            e.uid,
            format!("{}/{}", e.queued, e.queue_limit),
            e.queued_bytes,
            e.lost,
            e.sent,
            e.received,
            e.outstanding_requests,
            e.owed_replies,
            e.bindings,
            e.handles,
            e.nodes
        ));
    }
    out.push_str(&format!(
        "quota per (receiving uid, sending uid): {} messages, {} bytes, {} handles, {} fds\n",
        q.quota.messages, q.quota.bytes, q.quota.handles, q.quota.fds
    ));
    if !q.users.is_empty() {
        out.push_str(&format!(
            "{:>8} {:>10} {:>10} {:>12} {:>8} {:>6}\n",
            "uid", "sender_uid", "messages", "bytes", "handles", "fds"
        ));
        for u in &q.users {
            out.push_str(&format!(
                "{:>8} {:>10} {:>10} {:>12} {:>8} {:>6}\n",
                u.uid, u.sender_uid, u.messages, u.bytes, u.handles, u.fds
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
