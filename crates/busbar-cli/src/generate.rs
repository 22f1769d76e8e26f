//! `busbar completions SHELL` and `busbar man DIR`: shell completions and
//! manual pages, generated from the command-line definition itself so they
//! always match it (clap_complete, clap_mangen).

use std::path::Path;

use clap::Command;
use clap_complete::Shell;

use crate::report::{Failure, print_text};

/// Writes the completion script for `shell` to stdout.
pub fn completions(mut cmd: Command, shell: Shell) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "busbar", &mut out);
    print_text(&String::from_utf8_lossy(&out))
}

/// Writes `busbar.1` and `busbar-COMMAND.1` for each visible command into
/// `dir` (created if missing); returns the files written.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<Vec<std::path::PathBuf>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::plain(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    let mut write = |name: String, page: Command| -> Result<(), Failure> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut buf)
            .map_err(|e| Failure::plain(format!("cannot render {name}: {e}")))?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf)
            .map_err(|e| Failure::plain(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
        Ok(())
    };
    let cmd = cmd.name("busbar");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("busbar-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    write("busbar".into(), cmd)?;
    Ok(written)
}
