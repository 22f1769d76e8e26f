//! Local announcements out to Zenoh.
//!
//! The tap listens to the bridged names (only once, so one copy per
//! message) and puts every announcement *sent on this bus* (id network 0)
//! under its name's key, with congestion control `Block`: Zenoh waits
//! instead of dropping. Requests and replies cross through the request
//! path instead; messages forwarded by a bridge (non-zero network) are not
//! sent back out (that is what keeps bridged topologies loop-free); bus
//! messages (`$.KBUS.*`) stay on their bus.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use busbar::{Message, MessageId, OrigFrom};
use zenoh::Wait;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;

use crate::bridge::Bridge;
use crate::counters::{Counters, worth_logging};
use crate::envelope::Kind;

/// Runs the tap until the bus connection fails.
pub fn run(bridge: Arc<Bridge>) -> String {
    let mut seq = 0u64;
    let mut publishers = Publishers::default();
    loop {
        let batch = match bridge.next_batch(&bridge.tap, "tap") {
            Ok(b) => b,
            Err(why) => return why,
        };
        for m in batch {
            if m.lost > 0 {
                let n = bridge
                    .counters
                    .lost_local
                    .fetch_add(u64::from(m.lost), Ordering::Relaxed);
                if worth_logging(n + 1) {
                    tracing::warn!(
                        lost = m.lost,
                        "the bridge's queue was full: {} local message(s) did not cross ({})",
                        m.lost,
                        bridge.counters
                    );
                }
            }
            if m.id.network != 0 || m.is_request() || m.is_reply() || m.name.starts_with("$.KBUS.")
            {
                continue;
            }
            if !m.fds().is_empty() || !m.handles.is_empty() {
                let n = Counters::bump(&bridge.counters.not_bridgeable);
                if worth_logging(n) {
                    tracing::warn!(name = %m.name, "a message carrying fds or handles cannot cross machines; not bridged");
                }
                continue;
            }
            seq += 1;
            publish(&bridge, &mut publishers, m, seq);
        }
    }
}

/// Declared publishers by name (a put through one skips resolving the key
/// each time); at most [`Publishers::MAX`], then they start again.
#[derive(Default)]
struct Publishers {
    by_name: HashMap<Arc<str>, Publisher<'static>>,
}

impl Publishers {
    const MAX: usize = 1024;

    fn get(&mut self, bridge: &Bridge, name: &Arc<str>) -> Option<&Publisher<'static>> {
        if !self.by_name.contains_key(name) {
            if self.by_name.len() >= Self::MAX {
                self.by_name.clear();
            }
            let p = bridge
                .session
                .declare_publisher(bridge.settings.keys.name(name))
                .congestion_control(CongestionControl::Block)
                .wait();
            match p {
                Ok(p) => {
                    self.by_name.insert(name.clone(), p);
                }
                Err(e) => {
                    tracing::warn!(%name, "cannot declare a Zenoh publisher: {e}");
                    return None;
                }
            }
        }
        self.by_name.get(name)
    }
}

fn publish(bridge: &Bridge, publishers: &mut Publishers, m: Message, seq: u64) {
    let Some(publisher) = publishers.get(bridge, &m.name) else {
        return;
    };
    let env = bridge.envelope(Kind::Announcement, seq, m);
    match publisher.put(env.encode()).wait() {
        Ok(()) => {
            Counters::bump(&bridge.counters.published);
        }
        Err(e) => tracing::warn!("cannot put an announcement on Zenoh: {e}"),
    }
}

/// Marks a local message as coming from network `network`: its id gets
/// the network (so `(network, serial)` is unique across machines) and
/// `orig_from` names its sender, unless a bridge did so already.
pub fn stamp(m: &mut Message, network: u32) {
    let mut h = m.header().clone();
    if h.id.network == 0 {
        h.id = MessageId {
            network,
            serial: h.id.serial,
        };
    }
    if h.orig_from.network == 0 {
        h.orig_from = OrigFrom {
            network,
            local: h.from.0,
        };
    }
    let mut stamped = Message::new(h, m.flags);
    stamped.lost = 0;
    *m = stamped;
}
