//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Joins this machine's busbar bus to the buses of other machines over Zenoh.
///
/// Run one bridge per bus, as the daemon's user (or root, or a uid in the
/// daemon's privileged_uids): a bridge forwards message ids, a bus-wide
/// power. Announcements reach every matching listener on every bridged
/// machine exactly once; requests reach the one replier of their name,
/// wherever it is, and always get exactly one reply. See docs/bridging.md.
#[derive(Debug, Parser)]
#[command(name = "busbar-zenoh", version)]
pub struct Args {
    /// The daemon's socket [default: $BUSBAR_SOCKET, else
    /// $XDG_RUNTIME_DIR/busbar/bus.sock, else /tmp/busbar-<uid>/bus.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// The bus (of that daemon) to bridge
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub bus: u32,

    /// A Zenoh endpoint to listen on, e.g. tcp/0.0.0.0:7447 or
    /// unixsock-stream//run/busbar/zenoh.sock (repeatable)
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,

    /// A Zenoh endpoint to connect to, e.g. tcp/192.168.1.2:7447 (repeatable)
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,

    /// Keeps several independent bus networks apart on one Zenoh network
    /// (letters, digits, '-' and '_')
    #[arg(long, default_value = "default", value_name = "NS")]
    pub namespace: String,

    /// Only names matching these patterns cross (repeatable)
    #[arg(long, default_value = "$.*", value_name = "PATTERN", num_args = 1..)]
    pub names: Vec<String>,

    /// A Zenoh configuration file (JSON5); --listen and --connect replace its
    /// endpoints
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This bridge's network id (1 to 4294967295), unique among the bridges
    /// of the namespace [default: derived from the Zenoh session id]
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u32).range(1..))]
    pub network_id: Option<u32>,

    /// A request sent to another machine that has no reply after this long
    /// gets $.KBUS.Replier.Disappeared (seconds)
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = seconds)]
    pub deadline: Duration,

    /// How often to look at the bus's bindings (milliseconds): a new
    /// listener or replier is seen across machines within about this long
    #[arg(long, default_value = "100", value_name = "MS", value_parser = millis)]
    pub rescan: Duration,

    /// Zenoh mode: peer (default), client (through a router) or router
    #[arg(long, default_value = "peer", value_parser = ["peer", "client", "router"])]
    pub mode: String,

    /// Log the counters every this many seconds (0: only on warnings and
    /// at exit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub stats_every: u64,

    /// Let Zenoh find peers by UDP multicast scouting (off by default: name
    /// the endpoints with --listen/--connect)
    #[arg(long)]
    pub scouting: bool,
}

/// Zenoh's endpoint protocols. This build has `tcp` and `unixsock-stream`;
/// the others need their Zenoh features (Zenoh refuses them otherwise).
const ZENOH_PROTOCOLS: &[&str] = &[
    "tcp",
    "unixsock-stream",
    "udp",
    "tls",
    "quic",
    "ws",
    "unixpipe",
    "serial",
    "vsock",
];

impl Args {
    /// Checks what clap cannot: the namespace and the patterns.
    pub fn check(&self) -> Result<(), String> {
        crate::keys::Keys::new(&self.namespace)?;
        for p in &self.names {
            busbar::name::parse_pattern(p).map_err(|e| {
                format!("bad --names pattern {p:?}: {e} (give patterns like $.a.b, $.a.* or $.a.%)")
            })?;
        }
        for (flag, endpoints) in [("--listen", &self.listen), ("--connect", &self.connect)] {
            for e in endpoints {
                let known = e
                    .split_once('/')
                    .is_some_and(|(p, rest)| !rest.is_empty() && ZENOH_PROTOCOLS.contains(&p));
                if !known {
                    return Err(format!(
                        "bad {flag} endpoint {e:?}: give PROTOCOL/ADDRESS, e.g. \
                         tcp/192.168.1.2:7447 or unixsock-stream//run/busbar/z.sock \
                         (this build has tcp and unixsock-stream)"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&v) {
        return Err("give between 0.001 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(v))
}

fn millis(s: &str) -> Result<Duration, String> {
    let v: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of milliseconds"))?;
    if !(1..=60_000).contains(&v) {
        return Err("give between 1 and 60000 milliseconds".into());
    }
    Ok(Duration::from_millis(v))
}
