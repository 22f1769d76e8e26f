//! Keeps Zenoh in step with the bus's bindings.
//!
//! Every `--rescan` (and at once when a remote replier comes or goes) the
//! control thread lists the bus's bindings and makes three sets true:
//!
//! - a Zenoh subscription per key expression of a local listener pattern
//!   (other than the bridge's own) within `--names`: remote announcements
//!   cross only to where someone listens;
//! - a liveliness token per local listener pattern within `--names`: other
//!   bridges' taps listen for it, so a message crosses only if someone on
//!   another machine listens to it;
//! - a liveliness token per local replier pattern within `--names`: other
//!   bridges bind their proxies to it;
//! - a tap binding per pattern other bridges' listeners advertise (within
//!   `--names`);
//! - a proxy replier binding per pattern another bridge advertises, unless
//!   a replier here has it. That is the one-replier-per-name rule across
//!   machines: a local bind of a name served elsewhere fails `EADDRINUSE`,
//!   as on one bus; two repliers bound at once on two machines (before
//!   either saw the other) are reported as a conflict, and each machine's
//!   requests then go to its own replier.
//!
//! A rescan that takes long (a bus with very many bindings) is followed by
//! a rest nine times as long, so the bridge's share of the daemon stays
//! below a tenth whatever the bus holds or the network pokes.
//!
//! Replier bind events are not used: switching them on is bus-wide, and
//! with them on a replier's bind fails (`EAGAIN`) while any listener of them
//! has a full queue, so the bridge would make other clients' binds fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use busbar::Errno;
use zenoh::Wait;
use zenoh::key_expr::KeyExpr;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;

use crate::bridge::{Bridge, lock};
use crate::counters::Counters;
use crate::keys::Role;
use crate::requests::sweep;

/// What the control thread has declared and bound.
#[derive(Debug, Default)]
struct Declared {
    subscriptions: HashMap<String, Subscriber<()>>,
    tokens: HashMap<(Role, String), LivelinessToken>,
    taps: BTreeSet<String>,
    proxies: BTreeSet<String>,
    conflicts: BTreeSet<String>,
    /// Patterns whose proxy binding was refused (warned about once).
    refused: BTreeSet<String>,
}

/// Does this error mean the bus connection is gone (the bridge stops)?
fn lost(e: Errno) -> bool {
    matches!(e, Errno::ECONNRESET | Errno::ENOENT)
}

/// Runs the control loop until the bus connection fails.
pub fn run(bridge: Arc<Bridge>, samples: SyncSender<Sample>) -> String {
    let mut declared = Declared::default();
    loop {
        let started = Instant::now();
        if let Err(e) = rescan(&bridge, &samples, &mut declared) {
            return format!("the bridge lost the bus: {e}");
        }
        sweep(&bridge);
        // Listing a bus with many bindings takes many operations: rest at
        // least nine times as long as it took, even when poked, so the
        // bridge never spends more than a tenth of the daemon on it.
        let took = started.elapsed();
        std::thread::sleep(took * 9);
        let rest = bridge.settings.rescan.saturating_sub(took * 10);
        let (flag, cv) = &bridge.changed;
        let mut changed = lock(flag);
        if !*changed && !rest.is_zero() {
            changed = cv
                .wait_timeout(changed, rest)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        *changed = false;
    }
}

fn rescan(
    bridge: &Arc<Bridge>,
    samples: &SyncSender<Sample>,
    declared: &mut Declared,
) -> Result<(), Errno> {
    let bindings = bridge.bus.list_bindings()?;
    let mut listeners = BTreeSet::new();
    let mut repliers = BTreeSet::new();
    for b in bindings.iter().filter(|b| !bridge.is_own(b.endpoint)) {
        if b.name.starts_with("$.KBUS.") || !bridge.in_scope(&b.name) {
            continue;
        }
        if b.replier {
            repliers.insert(b.name.to_string());
        } else {
            listeners.insert(b.name.to_string());
        }
    }
    let keys: BTreeSet<String> = listeners
        .iter()
        .map(|p| bridge.settings.keys.pattern(p))
        .collect();
    subscriptions(bridge, samples, declared, &keys);
    tokens(bridge, declared, Role::Listener, &listeners);
    tokens(bridge, declared, Role::Replier, &repliers);
    let tap_wanted = tap_patterns(bridge);
    taps(bridge, declared, &tap_wanted)?;
    proxies(bridge, declared, &repliers, &tap_wanted)?;
    Ok(())
}

fn subscriptions(
    bridge: &Bridge,
    samples: &SyncSender<Sample>,
    declared: &mut Declared,
    wanted: &BTreeSet<String>,
) {
    declared.subscriptions.retain(|k, _| wanted.contains(k));
    for key in wanted {
        if declared.subscriptions.contains_key(key) {
            continue;
        }
        let tx = samples.clone();
        let sub = bridge
            .session
            .declare_subscriber(key.as_str())
            // Blocks Zenoh's receiving task while the injector is behind:
            // back-pressure to the senders (congestion control Block).
            .callback(move |s| {
                let _ = tx.send(s);
            })
            .wait();
        match sub {
            Ok(s) => {
                declared.subscriptions.insert(key.clone(), s);
            }
            Err(e) => tracing::warn!(key, "cannot subscribe on Zenoh: {e}"),
        }
    }
}

fn tokens(bridge: &Bridge, declared: &mut Declared, role: Role, patterns: &BTreeSet<String>) {
    let network = bridge.settings.network;
    declared
        .tokens
        .retain(|(r, p), _| *r != role || patterns.contains(p));
    for p in patterns {
        let id = (role, p.clone());
        if declared.tokens.contains_key(&id) {
            continue;
        }
        let key = bridge.settings.keys.binding(role, network, p);
        match bridge.session.liveliness().declare_token(key).wait() {
            Ok(t) => {
                tracing::info!(pattern = %p, "advertising a local {role:?}");
                declared.tokens.insert(id, t);
            }
            Err(e) => tracing::warn!(pattern = %p, "cannot declare a liveliness token: {e}"),
        }
    }
}

/// What the tap should listen to: each remote listener pattern within
/// `--names`, narrowed to the `--names` patterns it covers (a remote `$.*`
/// with `--names $.a.*` is `$.a.*` here). Overlaps are harmless: the tap
/// gets one copy per message, and checks each name against `--names`.
fn tap_patterns(bridge: &Bridge) -> BTreeSet<String> {
    let keys = &bridge.settings.keys;
    let names: Vec<(String, Option<KeyExpr<'static>>)> = bridge
        .settings
        .names
        .iter()
        .map(|n| (n.clone(), KeyExpr::try_from(keys.pattern(n)).ok()))
        .collect();
    let mut out = BTreeSet::new();
    for p in lock(&bridge.remote_listeners).keys() {
        if p.starts_with("$.KBUS.") || !bridge.in_scope(p) {
            continue;
        }
        let Ok(remote) = KeyExpr::try_from(keys.pattern(p)) else {
            continue;
        };
        let mut narrowed = false;
        for (n, nk) in &names {
            if nk.as_ref().is_some_and(|nk| remote.includes(nk)) {
                out.insert(n.clone());
                narrowed = true;
            }
        }
        if !narrowed {
            out.insert(p.clone());
        }
    }
    out
}

fn taps(bridge: &Bridge, declared: &mut Declared, wanted: &BTreeSet<String>) -> Result<(), Errno> {
    let gone: Vec<String> = declared.taps.difference(wanted).cloned().collect();
    for p in gone {
        match bridge.tap.unbind(&p) {
            Ok(()) | Err(Errno::EINVAL) => {
                declared.taps.remove(&p);
            }
            Err(e) if lost(e) => return Err(e),
            Err(e) => {
                tracing::warn!(pattern = %p, "cannot stop listening for a remote listener: {e}")
            }
        }
    }
    for p in wanted.difference(&declared.taps.clone()) {
        match bridge.tap.bind(p) {
            Ok(()) => {
                tracing::info!(pattern = %p, "a remote listener: taking its messages here");
                declared.taps.insert(p.clone());
            }
            Err(e) if lost(e) => return Err(e),
            Err(e) => {
                if declared.refused.insert(p.clone()) {
                    tracing::warn!(pattern = %p, "cannot listen for a remote listener: {e}");
                }
            }
        }
    }
    Ok(())
}

fn proxies(
    bridge: &Bridge,
    declared: &mut Declared,
    local: &BTreeSet<String>,
    tap_wanted: &BTreeSet<String>,
) -> Result<(), Errno> {
    let network = bridge.settings.network;
    let remote: BTreeMap<String, BTreeSet<u32>> = lock(&bridge.remote)
        .iter()
        .filter(|(p, _)| bridge.in_scope(p))
        .map(|(p, nets)| {
            (
                p.clone(),
                nets.iter().copied().filter(|&n| n != network).collect(),
            )
        })
        .filter(|(_, nets): &(String, BTreeSet<u32>)| !nets.is_empty())
        .collect();
    for (p, nets) in &remote {
        let clash = nets.len() > 1 || local.contains(p);
        if clash && declared.conflicts.insert(p.clone()) {
            Counters::bump(&bridge.counters.conflicts);
            tracing::warn!(
                pattern = %p,
                networks = ?nets,
                here = local.contains(p),
                "replier conflict: this pattern has a replier on more than one bus; each bus's \
                 requests go to its own replier if it has one, else to the lowest network id's"
            );
        }
    }
    declared.conflicts.retain(|p| {
        remote.get(p).is_some_and(|n| n.len() > 1) || (remote.contains_key(p) && local.contains(p))
    });
    declared
        .refused
        .retain(|p| remote.contains_key(p) || tap_wanted.contains(p));
    let gone: Vec<String> = declared
        .proxies
        .iter()
        .filter(|p| !remote.contains_key(*p))
        .cloned()
        .collect();
    for p in gone {
        match bridge.proxy.unbind_replier(&p) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) if lost(e) => return Err(e),
            // Tried again at the next rescan.
            Err(e) => {
                tracing::warn!(pattern = %p, "cannot unbind a remote replier's pattern: {e}");
                continue;
            }
        }
        tracing::info!(pattern = %p, "a remote replier went");
        declared.proxies.remove(&p);
    }
    for p in remote.keys() {
        if declared.proxies.contains(p) || local.contains(p) {
            continue;
        }
        match bridge.proxy.bind_replier(p) {
            Ok(()) => {
                tracing::info!(pattern = %p, "serving a remote replier here");
                declared.refused.remove(p);
                declared.proxies.insert(p.clone());
            }
            // A local replier bound it between the listing and now.
            Err(Errno::EADDRINUSE) => {}
            Err(e) if lost(e) => return Err(e),
            // A bad pattern from the network, or a refusal of the moment
            // (EAGAIN while replier bind events are on and a listener of
            // them is full): tried again at the next rescan.
            Err(e) => {
                if declared.refused.insert(p.clone()) {
                    tracing::warn!(pattern = %p, "cannot bind a remote replier's pattern: {e}");
                }
            }
        }
    }
    Ok(())
}
