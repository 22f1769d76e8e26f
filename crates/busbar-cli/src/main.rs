//! `busbar`: run the daemon and talk to it from the shell.

mod bench;
mod bench_data;
mod cli;
mod data;
mod format;
mod generate;
mod kbus;
mod names;
mod report;

use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use busbar::{Bus, BusId, Errno, Flags, Message, Outgoing, ServeError};
use clap::Parser;
use cli::{Cli, Cmd, Target};
use report::{Failure, fail, print_line, print_text, stdout_failed};

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

fn socket_of(t: &Target) -> PathBuf {
    t.socket.clone().unwrap_or_else(busbar::default_socket_path)
}

/// Connects to the daemon and picks the bus; each failure says what to do.
fn connect(t: &Target) -> Result<Bus, Failure> {
    let path = socket_of(t);
    report::check_socket_path(&path)?;
    let shown = path.display();
    let bus = Bus::connect(&path).map_err(|errno| match errno {
        Errno::ENOENT | Errno::ECONNREFUSED => {
            Failure::plain(format!("no busbar daemon at {shown} ({})", errno.name())).hint(format!(
                "start one with `busbar daemon --socket {shown}` (it runs in the \
                     foreground: use another terminal, or its systemd units), or point \
                     --socket or $BUSBAR_SOCKET at a running one"
            ))
        }
        Errno::EACCES | Errno::EPERM => {
            Failure::op(format!("cannot connect to {shown}"), Errno::EACCES).hint(
                "this user may not open the daemon's socket: the daemon's socket_mode and \
             socket_group settings (its config file) decide who may connect",
            )
        }
        _ => Failure::op(format!("cannot connect to {shown}"), errno),
    })?;
    if t.bus == 0 {
        return Ok(bus);
    }
    let buses = bus
        .info()
        .map(|i| i.buses)
        .map_err(fail("ask the daemon"))?;
    if t.bus >= buses {
        let has = match buses {
            1 => "only bus 0".to_string(),
            n => format!("buses 0 to {}", n - 1),
        };
        return Err(Failure::usage(format!(
            "--bus {}: the daemon at {shown} has {has}",
            t.bus
        ))
        .hint("pick one of those, or start the daemon with more (`buses = N` in its config, or --buses N)"));
    }
    Ok(bus.bus(BusId(t.bus)))
}

/// A send refused: for `EMSGSIZE`, with the sizes involved.
fn send_failed(bus: &Bus, what: String, size: usize, errno: Errno) -> Failure {
    let f = Failure::op(what, errno);
    if errno != Errno::EMSGSIZE {
        return f;
    }
    let max = bus.info().map_or_else(
        |_| "smaller".to_string(),
        |i| format!("{} bytes", i.max_message_size),
    );
    f.hint(format!(
        "the message is {size} bytes (name + data) and the bus's maximum is {max}: send \
         less, or raise max_message_size (the daemon's config; at most \
         absolute_max_message_size)"
    ))
}

/// What the daemon command says when it cannot start or stops with an
/// error: its own sentence (which names the path or setting), and advice.
fn daemon_failed(e: std::io::Error) -> Failure {
    let f = Failure::plain(e.to_string());
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            f.hint("stop that daemon first, or give this one another --socket")
        }
        std::io::ErrorKind::PermissionDenied => f.hint(
            "choose a socket in a directory this user owns (--socket, $BUSBAR_SOCKET), or \
             run the daemon as the user who owns that one",
        ),
        std::io::ErrorKind::InvalidInput => Failure {
            exit: report::EXIT_USAGE,
            ..f
        },
        _ => f,
    }
}

fn timeout(secs: Option<f64>) -> Option<Duration> {
    secs.map(Duration::from_secs_f64)
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
                cfg.apply_file(&f).map_err(Failure::usage)?;
            }
            if let Some(n) = buses {
                cfg.kernel.buses = n;
            }
            report::check_socket_path(&cfg.socket)?;
            cfg.check().map_err(Failure::usage)?;
            busbar_daemon::run_daemon(cfg).map_err(daemon_failed)?;
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
            let data = data.read().map_err(Failure::plain)?;
            let size = name.len() + data.len();
            let msg = Outgoing::announcement(&name, data).with_flags(flags);
            let id = if all_or_wait {
                ep.send_wait(msg, timeout(secs))
            } else {
                ep.send(msg)
            }
            .map_err(|e| send_failed(&bus, format!("send {name}"), size, e))?;
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
            let data = data.read().map_err(Failure::plain)?;
            let bus = connect(&target)?;
            let ep = bus.open().map_err(fail("open"))?;
            let size = name.len() + data.len();
            let reply = ep
                .call(&name, data, timeout(secs))
                .map_err(|e| send_failed(&bus, format!("call {name}"), size, e))?;
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
                report::say(&format!(
                    "busbar: call {name}: no real reply: the bus answered {} (from endpoint {}): {}",
                    reply.name,
                    reply.from,
                    synthetic_meaning(&reply.name)
                ));
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
            report::say(&format!("busbar: reply {name}: {why}"));
            report::say(&format!(
                "busbar: reply {name}: stopped without answering that request; the bus answers \
                 its caller $.KBUS.Replier.Ignored"
            ));
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
                print_text(&format::stats_table(&s, &q))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Names { target, json } => {
            let bus = connect(&target)?;
            let b = bus.list_bindings().map_err(fail("list bindings"))?;
            if json {
                print_line(&names::names_json(&b).to_string())?;
            } else {
                print_text(&names::names_table(&b))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kbus {
            socket,
            program,
            args,
        } => {
            // Returns only if the program could not be run (as a shell: 127).
            report::say(&format!(
                "busbar kbus: {}",
                kbus::exec(socket.as_deref(), &program, &args)
            ));
            Ok(ExitCode::from(127))
        }
        Cmd::Bench(args) => bench::run(args).map_err(Failure::plain),
        Cmd::Metrics { socket, bus } => {
            let target = Target {
                socket,
                bus: bus.unwrap_or(0),
            };
            let b = connect(&target)?;
            let text = busbar_daemon::metrics::render(&b, bus).map_err(fail("metrics"))?;
            print_text(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Completions { shell } => {
            generate::completions(<Cli as clap::CommandFactory>::command(), shell)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            for p in generate::man_pages(<Cli as clap::CommandFactory>::command(), &dir)? {
                print_line(&p.display().to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
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
        Err(f) => f.report(),
    }
}
