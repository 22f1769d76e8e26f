//! Remote announcements in from Zenoh.
//!
//! Every subscriber's callback hands its samples, in the order Zenoh calls
//! them, to one channel; one thread checks them and sends them on the local
//! bus from the proxy endpoint, keeping their id, `orig_from` and user
//! flags. A sample two overlapping subscriptions both matched arrives twice
//! in a row: the per-origin counter in the envelope drops the second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use busbar::{Bytes, Outgoing};
use zenoh::sample::Sample;

use crate::bridge::Bridge;
use crate::counters::{Counters, worth_logging};
use crate::envelope::{Envelope, Kind, passed_on};

/// The most origin bridges remembered at once.
pub const MAX_ORIGINS: usize = 4096;

/// The newest announcement seen from each origin bridge's current run.
#[derive(Debug, Default)]
pub struct Seen {
    last: HashMap<u32, (u64, u64)>,
}

impl Seen {
    /// Is this (origin, run, counter) new? Records it if so. A new run of
    /// an origin starts afresh.
    pub fn is_new(&mut self, origin: u32, instance: u64, seq: u64) -> bool {
        // Origins are bridges, a handful; a network sending made-up ones
        // cannot make this grow without bound (forgetting costs at most one
        // duplicate per origin).
        if self.last.len() >= MAX_ORIGINS && !self.last.contains_key(&origin) {
            self.last.clear();
        }
        match self.last.get_mut(&origin) {
            Some((run, last)) if *run == instance => {
                if seq <= *last {
                    return false;
                }
                *last = seq;
                true
            }
            _ => {
                self.last.insert(origin, (instance, seq));
                true
            }
        }
    }
}

/// The most announcements sent on the bus in one operation.
const BATCH: usize = 256;

/// Sends what the subscriptions deliver until the channel closes: what has
/// arrived meanwhile goes in one bus operation (one round trip), in order.
pub fn run(bridge: Arc<Bridge>, samples: Receiver<Sample>) {
    let mut seen = Seen::default();
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = samples.recv() {
        let mut next = Some(first);
        while let Some(sample) = next {
            let key = sample.key_expr().as_str().to_owned();
            let bytes = Bytes::from(sample.payload().to_bytes().into_owned());
            match check(&bridge, &key, bytes) {
                Ok(env) if seen.is_new(env.origin, env.instance, env.seq) => {
                    batch.push(outgoing(env));
                }
                Ok(_) => {
                    Counters::bump(&bridge.counters.duplicates);
                }
                Err(why) => bad_input(&bridge, &key, why),
            }
            next = if batch.len() < BATCH {
                samples.try_recv().ok()
            } else {
                None
            };
        }
        send(&bridge, std::mem::take(&mut batch));
    }
}

/// Counts and (rate-limited) logs a sample or query that was dropped.
pub fn bad_input(bridge: &Bridge, key: &str, why: &str) {
    let n = Counters::bump(&bridge.counters.bad_input);
    if worth_logging(n) {
        tracing::warn!(
            key,
            "dropped bad input from Zenoh: {why} ({n} so far; {})",
            bridge.counters
        );
    }
}

fn check(bridge: &Bridge, key: &str, bytes: Bytes) -> Result<Envelope, &'static str> {
    let env = Envelope::decode(bytes)?;
    if env.kind != Kind::Announcement {
        return Err("not an announcement");
    }
    if env.origin == bridge.settings.network {
        return Err("our own network id (is another bridge using it?)");
    }
    if bridge.settings.keys.name(&env.message.name) != key {
        return Err("the key is not the message's name");
    }
    if !bridge.crosses(&env.message.name) {
        return Err("a name outside --names");
    }
    Ok(env)
}

fn outgoing(env: Envelope) -> Outgoing {
    env.trace_arrival();
    let m = env.message;
    Outgoing {
        name: m.name.clone(),
        data: m.data.clone(),
        flags: passed_on(m.flags, false),
        id: m.id,
        orig_from: m.orig_from,
        final_to: m.final_to,
        ..Default::default()
    }
}

fn send(bridge: &Bridge, batch: Vec<Outgoing>) {
    if batch.is_empty() {
        return;
    }
    let names: Vec<_> = batch.iter().map(|o| o.name.clone()).collect();
    let results = match bridge.proxy.send_batch(batch) {
        Ok(r) => r,
        Err(e) => {
            // The bus connection is gone; the other threads report it.
            tracing::debug!("cannot send remote announcements: {e}");
            return;
        }
    };
    for (r, name) in results.into_iter().zip(names) {
        match r {
            Ok(_) => {
                Counters::bump(&bridge.counters.injected);
            }
            Err(e) => {
                let n = Counters::bump(&bridge.counters.inject_failed);
                if worth_logging(n) {
                    tracing::warn!(%name, "the bus refused a remote announcement: {e} ({n} so far)");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn duplicates_and_new_runs() {
        let mut s = Seen::default();
        assert!(s.is_new(1, 7, 1));
        assert!(!s.is_new(1, 7, 1));
        assert!(s.is_new(1, 7, 2));
        assert!(s.is_new(2, 9, 1));
        assert!(!s.is_new(1, 7, 2));
        assert!(s.is_new(1, 8, 1), "a restarted bridge starts afresh");
        assert!(s.is_new(1, 8, 5));
        assert!(!s.is_new(1, 8, 3));
    }

    #[test]
    fn made_up_origins_are_bounded() {
        let mut s = Seen::default();
        for o in 0..3 * super::MAX_ORIGINS as u32 {
            assert!(s.is_new(o, 1, 1));
            assert!(s.last.len() <= super::MAX_ORIGINS);
        }
    }
}
