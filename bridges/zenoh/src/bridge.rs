//! One bridge: a bus of the local daemon joined to a Zenoh session.
//!
//! The bridge opens three endpoints on its bus:
//!
//! - the *tap* listens to what listeners on other machines want, within
//!   the bridged names (one copy per message), and puts local
//!   announcements on Zenoh ([`crate::tap`]): a message nobody elsewhere
//!   listens to never reaches the bridge;
//! - the *proxy* is bound as replier for the names whose replier is on
//!   another machine, passes the requests it gets on with a Zenoh `get`, and
//!   sends remote announcements and replies on the local bus
//!   ([`crate::inject`], [`crate::requests`]);
//! - the *forwarder* sends requests from other machines to local repliers
//!   and takes their replies ([`crate::requests`]).
//!
//! A control thread ([`crate::control`]) keeps the Zenoh side in step with
//! the bus's bindings: subscriptions and liveliness tokens for local
//! listeners, tokens for local repliers, tap bindings for remote listeners,
//! proxy bindings for remote repliers.
//!
//! Loops cannot form: a bridge puts on Zenoh only what was sent on its own
//! bus (id network 0) and gives every message it passes on a non-zero
//! network. Zenoh delivers each sample once per subscriber, and a bridge
//! drops what overlapping subscriptions deliver twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use busbar::{Bus, Endpoint, EndpointId, Errno, Message, MessageId, name::pattern_matches};
use zenoh::Session;
use zenoh::key_expr::KeyExpr;
use zenoh::query::Query;

use crate::counters::Counters;
use crate::envelope::{Envelope, Kind};
use crate::keys::Keys;

/// Settings a bridge runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This bridge's network id (non-zero).
    pub network: u32,
    /// The namespace's keys.
    pub keys: Keys,
    /// The patterns whose names cross.
    pub names: Vec<String>,
    /// How long a remote request may take.
    pub deadline: std::time::Duration,
    /// How often the bindings are looked at.
    pub rescan: std::time::Duration,
}

/// A request from another machine that a local replier holds.
#[derive(Debug)]
pub struct Held {
    /// The Zenoh query to answer.
    pub query: Query,
    /// When it arrived (entries older than the deadline are dropped).
    pub since: Instant,
}

/// Patterns other bridges advertise: pattern → their network ids.
pub type RemotePatterns = BTreeMap<String, BTreeSet<u32>>;

/// The bridge's shared state.
#[derive(Debug)]
pub struct Bridge {
    /// Settings.
    pub settings: Settings,
    /// The Zenoh session.
    pub session: Session,
    /// The local bus.
    pub bus: Bus,
    /// Listens to local traffic.
    pub tap: Endpoint,
    /// Replier for remote repliers' names; sends what comes from Zenoh.
    pub proxy: Endpoint,
    /// Sends remote requests to local repliers.
    pub forwarder: Endpoint,
    /// Counters.
    pub counters: Counters,
    /// This run of the bridge (random).
    pub instance: u64,
    /// Remote repliers, from liveliness tokens.
    pub remote: Mutex<RemotePatterns>,
    /// Remote listeners, from liveliness tokens: what the tap listens to.
    pub remote_listeners: Mutex<RemotePatterns>,
    /// Remote requests held by local repliers, by their (forwarded) id.
    pub held: Mutex<HashMap<MessageId, Held>>,
    /// Set when the control thread should look again now.
    pub changed: (Mutex<bool>, Condvar),
    next_synthetic: AtomicU32,
}

/// Locks, ignoring poisoning (the data stays consistent: every critical
/// section is a single map operation).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bridge {
    /// Opens the bridge's endpoints on `bus` and checks that the connection
    /// may forward ids.
    pub fn new(settings: Settings, session: Session, bus: Bus) -> Result<Self, String> {
        let open = |what: &str| {
            bus.open()
                .map_err(|e| format!("cannot open the {what} endpoint on the bus: {e}"))
        };
        let tap = open("tap")?;
        let proxy = open("proxy")?;
        let forwarder = open("forwarder")?;
        match tap.set_monitor(false) {
            Ok(_) => {}
            Err(Errno::EPERM) => {
                return Err(
                    "the daemon does not let this user forward message ids: run \
                            busbar-zenoh as the daemon's user or root, or add its uid to \
                            privileged_uids in the daemon's config"
                        .into(),
                );
            }
            Err(e) => return Err(format!("cannot check privilege with the daemon: {e}")),
        }
        // Room for bursts: the bus drops a listener's copies when its
        // queue is full (counted as lost_local), and each forwarded request
        // needs a reply slot.
        for (ep, limit) in [(&tap, 65_536), (&proxy, 65_536), (&forwarder, 65_536)] {
            ep.set_queue_limit(limit)
                .map_err(|e| format!("cannot set the bridge's queue limit: {e}"))?;
        }
        // The tap's bindings follow what other bridges' listeners want (see
        // `control`); one copy per message however many of them match.
        tap.set_only_once(true)
            .map_err(|e| format!("cannot set only-once on the tap: {e}"))?;
        Ok(Self {
            settings,
            session,
            bus,
            tap,
            proxy,
            forwarder,
            counters: Counters::default(),
            instance: random_u64(),
            remote: Mutex::new(RemotePatterns::new()),
            remote_listeners: Mutex::new(RemotePatterns::new()),
            held: Mutex::new(HashMap::new()),
            changed: (Mutex::new(false), Condvar::new()),
            next_synthetic: AtomicU32::new(1),
        })
    }

    /// `message`, taken from this bus, as this bridge puts it on Zenoh:
    /// stamped with our network ([`crate::tap::stamp`]), in an envelope of
    /// `kind` (`seq`: the announcement counter, 0 otherwise).
    pub fn envelope(&self, kind: Kind, seq: u64, message: Message) -> Envelope {
        let mut message = message;
        crate::tap::stamp(&mut message, self.settings.network);
        Envelope {
            kind,
            origin: self.settings.network,
            instance: self.instance,
            seq,
            message,
        }
    }

    /// The next messages on one of the bridge's endpoints (waiting for
    /// them); the error says the bridge lost the bus (`who` names the
    /// endpoint's role).
    pub fn next_batch(&self, endpoint: &Endpoint, who: &str) -> Result<Vec<Message>, String> {
        endpoint
            .recv_batch_timeout(64, None)
            .map_err(|e| format!("the {who} lost the bus: {e}"))
    }

    /// The bridge's own endpoints (their bindings are not the bus's users').
    pub fn is_own(&self, ep: EndpointId) -> bool {
        ep == self.tap.id() || ep == self.proxy.id() || ep == self.forwarder.id()
    }

    /// Does `name` cross this bridge?
    pub fn crosses(&self, name: &str) -> bool {
        self.settings.names.iter().any(|p| pattern_matches(p, name))
    }

    /// Could names matching `pattern` cross this bridge? (Their key
    /// expressions intersect one of `--names`'.)
    pub fn in_scope(&self, pattern: &str) -> bool {
        let keys = &self.settings.keys;
        let Ok(k) = KeyExpr::try_from(keys.pattern(pattern)) else {
            return false;
        };
        self.settings.names.iter().any(|n| {
            KeyExpr::try_from(keys.pattern(n))
                .map(|nk| nk.intersects(&k))
                .unwrap_or(false)
        })
    }

    /// Wakes the control thread.
    pub fn poke(&self) {
        *lock(&self.changed.0) = true;
        self.changed.1.notify_one();
    }

    /// The id of a reply this bridge makes up: its own network, its own
    /// counter (it keeps `SYNTHETIC` on the local bus).
    pub fn synthetic_id(&self) -> MessageId {
        let mut serial = self.next_synthetic.fetch_add(1, Ordering::Relaxed);
        if serial == 0 {
            serial = self.next_synthetic.fetch_add(1, Ordering::Relaxed);
        }
        MessageId {
            network: self.settings.network,
            serial,
        }
    }

    /// The remote network serving a request for `name`: the one whose
    /// pattern the bus would choose (exact, then `%`, then the longest
    /// `*`), the lowest id if two advertise the same pattern.
    pub fn remote_replier(&self, name: &str) -> Option<u32> {
        let remote = lock(&self.remote);
        remote
            .iter()
            .filter(|(p, nets)| {
                pattern_matches(p, name) && nets.iter().any(|&n| n != self.settings.network)
            })
            .min_by_key(|(p, _)| precedence(p))
            .and_then(|(_, nets)| nets.iter().copied().find(|&n| n != self.settings.network))
    }
}

/// Sort key of a matching replier pattern: lower wins (exact, then `%`,
/// then `*` with the longest prefix).
pub fn precedence(pattern: &str) -> (u8, usize) {
    if let Some(prefix) = pattern.strip_suffix(".%") {
        (1, usize::MAX - prefix.len())
    } else if let Some(prefix) = pattern.strip_suffix(".*") {
        (2, usize::MAX - prefix.len())
    } else {
        (0, 0)
    }
}

/// A random 64-bit value (from the kernel, via the std hasher's keys).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::precedence;

    #[test]
    fn precedence_is_the_bus_rule() {
        let mut ps = vec!["$.a.*", "$.*", "$.a.b.%", "$.a.b.c", "$.a.b.*"];
        ps.sort_by_key(|p| precedence(p));
        assert_eq!(ps, ["$.a.b.c", "$.a.b.%", "$.a.b.*", "$.a.*", "$.*"]);
    }
}
