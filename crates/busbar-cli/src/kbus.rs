//! `busbar kbus -- PROGRAM ARGS...`: runs a KBUS program with
//! `libbusbar_kbus.so` preloaded, so its `/dev/kbusN` are this daemon's
//! buses.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's file name.
pub const LIBRARY: &str = "libbusbar_kbus.so";

/// Where the preload library is: `$BUSBAR_KBUS_LIBRARY`, else beside this
/// executable (a cargo build), else `../lib/` and `../lib/busbar/` from it
/// (an installation).
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BUSBAR_KBUS_LIBRARY") {
        let p = PathBuf::from(p);
        // The loader would only warn about a missing library and run the
        // program without it: refuse instead.
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "BUSBAR_KBUS_LIBRARY names {}, which is not a file",
                p.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [
        dir.join(LIBRARY),
        dir.join("../lib").join(LIBRARY),
        dir.join("../lib/busbar").join(LIBRARY),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| {
            format!(
                "cannot find {LIBRARY} beside {} or in ../lib (build it with `cargo build \
                 --release --workspace`, or set BUSBAR_KBUS_LIBRARY to its path)",
                exe.display()
            )
        })
}

/// Replaces this process with `program args` running under the library.
/// Returns only on failure.
pub fn exec(socket: Option<&Path>, program: &str, args: &[String]) -> String {
    let lib = match find_library() {
        Ok(l) => l,
        Err(e) => return e,
    };
    // LD_PRELOAD splits its list at spaces and colons: such a path would be
    // skipped by the loader (with only a warning), and the program would
    // run without the emulation.
    if lib.to_string_lossy().contains([' ', ':']) {
        return format!(
            "the path of {LIBRARY} ({}) contains a space or a colon, which LD_PRELOAD \
             cannot hold: install it under a path without them",
            lib.display()
        );
    }
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(v) if !v.is_empty() => format!("{} {v}", lib.display()),
        _ => lib.display().to_string(),
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env("LD_PRELOAD", preload);
    if let Some(s) = socket {
        // Absolute: the program may change directory before it opens a
        // device.
        let s = std::path::absolute(s).unwrap_or_else(|_| s.to_owned());
        cmd.env("BUSBAR_SOCKET", s);
    }
    let e = cmd.exec();
    format!("cannot run {program:?}: {e}")
}
