//! `busbar`: run the daemon and talk to it from the shell.

mod bench;
mod bench_data;
mod data;
mod format;
mod kbus;
mod names;

use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use busbar::{Bus, BusId, Errno, Flags, Message, Outgoing, ServeError};
use clap::{Args, Parser, Subcommand};

/// busbar: a message bus for Linux with kernel-grade guarantees.
///
/// Start a daemon with `busbar daemon`, then use the other commands from
/// any terminal of the same user. The socket is `--socket PATH`, else
/// `$BUSBAR_SOCKET`, else `$XDG_RUNTIME_DIR/busbar/bus.sock`, else
/// `/tmp/busbar-<uid>/bus.sock`.
///
/// Exit status: 0 success; 1 an operation failed (the errno and a sentence
/// are printed on stderr), or `reply` could not answer a request; 2 bad
/// command line; 3 `call` got a synthetic reply (the replier went away,
/// ignored or unbound).
#[derive(Debug, Parser)]
#[command(name = "busbar", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where to find the daemon, and which bus.
#[derive(Debug, Args)]
struct Target {
    /// The daemon's socket (default: $BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock, /tmp/busbar-<uid>/bus.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The bus to use.
    #[arg(long, value_name = "N", default_value_t = 0)]
    bus: u32,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
        /// socket_mode ("0660"), socket_group, quota_messages/bytes/handles/fds,
        /// privileged_uids, privileged_groups, and the limits max_connections,
        /// max_connections_per_uid, max_endpoints_per_connection,
        /// max_endpoints_per_uid, max_bindings_per_uid, max_parked_per_connection,
        /// max_fds_per_uid, max_partial_bytes_per_uid, max_inline_data, hello_timeout_ms
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
        #[arg(long, value_name = "SECS")]
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
        #[arg(long, value_name = "SECS")]
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
    Reply {
        #[command(flatten)]
        target: Target,
        /// The name (or pattern) to answer.
        name: String,
        /// Reply with the request's own data.
        #[arg(long, group = "how", required = true)]
        echo: bool,
        /// Reply with this data.
        #[arg(long, value_name = "D", group = "how")]
        data: Option<String>,
        /// Run this shell command (sh -c) with the request data on stdin and
        /// reply with its stdout; if it exits non-zero, the request is not
        /// answered and the replier stops (see above).
        #[arg(long, value_name = "CMD", group = "how")]
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
}

/// What `busbar call` says a synthetic reply means.
fn synthetic_meaning(name: &str) -> &'static str {
    match name {
        busbar::synthetic::GONE_AWAY => "the replier closed before reading the request",
        busbar::synthetic::IGNORED => {
            "the replier read the request and closed without answering it \
             (`busbar reply` does so when it cannot answer: see its stderr)"
        }
        busbar::synthetic::UNBOUND => "the replier unbound the name before reading the request",
        busbar::synthetic::DISAPPEARED => "no replier was left when the request could be sent",
        busbar::synthetic::ERROR_SENDING => "the request could not be delivered",
        _ => "a message from the bus itself",
    }
}

/// The monitor's queue limit: deep, so a burst is shown rather than lost.
const MONITOR_QUEUE: u32 = 100_000;

/// A failure to report: what we were doing and the errno.
struct Failure {
    what: String,
    errno: Errno,
}

fn fail(what: impl Into<String>) -> impl FnOnce(Errno) -> Failure {
    let what = what.into();
    move |errno| Failure { what, errno }
}

fn socket_of(t: &Target) -> PathBuf {
    t.socket.clone().unwrap_or_else(busbar::default_socket_path)
}

/// Connects to the daemon and picks the bus.
fn connect(t: &Target) -> Result<Bus, Failure> {
    let path = socket_of(t);
    let bus = Bus::connect(&path).map_err(|errno| Failure {
        what: match errno {
            Errno::ENOENT | Errno::ECONNREFUSED => {
                format!("no busbar daemon at {}", path.display())
            }
            _ => format!("cannot connect to {}", path.display()),
        },
        errno,
    })?;
    Ok(bus.bus(BusId(t.bus)))
}

fn timeout(secs: Option<f64>) -> Result<Option<Duration>, Failure> {
    match secs {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| Failure {
                what: format!("bad timeout {s}"),
                errno: Errno::EINVAL,
            }),
    }
}

fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|_| Failure {
            what: "stdout closed".into(),
            errno: Errno::EIO,
        })
}

fn stdout_failed(e: io::Error) -> Failure {
    Failure {
        what: format!("cannot write to stdout: {e}"),
        errno: Errno::EIO,
    }
}

fn print_message(m: &Message, json: bool) -> Result<(), Failure> {
    if json {
        print_line(&format::message_json(m).to_string())
    } else {
        print_line(&format::message_line(m))
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Cmd::Daemon {
            socket,
            buses,
            config,
        } => {
            let socket = busbar_daemon::resolve_socket(socket);
            let mut cfg = busbar_daemon::DaemonConfig::new(socket);
            if let Some(f) = config {
                cfg.apply_file(&f).map_err(|what| Failure {
                    what,
                    errno: Errno::EINVAL,
                })?;
            }
            if let Some(n) = buses {
                cfg.kernel.buses = n;
            }
            busbar_daemon::run_daemon(cfg).map_err(|e| Failure {
                what: e.to_string(),
                errno: Errno::EIO,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Send {
            target,
            name,
            data,
            urgent,
            all_or_fail,
            all_or_wait,
            timeout: secs,
            json,
        } => {
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            let mut flags = Flags::empty();
            if urgent {
                flags = flags | Flags::URGENT;
            }
            if all_or_fail {
                flags = flags | Flags::ALL_OR_FAIL;
            }
            if all_or_wait {
                flags = flags | Flags::ALL_OR_WAIT;
            }
            let data = data.read().map_err(|what| Failure {
                what,
                errno: Errno::EIO,
            })?;
            let msg = Outgoing::announcement(&name, data).with_flags(flags);
            let id = if all_or_wait {
                ep.send_wait(msg, timeout(secs)?)
            } else {
                ep.send(msg)
            }
            .map_err(fail(format!("send {name}")))?;
            if json {
                print_line(&serde_json::json!({ "id": [id.network, id.serial] }).to_string())?;
            } else {
                print_line(&id.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Call {
            target,
            name,
            data,
            timeout: secs,
            json,
            raw,
        } => {
            let data = data.read().map_err(|what| Failure {
                what,
                errno: Errno::EIO,
            })?;
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            let reply = ep
                .call(&name, data, timeout(secs)?)
                .map_err(fail(format!("call {name}")))?;
            if json {
                print_message(&reply, true)?;
            } else if raw && !reply.is_synthetic() {
                data::write_raw(&reply.data).map_err(stdout_failed)?;
            } else if !reply.is_synthetic() {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&reply.data);
                if !reply.data.ends_with(b"\n") {
                    let _ = out.write_all(b"\n");
                }
            }
            if reply.is_synthetic() {
                eprintln!(
                    "busbar: call {name}: no real reply: the bus answered {} (from endpoint {}): {}",
                    reply.name,
                    reply.from,
                    synthetic_meaning(&reply.name)
                );
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Listen {
            target,
            patterns,
            count,
            json,
            raw,
        } => {
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            for p in &patterns {
                ep.bind(p).map_err(fail(format!("listen {p}")))?;
            }
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let m = ep.recv().map_err(fail("receive"))?;
                if raw {
                    data::write_raw(&m.data).map_err(stdout_failed)?;
                } else {
                    print_message(&m, json)?;
                }
                seen += 1;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Reply {
            target,
            name,
            echo,
            data,
            exec,
            count,
        } => {
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            ep.bind_replier(&name)
                .map_err(fail(format!("reply {name}")))?;
            // The size of the last reply (name and data), for the error.
            let mut size = 0;
            let served = ep.try_serve(count, |m| -> Result<busbar::Bytes, String> {
                let answer: Vec<u8> = if echo {
                    m.data.to_vec()
                } else if let Some(d) = &data {
                    d.clone().into_bytes()
                } else {
                    run_exec(exec.as_deref().unwrap_or("cat"), &m.data)?
                };
                size = m.name.len() + answer.len();
                Ok(answer.into())
            });
            let why = match served {
                Ok(_) => return Ok(ExitCode::SUCCESS),
                Err(ServeError::Recv(errno)) => return Err(fail(format!("reply {name}"))(errno)),
                Err(ServeError::Handler {
                    request,
                    requester,
                    error,
                }) => format!("request {request} from endpoint {requester}: {error}"),
                Err(ServeError::Reply {
                    request,
                    requester,
                    errno,
                }) => {
                    let mut why = format!(
                        "cannot send the reply to request {request} from endpoint {requester}: \
                         {} ({})",
                        errno.strerror(),
                        errno.name()
                    );
                    if errno == Errno::EMSGSIZE {
                        let max = bus.stats().map_or_else(
                            |_| "smaller".to_owned(),
                            |s| s.max_message_size.to_string(),
                        );
                        why += &format!(
                            ": it is {size} bytes (name and data) and the bus's maximum message \
                             size is {max}; reply with less, or raise the maximum \
                             (max_message_size in the daemon's config file)"
                        );
                    }
                    why
                }
            };
            // Closing makes the bus answer the request we could not
            // (Ignored), and those still queued for us (GoneAway).
            let _ = ep.close();
            eprintln!("busbar: reply {name}: {why}");
            eprintln!(
                "busbar: reply {name}: stopped without answering that request; the bus answers \
                 its caller $.KBUS.Replier.Ignored"
            );
            Ok(ExitCode::FAILURE)
        }
        Cmd::Monitor { target, json } => {
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            ep.set_monitor(true).map_err(fail("monitor"))?;
            ep.set_queue_limit(MONITOR_QUEUE)
                .map_err(fail("set queue limit"))?;
            loop {
                let m = ep.recv().map_err(fail("receive"))?;
                print_message(&m, json)?;
            }
        }
        Cmd::Stats { target, json } => {
            let bus = connect(&target)?;
            let s = bus.stats().map_err(fail("stats"))?;
            let q = bus.quota_stats().map_err(fail("stats"))?;
            if json {
                let b = bus.list_bindings().map_err(fail("list bindings"))?;
                print_line(&format::stats_json(&s, &q, &b).to_string())?;
            } else {
                print!("{}", format::stats_table(&s, &q));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Names { target, json } => {
            let bus = connect(&target)?;
            let b = bus.list_bindings().map_err(fail("list bindings"))?;
            if json {
                print_line(&names::names_json(&b).to_string())?;
            } else {
                print!("{}", names::names_table(&b));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kbus {
            socket,
            program,
            args,
        } => {
            // Returns only if the program could not be run (as a shell: 127).
            eprintln!(
                "busbar kbus: {}",
                kbus::exec(socket.as_deref(), &program, &args)
            );
            Ok(ExitCode::from(127))
        }
        Cmd::Bench(args) => bench::run(args).map_err(|what| Failure {
            what,
            errno: Errno::EIO,
        }),
    }
}

/// Runs `sh -c cmd` with `input` on stdin: its stdout if it exits 0, else
/// what went wrong (its own stderr goes to ours).
fn run_exec(cmd: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Err(format!("cannot run --exec command {cmd:?}: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // Feed stdin from a thread so a command that writes before reading
        // all its input cannot deadlock with us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("--exec command {cmd:?} failed: {e}"))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let how = match (out.status.code(), out.status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("failed ({})", out.status),
    };
    Err(format!(
        "--exec command {cmd:?} {how}, so its output is not a reply (fix the command, or \
         make it exit 0, e.g. `CMD || true`, to reply with its output whatever its status)"
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Cmd::Daemon { .. }) {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(io::stderr)
            .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
            .init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(f) if f.what.starts_with("no busbar daemon") => {
            eprintln!("busbar: {} ({})", f.what, f.errno.name());
            ExitCode::FAILURE
        }
        Err(f) => {
            eprintln!(
                "busbar: {}: {} ({})",
                f.what,
                f.errno.strerror(),
                f.errno.name()
            );
            ExitCode::FAILURE
        }
    }
}
