//! The bus's own counters (metrics): sends accepted and refused by errno,
//! synthetic messages by name, and what closed endpoints had delivered and
//! lost (open endpoints keep their own). Plain integers: counting costs an
//! add on paths that already touch the bus.

use std::sync::Arc;

use crate::message::synthetic;
use crate::{BusCounters, Errno, ErrnoCount, NameCount};

/// The synthetic names counted one by one; others count as the last.
const SYNTHETIC: [&str; 9] = [
    synthetic::GONE_AWAY,
    synthetic::IGNORED,
    synthetic::UNBOUND,
    synthetic::DISAPPEARED,
    synthetic::ERROR_SENDING,
    synthetic::REPLIER_BIND_EVENT,
    synthetic::UNBIND_EVENTS_LOST,
    synthetic::NODE_DESTROYED,
    synthetic::NODE_RELEASED,
];

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub sent: u64,
    /// By errno number, few distinct ones: a short list.
    refused: Vec<ErrnoCount>,
    synthetic: [u64; SYNTHETIC.len() + 1],
    /// Delivered to, and lost by, endpoints that have closed.
    pub closed_delivered: u64,
    pub closed_lost: u64,
}

impl Counters {
    pub(super) fn refuse(&mut self, e: Errno) {
        let errno = e.number();
        match self.refused.iter_mut().find(|c| c.errno == errno) {
            Some(c) => c.count += 1,
            None => self.refused.push(ErrnoCount { errno, count: 1 }),
        }
    }

    pub(super) fn synthetic(&mut self, name: &str) {
        let i = SYNTHETIC
            .iter()
            .position(|n| *n == name)
            .unwrap_or(SYNTHETIC.len());
        self.synthetic[i] += 1;
    }

    /// The public view, with the open endpoints' `delivered` and `lost`.
    pub(super) fn snapshot(&self, open_delivered: u64, open_lost: u64) -> BusCounters {
        let mut synthetic: Vec<NameCount> = SYNTHETIC
            .iter()
            .zip(&self.synthetic)
            .map(|(name, &count)| NameCount {
                name: Arc::from(*name),
                count,
            })
            .collect();
        synthetic.push(NameCount {
            name: Arc::from("other"),
            count: self.synthetic[SYNTHETIC.len()],
        });
        let mut refused = self.refused.clone();
        refused.sort_unstable_by_key(|c| c.errno);
        BusCounters {
            sent: self.sent,
            delivered: self.closed_delivered + open_delivered,
            lost: self.closed_lost + open_lost,
            synthetic,
            refused,
        }
    }
}
