//! Starting a bridge: the Zenoh session from the arguments, the bus
//! connection, the tokens, watches and queryable, and the threads; and
//! stopping it on SIGINT/SIGTERM or when the bus connection fails.

use std::sync::Arc;
use std::sync::mpsc;

use signal_hook::consts::{SIGINT, SIGTERM};
use zenoh::Wait;
use zenoh::sample::SampleKind;

use crate::bridge::{Bridge, Settings, lock};
use crate::cli::Args;
use crate::keys::{Keys, Role};
use crate::{control, counters, inject, requests, tap};

fn zenoh_config(args: &Args) -> Result<zenoh::Config, String> {
    let mut config = match &args.config {
        Some(path) => zenoh::Config::from_file(path)
            .map_err(|e| format!("cannot read the Zenoh config {}: {e}", path.display()))?,
        None => zenoh::Config::default(),
    };
    let set = |config: &mut zenoh::Config, key: &str, value: String| {
        config
            .insert_json5(key, &value)
            .map_err(|e| format!("bad Zenoh setting {key} = {value}: {e}"))
    };
    set(&mut config, "mode", format!("{:?}", args.mode))?;
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(","))
    };
    if !args.listen.is_empty() {
        set(&mut config, "listen/endpoints", list(&args.listen))?;
    }
    if !args.connect.is_empty() {
        set(&mut config, "connect/endpoints", list(&args.connect))?;
    }
    if args.config.is_none() {
        set(
            &mut config,
            "scouting/multicast/enabled",
            args.scouting.to_string(),
        )?;
    }
    Ok(config)
}

/// The most replier (and listener) patterns taken from other bridges: each
/// becomes a binding on the local bus, and the network must not be able to
/// make the bridge bind without bound.
pub const MAX_REMOTE_PATTERNS: usize = 16_384;

/// Runs a bridge until a signal stops it (`Ok`) or the bus connection
/// fails (`Err`, saying what happened).
pub fn run(args: Args) -> Result<(), String> {
    args.check()?;
    let keys = Keys::new(&args.namespace)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(busbar::default_socket_path);
    if !socket.exists() {
        return Err(format!(
            "no busbar daemon socket at {} (start `busbar daemon`, or give its socket with --socket)",
            socket.display()
        ));
    }
    let bus = busbar::Bus::connect(&socket)
        .map_err(|e| {
            format!(
                "cannot connect to the busbar daemon at {}: {e} (is `busbar daemon` running? give its socket with --socket)",
                socket.display()
            )
        })?
        .bus(busbar::BusId(args.bus));
    bus.info()
        .map_err(|e| format!("cannot use bus {} of the daemon: {e}", args.bus))?;

    let config = zenoh_config(&args)?;
    let session = zenoh::open(config)
        .wait()
        .map_err(|e| format!("cannot open the Zenoh session: {e}"))?;
    let zid = session.zid().to_string();
    let network = args.network_id.unwrap_or_else(|| network_from(&zid));
    let settings = Settings {
        network,
        keys: keys.clone(),
        names: args.names.clone(),
        deadline: args.deadline,
        rescan: args.rescan,
    };
    let bridge = Arc::new(Bridge::new(settings, session.clone(), bus)?);

    // Another bridge with our network id would break id uniqueness.
    let alive_watch = session
        .liveliness()
        .declare_subscriber(keys.alive_any(network))
        .history(true)
        .callback({
            let zid = zid.clone();
            let bridge = bridge.clone();
            move |s| {
                let key = s.key_expr().as_str();
                if s.kind() == SampleKind::Put && !key.ends_with(&format!("/{zid}")) {
                    counters::Counters::bump(&bridge.counters.conflicts);
                    tracing::error!(
                        key,
                        "another bridge uses network id {network}: give each bridge its own --network-id"
                    );
                }
            }
        })
        .wait()
        .map_err(|e| format!("cannot watch bridge tokens: {e}"))?;
    let _alive = session
        .liveliness()
        .declare_token(keys.alive(network, &zid))
        .wait()
        .map_err(|e| format!("cannot declare the bridge's token: {e}"))?;

    // Remote repliers and listeners, from their bridges' tokens.
    let replier_watch = watch(&session, &bridge, Role::Replier)?;
    let listener_watch = watch(&session, &bridge, Role::Listener)?;

    let queryable = session
        .declare_queryable(keys.requests(network))
        .callback({
            let bridge = bridge.clone();
            move |q| requests::serve(&bridge, q)
        })
        .wait()
        .map_err(|e| format!("cannot declare the request queryable: {e}"))?;

    tracing::info!(
        network,
        zid = %zid,
        namespace = %args.namespace,
        names = ?args.names,
        "bridging bus {} of {}",
        args.bus,
        socket.display()
    );

    let (samples_tx, samples_rx) = mpsc::sync_channel(65_536);
    let (died_tx, died_rx) = mpsc::channel::<String>();
    let spawn = |name: &str, f: Box<dyn FnOnce() -> String + Send>| {
        let died = died_tx.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let why = f();
                let _ = died.send(why);
            })
            .map_err(|e| format!("cannot start a thread: {e}"))
    };
    {
        let b = bridge.clone();
        spawn(
            "inject",
            Box::new(move || {
                inject::run(b, samples_rx);
                "the injector stopped".into()
            }),
        )?;
        let b = bridge.clone();
        spawn("tap", Box::new(move || tap::run(b)))?;
        let b = bridge.clone();
        spawn("proxy", Box::new(move || requests::run_proxy(b)))?;
        let b = bridge.clone();
        spawn("forwarder", Box::new(move || requests::run_forwarder(b)))?;
        let b = bridge.clone();
        spawn("control", Box::new(move || control::run(b, samples_tx)))?;
    }
    if args.stats_every > 0 {
        let b = bridge.clone();
        let every = std::time::Duration::from_secs(args.stats_every);
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    tracing::info!("counters: {}", b.counters);
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
    }
    {
        let died = died_tx.clone();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| format!("cannot handle signals: {e}"))?;
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = died.send(format!("stopping on signal {sig}"));
            }
        });
    }
    let why = died_rx.recv().unwrap_or_default();
    let stopping = why.starts_with("stopping on signal");
    if stopping {
        tracing::info!("{why}");
    } else {
        tracing::error!("{why}");
    }
    drop((queryable, replier_watch, listener_watch, alive_watch));
    let _ = session.close().wait();
    tracing::info!("counters: {}", bridge.counters);
    if stopping { Ok(()) } else { Err(why) }
}

/// Keeps `bridge`'s map of remote `role` patterns in step with the other
/// bridges' tokens (bounded: see [`MAX_REMOTE_PATTERNS`]), and wakes the
/// control thread on every change.
fn watch(
    session: &zenoh::Session,
    bridge: &Arc<Bridge>,
    role: Role,
) -> Result<zenoh::pubsub::Subscriber<()>, String> {
    let network = bridge.settings.network;
    let bridge = bridge.clone();
    session
        .liveliness()
        .declare_subscriber(bridge.settings.keys.bindings(role))
        .history(true)
        .callback(move |s| {
            let key = s.key_expr().as_str();
            let Some((net, pattern)) = bridge.settings.keys.parse_binding(role, key) else {
                return inject::bad_input(&bridge, key, "not a binding token");
            };
            if net == network {
                return;
            }
            {
                let map = match role {
                    Role::Replier => &bridge.remote,
                    Role::Listener => &bridge.remote_listeners,
                };
                let mut remote = lock(map);
                match s.kind() {
                    SampleKind::Put
                        if remote.len() >= MAX_REMOTE_PATTERNS
                            && !remote.contains_key(&pattern) =>
                    {
                        return inject::bad_input(
                            &bridge,
                            key,
                            "too many remote patterns (ignored)",
                        );
                    }
                    SampleKind::Put => {
                        remote.entry(pattern).or_default().insert(net);
                    }
                    SampleKind::Delete => {
                        if let Some(nets) = remote.get_mut(&pattern) {
                            nets.remove(&net);
                            if nets.is_empty() {
                                remote.remove(&pattern);
                            }
                        }
                    }
                }
            }
            bridge.poke();
        })
        .wait()
        .map_err(|e| format!("cannot watch {role:?} tokens: {e}"))
}

/// A network id from the Zenoh session id: non-zero, and stable for a given
/// id. (Give `--network-id` to choose it.)
fn network_from(zid: &str) -> u32 {
    // FNV-1a.
    let mut h: u32 = 0x811c_9dc5;
    for b in zid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}
