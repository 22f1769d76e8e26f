//! How the command reports failure: what happened (naming the path or value
//! involved), the errno if there is one, and what to do about it; and the
//! exit status. Writing to a closed stdout ends the command quietly (as for
//! other Unix tools in a pipe); a closed stderr never makes it panic.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use busbar::Errno;

/// Exit status for a failed operation.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a bad command line (as clap's own errors).
pub const EXIT_USAGE: u8 = 2;

/// A failure to report.
#[derive(Debug)]
pub struct Failure {
    /// What happened, naming the path or value involved.
    pub what: String,
    /// The errno, printed after `what` with its meaning.
    pub errno: Option<Errno>,
    /// What to do about it, printed on its own line.
    pub hint: Option<String>,
    /// The exit status.
    pub exit: u8,
    /// End without a word and with status 0 (stdout was closed).
    pub quiet: bool,
}

impl Failure {
    /// An operation failed with `errno` while doing `what`.
    pub fn op(what: impl Into<String>, errno: Errno) -> Self {
        Self {
            what: what.into(),
            errno: Some(errno),
            hint: hint_for(errno),
            exit: EXIT_FAILED,
            quiet: false,
        }
    }

    /// A failure that is not an errno (the sentence says it all).
    pub fn plain(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            errno: None,
            hint: None,
            exit: EXIT_FAILED,
            quiet: false,
        }
    }

    /// A bad command line or config value (exit status 2).
    pub fn usage(what: impl Into<String>) -> Self {
        Self {
            exit: EXIT_USAGE,
            ..Self::plain(what)
        }
    }

    /// With this advice instead of the errno's general one.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The text as printed (without the `busbar: ` prefixes).
    pub fn text(&self) -> String {
        let mut s = self.what.clone();
        if let Some(e) = self.errno {
            let _ = write!(s, ": {} ({})", e.strerror(), e.name());
        }
        s
    }

    /// Prints it on stderr (if stderr is open) and gives the exit status.
    pub fn report(self) -> ExitCode {
        if self.quiet {
            return ExitCode::SUCCESS;
        }
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "busbar: {}", self.text());
        if let Some(h) = &self.hint {
            let _ = writeln!(err, "busbar: {h}");
        }
        ExitCode::from(self.exit)
    }
}

/// `busbar: ` + `what` for an operation that failed: `fail("send $.a")`.
pub fn fail(what: impl Into<String>) -> impl FnOnce(Errno) -> Failure {
    let what = what.into();
    move |errno| Failure::op(what, errno)
}

/// Advice for an errno that needs no further context.
fn hint_for(errno: Errno) -> Option<String> {
    Some(
        match errno {
            Errno::EBADMSG => {
                "a name is `$.` then words of ASCII letters and digits separated by dots \
                 (`$.sensors.temperature`); no `-`, `_`, spaces, accents or empty words; a \
                 binding may end in `.*` (any words below) or `.%` (one word below)"
            }
            Errno::ENAMETOOLONG => "a name is at most 1000 bytes",
            Errno::EADDRNOTAVAIL => {
                "nobody is the replier for that name: start one (`busbar reply NAME --exec CMD`)"
            }
            Errno::EADDRINUSE => "another endpoint is already the replier for that name",
            Errno::EDQUOT => {
                "the receiving user's quota is used up: the receivers must read their queues \
                 (see `busbar stats`), or raise quota_* in the daemon's config"
            }
            Errno::ECONNRESET | Errno::ESHUTDOWN => {
                "the daemon has gone: start it again (`busbar daemon`)"
            }
            _ => return None,
        }
        .to_string(),
    )
}

/// Writing to stdout failed: a closed pipe (`busbar listen | head -1`) ends
/// the command quietly with status 0; anything else is reported.
pub fn stdout_failed(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Failure {
            quiet: true,
            ..Failure::plain("")
        };
    }
    Failure::plain(format!("cannot write to stdout: {e}"))
}

/// Prints a line on stderr, if stderr is open (never panics).
pub fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes `text` on stdout as it is.
pub fn print_text(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_failed)
}

/// Prints one line on stdout.
pub fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(stdout_failed)
}

/// The longest socket path a Unix socket address holds (`sun_path` less
/// its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Refuses a socket path too long for a Unix socket address.
pub fn check_socket_path(path: &Path) -> Result<(), Failure> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Failure::usage(format!(
            "the socket path {} is {len} bytes; a Unix socket path is at most {MAX_SOCKET_PATH}",
            path.display()
        ))
        .hint("choose a shorter path (--socket or $BUSBAR_SOCKET)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let f = Failure::op("send $.a-b", Errno::EBADMSG);
        assert_eq!(f.text(), "send $.a-b: invalid message name (EBADMSG)");
        assert!(f.hint.unwrap().contains("letters and digits"));
        assert_eq!(Failure::usage("bad").exit, EXIT_USAGE);
        let long = Path::new("/tmp").join("x".repeat(200));
        assert_eq!(check_socket_path(&long).unwrap_err().exit, EXIT_USAGE);
        assert!(stdout_failed(io::Error::from(io::ErrorKind::BrokenPipe)).quiet);
    }
}
