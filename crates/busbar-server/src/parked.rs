//! Parked waits: requests sent with `FLAG_WAIT` that found nothing yet,
//! indexed by endpoint (retried when the endpoint is woken: O(its waits))
//! and by deadline (expired in deadline order: O(log n) each), so no
//! operation scans every parked wait.

use std::collections::{BTreeSet, HashMap, VecDeque};

use busbar_kernel::{BusId, EndpointId, Nanos, Request};

use crate::ConnId;

/// A waiting request.
#[derive(Debug)]
pub(crate) struct Parked {
    pub id: u64,
    pub conn: ConnId,
    pub seq: u32,
    pub request: Request,
    pub deadline: Option<Nanos>,
}

#[derive(Debug, Default)]
pub(crate) struct ParkedWaits {
    by_endpoint: HashMap<(BusId, EndpointId), VecDeque<Parked>, foldhash::fast::RandomState>,
    /// (deadline, id, bus, endpoint) of every wait with a deadline.
    deadlines: BTreeSet<(Nanos, u64, BusId, EndpointId)>,
    next_id: u64,
    len: usize,
}

impl ParkedWaits {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn park(
        &mut self,
        bus: BusId,
        ep: EndpointId,
        conn: ConnId,
        seq: u32,
        request: Request,
        deadline: Option<Nanos>,
    ) {
        self.next_id += 1;
        let id = self.next_id;
        if let Some(d) = deadline {
            self.deadlines.insert((d, id, bus, ep));
        }
        self.by_endpoint
            .entry((bus, ep))
            .or_default()
            .push_back(Parked {
                id,
                conn,
                seq,
                request,
                deadline,
            });
        self.len += 1;
    }

    pub fn has(&self, bus: BusId, ep: EndpointId) -> bool {
        self.by_endpoint.contains_key(&(bus, ep))
    }

    /// Takes every wait of one endpoint, oldest first.
    pub fn take(&mut self, bus: BusId, ep: EndpointId) -> VecDeque<Parked> {
        let list = self.by_endpoint.remove(&(bus, ep)).unwrap_or_default();
        self.len -= list.len();
        for p in &list {
            if let Some(d) = p.deadline {
                self.deadlines.remove(&(d, p.id, bus, ep));
            }
        }
        list
    }

    /// Puts back waits taken with [`ParkedWaits::take`] (still oldest first).
    pub fn put_back(&mut self, bus: BusId, ep: EndpointId, list: VecDeque<Parked>) {
        if list.is_empty() {
            return;
        }
        self.len += list.len();
        for p in &list {
            if let Some(d) = p.deadline {
                self.deadlines.insert((d, p.id, bus, ep));
            }
        }
        self.by_endpoint.insert((bus, ep), list);
    }

    /// Parked waits per connection (for invariant checks: O(n)).
    pub fn count_by_conn(&self) -> HashMap<ConnId, usize> {
        let mut m = HashMap::new();
        for p in self.by_endpoint.values().flatten() {
            *m.entry(p.conn).or_default() += 1;
        }
        m
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.deadlines.first().map(|d| d.0)
    }

    /// Endpoints with a wait due at `now`, each once.
    pub fn due(&self, now: Nanos) -> Vec<(BusId, EndpointId)> {
        let mut v: Vec<_> = self
            .deadlines
            .iter()
            .take_while(|d| d.0 <= now)
            .map(|d| (d.2, d.3))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}
