//! `/proc/kbus/bindings` and `/proc/kbus/stats`, in KBUS's formats, as
//! snapshots of every bus.

use std::fmt::Write as _;

use busbar::{Bus, BusId, Errno};

/// `/proc/kbus/bindings`: per device a `#` header line, then one line per
/// binding: `device: ksock-id pid R|L name`.
pub fn bindings(bus: &Bus) -> Result<String, Errno> {
    let buses = bus.info()?.buses;
    let mut out = String::new();
    for n in 0..buses {
        out.push_str(
            "# <device> is bound to <Ksock-ID> in <process-PID> as <Replier|Listener> for <message-name>\n",
        );
        for b in bus.bus(BusId(n)).list_bindings()? {
            let kind = if b.replier { 'R' } else { 'L' };
            let _ = writeln!(
                out,
                "{n:3}: {:8} {:8}  {kind}  {}",
                b.endpoint.0, b.pid, b.name
            );
        }
    }
    Ok(out)
}

/// `/proc/kbus/stats`: per device its counters, then per Ksock its queue
/// and debts (the fields busbar has; KBUS's partial read and write
/// positions live in each program and are not shown).
pub fn stats(bus: &Bus) -> Result<String, Errno> {
    let buses = bus.info()?.buses;
    let mut out = String::new();
    for n in 0..buses {
        let s = bus.bus(BusId(n)).stats()?;
        let _ = writeln!(
            out,
            "dev {n:2}: next msg {} unsent unbindings {}",
            s.next_serial, s.set_aside
        );
        for e in s.endpoint_stats {
            let _ = writeln!(
                out,
                "    ksock {} last msg {}:{} queue {} of {}",
                e.id.0, e.last_sent.network, e.last_sent.serial, e.queued, e.queue_limit
            );
            let _ = writeln!(
                out,
                "      outstanding requests {}, unsent replies {}",
                e.outstanding_requests, e.owed_replies
            );
        }
    }
    Ok(out)
}
