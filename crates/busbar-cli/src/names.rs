//! `busbar names`: every binding on a bus, with who holds it (like
//! `busctl list`).

use busbar::BindingInfo;
use serde_json::{Value, json};

/// The command name of a process (`/proc/PID/comm`), if it can be read.
fn command_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

fn kind(b: &BindingInfo) -> &'static str {
    if b.replier { "replier" } else { "listener" }
}

/// One JSON array: name, kind, endpoint, pid, uid, command.
pub fn names_json(bindings: &[BindingInfo]) -> Value {
    Value::Array(
        bindings
            .iter()
            .map(|b| {
                json!({
                    "name": &*b.name,
                    "kind": kind(b),
                    "endpoint": b.endpoint.0,
                    "pid": b.pid,
                    "uid": b.uid,
                    "command": command_of(b.pid),
                })
            })
            .collect(),
    )
}

/// A table, one binding per line, sorted by name then endpoint.
pub fn names_table(bindings: &[BindingInfo]) -> String {
    let mut rows: Vec<&BindingInfo> = bindings.iter().collect();
    rows.sort_by(|a, b| (&a.name, a.endpoint).cmp(&(&b.name, b.endpoint)));
    let width = rows.iter().map(|b| b.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:width$}  {:8}  {:>8}  {:>8}  {:>6}  COMMAND\n",
        "NAME", "KIND", "ENDPOINT", "PID", "UID"
    );
    for b in rows {
        out += &format!(
            "{:width$}  {:8}  {:>8}  {:>8}  {:>6}  {}\n",
            b.name,
            kind(b),
            b.endpoint.0,
            b.pid,
            b.uid,
            command_of(b.pid).unwrap_or_else(|| "-".into())
        );
    }
    out
}
