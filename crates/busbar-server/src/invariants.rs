//! The session's own consistency check, for tests, simulations and fuzzing:
//! O(all state), never called by the daemon.

use std::collections::HashMap;

use crate::session::{Server, UidUse};

impl Server {
    /// Checks the session's bookkeeping (for tests and simulations; O(all
    /// state)): parked waits counted per connection, per-uid usage equal
    /// to the sum over its connections, endpoint owners consistent, and
    /// no connection's output past the output limit plus `slack`.
    pub fn check_invariants(&self, slack: usize) -> Result<(), String> {
        let parked = self.parked.count_by_conn();
        let mut uids: HashMap<u32, UidUse> = HashMap::new();
        for (&c, conn) in &self.conns {
            let p = parked.get(&c).copied().unwrap_or(0);
            if p != conn.parked {
                return Err(format!(
                    "conn {c}: {} parked counted, {p} parked",
                    conn.parked
                ));
            }
            if conn.parked > self.limits.max_parked_per_connection {
                return Err(format!("conn {c}: {} parked", conn.parked));
            }
            if conn.out.pending() > self.limits.max_output + slack {
                return Err(format!("conn {c}: {} bytes of output", conn.out.pending()));
            }
            let u = uids.entry(conn.creds.uid).or_default();
            u.conns += 1;
            u.partial += conn.partial_charged;
            u.fds += conn.fds_charged;
            u.endpoints += conn.endpoints.len();
            u.bindings += conn.endpoints.values().map(|o| o.bindings).sum::<usize>();
            for k in conn.endpoints.keys() {
                if self.owners.get(k) != Some(&c) {
                    return Err(format!(
                        "conn {c}: endpoint {k:?} owned by {:?}",
                        self.owners.get(k)
                    ));
                }
            }
        }
        if self.owners.len()
            != self
                .conns
                .values()
                .map(|c| c.endpoints.len())
                .sum::<usize>()
        {
            return Err("owners of endpoints no connection holds".into());
        }
        if parked.keys().any(|c| !self.conns.contains_key(c)) {
            return Err("a parked wait of a closed connection".into());
        }
        for (uid, u) in &self.uids {
            let mine = uids.remove(uid).unwrap_or_default();
            let fields = |u: &UidUse| (u.conns, u.partial, u.fds, u.endpoints, u.bindings);
            if fields(u) != fields(&mine) {
                return Err(format!(
                    "uid {uid}: usage {:?}, connections add up to {:?}",
                    fields(u),
                    fields(&mine)
                ));
            }
        }
        if !uids.is_empty() {
            return Err(format!("uids in use but not counted: {:?}", uids.keys()));
        }
        Ok(())
    }
}
