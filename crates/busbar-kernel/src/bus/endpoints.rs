//! The endpoints of one bus, by id.
//!
//! Ids are handed out in order and not reused until the 32-bit counter
//! wraps, so the first [`DIRECT`] ids index a table directly: a bus that
//! has opened fewer endpoints than that (any in-process bus, a young daemon)
//! finds an endpoint without hashing, on every send and receive. Later ids
//! are hashed. The direct table grows only to the highest small id opened
//! (at most [`DIRECT`] pointers).

use std::collections::HashMap;

use crate::endpoint::Endpoint;
use crate::{EndpointId, Hasher};

/// Ids below this are found by index.
const DIRECT: usize = 4096;

#[derive(Debug)]
pub(crate) struct EndpointTable {
    direct: Vec<Option<Box<Endpoint>>>,
    hashed: HashMap<EndpointId, Endpoint, Hasher>,
    /// Endpoints in `direct`.
    direct_len: usize,
}

impl EndpointTable {
    pub(crate) fn new(hasher: Hasher) -> Self {
        Self {
            direct: Vec::new(),
            hashed: HashMap::with_hasher(hasher),
            direct_len: 0,
        }
    }

    #[inline]
    fn slot(id: EndpointId) -> Option<usize> {
        let i = id.0 as usize;
        (i < DIRECT).then_some(i)
    }

    #[inline]
    pub(crate) fn get(&self, id: &EndpointId) -> Option<&Endpoint> {
        match Self::slot(*id) {
            Some(i) => self.direct.get(i)?.as_deref(),
            None => self.hashed.get(id),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: &EndpointId) -> Option<&mut Endpoint> {
        match Self::slot(*id) {
            Some(i) => self.direct.get_mut(i)?.as_deref_mut(),
            None => self.hashed.get_mut(id),
        }
    }

    pub(crate) fn contains_key(&self, id: &EndpointId) -> bool {
        self.get(id).is_some()
    }

    /// Adds an endpoint under an id that is not in use.
    pub(crate) fn insert(&mut self, id: EndpointId, ep: Endpoint) {
        match Self::slot(id) {
            Some(i) => {
                if self.direct.len() <= i {
                    self.direct.resize_with(i + 1, || None);
                }
                debug_assert!(self.direct[i].is_none(), "ids in use are not reused");
                self.direct[i] = Some(Box::new(ep));
                self.direct_len += 1;
            }
            None => {
                self.hashed.insert(id, ep);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &EndpointId) -> Option<Endpoint> {
        match Self::slot(*id) {
            Some(i) => {
                let ep = self.direct.get_mut(i)?.take()?;
                self.direct_len -= 1;
                Some(*ep)
            }
            None => self.hashed.remove(id),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.direct_len + self.hashed.len()
    }

    /// Every endpoint id, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = EndpointId> + '_ {
        self.direct
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| EndpointId(i as u32))
            .chain(self.hashed.keys().copied())
    }

    /// Every endpoint, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.direct
            .iter()
            .filter_map(Option::as_deref)
            .chain(self.hashed.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credentials;

    fn ep(uid: u32) -> Endpoint {
        let creds = Credentials {
            pid: 1,
            uid,
            gid: 1,
        };
        Endpoint::new(creds, 10, &Hasher::with_seed(1))
    }

    /// Small ids (indexed) and large ones (hashed) behave the same.
    #[test]
    fn direct_and_hashed_ids() {
        let mut t = EndpointTable::new(Hasher::with_seed(1));
        let ids = [1, 2, DIRECT as u32 - 1, DIRECT as u32, u32::MAX];
        for (n, &i) in ids.iter().enumerate() {
            assert!(!t.contains_key(&EndpointId(i)));
            t.insert(EndpointId(i), ep(n as u32));
            assert_eq!(t.len(), n + 1);
        }
        for (n, &i) in ids.iter().enumerate() {
            assert_eq!(t.get(&EndpointId(i)).map(|e| e.creds.uid), Some(n as u32));
            t.get_mut(&EndpointId(i)).unwrap().sent = 7;
        }
        let mut keys: Vec<_> = t.keys().map(|k| k.0).collect();
        keys.sort_unstable();
        assert_eq!(keys, ids);
        assert!(t.values().all(|e| e.sent == 7));
        assert_eq!(t.remove(&EndpointId(2)).map(|e| e.creds.uid), Some(1));
        assert_eq!(
            t.remove(&EndpointId(u32::MAX)).map(|e| e.creds.uid),
            Some(4)
        );
        assert!(t.remove(&EndpointId(2)).is_none());
        assert!(t.get(&EndpointId(3)).is_none() && t.get(&EndpointId(5000)).is_none());
        assert_eq!(t.len(), 3);
    }
}
