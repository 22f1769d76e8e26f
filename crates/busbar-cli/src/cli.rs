//! The command line: every command, option and its help, in one place
//! (the manual pages and shell completions are generated from it).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::{bench, data};

/// busbar: a message bus for Linux with kernel-grade guarantees.
///
/// Start a daemon with `busbar daemon`, then use the other commands from
/// any terminal of the same user. The socket is `--socket PATH`, else
/// `$BUSBAR_SOCKET`, else `$XDG_RUNTIME_DIR/busbar/bus.sock`, else
/// `/tmp/busbar-<uid>/bus.sock`.
///
/// Exit status: 0 success (also when stdout is closed early, as in
/// `busbar listen | head -1`); 1 an operation failed (what happened, the
/// errno and what to do are printed on stderr), or `reply` could not answer
/// a request; 2 bad command line, config file or value (a --timeout that is
/// not a number of seconds, a --bus the daemon does not have, a socket path
/// too long); 3 `call` got a synthetic reply (the replier went away, ignored
/// or unbound).
#[derive(Debug, Parser)]
#[command(name = "busbar", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

/// Where to find the daemon, and which bus.
#[derive(Debug, Args)]
pub struct Target {
    /// The daemon's socket (default: $BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock, /tmp/busbar-<uid>/bus.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The bus to use.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub bus: u32,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the daemon: serve buses on a Unix socket until SIGTERM/SIGINT.
    ///
    /// Logs go to stderr; the level comes from RUST_LOG (default "info").
    Daemon {
        /// The socket to serve on (default as for every command).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Buses to create at start (more can be created at run time).
        #[arg(long, value_name = "N")]
        buses: Option<u32>,
        /// A TOML config file: buses, default_queue_limit, max_message_size,
        /// absolute_max_message_size,
        /// socket_mode ("0660"), socket_group, quota_messages, quota_bytes,
        /// quota_handles, quota_fds,
        /// privileged_uids, privileged_groups, and the limits max_connections,
        /// max_connections_per_uid, max_endpoints_per_connection,
        /// max_endpoints_per_uid, max_bindings_per_uid, max_parked_per_connection,
        /// max_fds_per_uid, max_partial_bytes_per_uid, max_inline_data,
        /// max_data_memfds_per_uid, max_data_memfds, hello_timeout_ms,
        /// metrics_listen ("127.0.0.1:9464": serve GET /metrics; off by default)
        /// (docs/security.md). Unknown keys are errors.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Send a message and print its id.
    Send {
        #[command(flatten)]
        target: Target,
        /// The message name, e.g. $.sensors.temperature.
        name: String,
        #[command(flatten)]
        data: data::DataArgs,
        /// Put it at the front of every recipient's queue.
        #[arg(long)]
        urgent: bool,
        /// Deliver to everyone or nobody; fail with EBUSY if a queue is full.
        #[arg(long, conflicts_with = "all_or_wait")]
        all_or_fail: bool,
        /// Deliver to everyone or nobody; wait while a queue is full.
        #[arg(long)]
        all_or_wait: bool,
        /// With --all-or-wait: give up after this many seconds (ETIMEDOUT).
        #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
        timeout: Option<f64>,
        /// Print a JSON object instead of the id.
        #[arg(long)]
        json: bool,
    },
    /// Send a request and print the reply's data.
    Call {
        #[command(flatten)]
        target: Target,
        /// The request name.
        name: String,
        #[command(flatten)]
        data: data::DataArgs,
        /// Give up after this many seconds (ETIMEDOUT); default: wait for the reply.
        #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
        timeout: Option<f64>,
        /// Print the whole reply as a JSON object.
        #[arg(long, conflicts_with = "raw")]
        json: bool,
        /// Write the reply's data exactly as received (no newline added).
        #[arg(long)]
        raw: bool,
    },
    /// Print messages matching the patterns as they arrive.
    Listen {
        #[command(flatten)]
        target: Target,
        /// Patterns to listen to, e.g. '$.sensors.*'.
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Exit after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// One JSON object per line.
        #[arg(long, conflicts_with = "raw")]
        json: bool,
        /// Write each message's data exactly as received, nothing else (no
        /// separators: for piping, e.g. with --count 1).
        #[arg(long)]
        raw: bool,
    },
    /// Be the replier for a name and answer each request.
    ///
    /// A caller always gets an answer. If a request cannot be answered (its
    /// reply is larger than the bus's maximum message size, or refused for
    /// another reason; or the --exec command exits non-zero or is killed),
    /// the replier says what happened on stderr, closes its endpoint and
    /// exits with status 1. The bus then answers that request's caller with
    /// $.KBUS.Replier.Ignored (and the callers of requests still queued with
    /// $.KBUS.Replier.GoneAway), which `busbar call` reports with exit status
    /// 3. To keep a service up across such failures, restart it: `while :;
    /// do busbar reply NAME --exec CMD; done`.
    #[command(group(ArgGroup::new("how").required(true).args(["echo", "data", "exec"])))]
    Reply {
        #[command(flatten)]
        target: Target,
        /// The name (or pattern) to answer.
        name: String,
        /// Reply with the request's own data.
        #[arg(long)]
        echo: bool,
        /// Reply with this data.
        #[arg(long, value_name = "D")]
        data: Option<String>,
        /// Run this shell command (sh -c) with the request data on stdin and
        /// reply with its stdout; if it exits non-zero, the request is not
        /// answered and the replier stops (see above).
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Exit after answering this many requests.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Show everything queued on the bus, synthetic messages included.
    Monitor {
        #[command(flatten)]
        target: Target,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show endpoints, bindings, queue depths and limits, counters, handles, quota use.
    Stats {
        #[command(flatten)]
        target: Target,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every binding on the bus: name, listener or replier, endpoint, owner pid, uid and command.
    Names {
        #[command(flatten)]
        target: Target,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Run a KBUS program on busbar: its /dev/kbusN are the daemon's buses.
    ///
    /// Preloads libbusbar_kbus.so (found beside this executable, in ../lib,
    /// or at $BUSBAR_KBUS_LIBRARY) and runs PROGRAM with ARGS. The program is
    /// unchanged: open("/dev/kbus0"), write, read, ioctl, poll/select/epoll,
    /// /proc/kbus/bindings work as with the KBUS kernel module (docs/kbus.md).
    /// Statically linked and setuid programs cannot be run this way.
    Kbus {
        /// The daemon's socket (default: $BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock, /tmp/busbar-<uid>/bus.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The program to run.
        #[arg(value_name = "PROGRAM")]
        program: String,
        /// Its arguments.
        #[arg(
            value_name = "ARGS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Measure the daemon against raw Unix sockets, in one run.
    Bench(bench::BenchArgs),
    /// Print the metrics in the Prometheus (OpenMetrics) text format.
    ///
    /// Per bus: messages sent, copies delivered and lost, synthetic messages
    /// by name, refused sends by errno, endpoints, bindings, queued messages
    /// and bytes; per daemon: buses, connections, fds held. The daemon serves
    /// the same over HTTP when its config sets metrics_listen.
    Metrics {
        /// The daemon's socket (default: $BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock, /tmp/busbar-<uid>/bus.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Only this bus (default: every bus).
        #[arg(long, value_name = "N")]
        bus: Option<u32>,
    },
    /// Print shell completions for busbar on stdout.
    ///
    /// bash: `busbar completions bash > ~/.local/share/bash-completion/completions/busbar`;
    /// zsh: `busbar completions zsh > ~/.zfunc/_busbar` (with ~/.zfunc in $fpath);
    /// fish: `busbar completions fish > ~/.config/fish/completions/busbar.fish`.
    /// scripts/install.sh installs all three.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages: busbar(1) and one per command
    /// (busbar-daemon(1), busbar-send(1), ...), into DIR.
    Man {
        /// The directory to write them to (created if missing).
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

/// A `--timeout` value: seconds, finite, at least 0 and at most a year (a
/// bad one is a command-line error, exit status 2).
pub fn parse_timeout(s: &str) -> Result<f64, String> {
    const YEAR: f64 = 365.0 * 24.0 * 3600.0;
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=YEAR).contains(&v) {
        return Err(format!(
            "{s} is not a timeout: give seconds from 0 to {YEAR} (a year), or leave --timeout out to wait forever"
        ));
    }
    Ok(v)
}
