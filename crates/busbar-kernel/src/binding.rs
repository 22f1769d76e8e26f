//! The binding index: which listener bindings and which replier a message
//! name reaches.
//!
//! Lookups cost a handful of hash probes per word of the message name and
//! never scan unrelated bindings: exact bindings are found by the whole name,
//! `%` bindings by the name's parent, `*` bindings by each proper prefix
//! (skipped entirely while no binding of that kind exists). So a bus with
//! 100,000 bindings routes a message as fast as an empty one.
//!
//! Replier precedence: exact beats `%`, which beats `*`; among `*` repliers
//! the longest prefix wins (there is at most one replier per pattern string,
//! hence per prefix and kind).
//!
//! The last listener lookup is kept until a listener binding changes: a
//! sender repeating a name (the common case) costs one comparison of the
//! name, no hashing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::name::{PatternKind, any_words_prefixes, parent};
use crate::{EndpointId, Hasher};

/// Identifies one binding for its whole life (never reused on a bus).
pub(crate) type BindingId = u64;

/// The "cause" of a monitor's copy: not a binding, and not charged to the
/// sender's quota (a monitor can never make a send fail).
pub(crate) const MONITOR_COPY: BindingId = BindingId::MAX;

/// A binding and the endpoint it delivers to (what routing needs, without a
/// second lookup).
pub(crate) type Target = (BindingId, EndpointId);

/// One binding of an endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    /// The endpoint that bound.
    pub endpoint: EndpointId,
    /// The pattern as bound (`$.a.*`).
    pub pattern: Arc<str>,
    /// The pattern without its wildcard word (`$.a`), or the whole name.
    pub prefix: Arc<str>,
    /// Exact, `%` or `*`.
    pub kind: PatternKind,
    /// Replier or listener.
    pub replier: bool,
}

fn slot(kind: PatternKind) -> usize {
    match kind {
        PatternKind::Exact => 0,
        PatternKind::OneWord => 1,
        PatternKind::AnyWords => 2,
    }
}

/// The bindings of one bus, indexed for routing.
#[derive(Debug)]
pub(crate) struct BindingIndex {
    bindings: HashMap<BindingId, Binding, Hasher>,
    /// Every binding id, in bind order (for listing, page by page).
    order: BTreeSet<BindingId>,
    next_id: BindingId,
    /// Listener bindings by kind, then prefix; in binding order.
    listeners: [HashMap<Arc<str>, Vec<Target>, Hasher>; 3],
    /// Replier bindings by kind, then prefix (at most one each).
    repliers: [HashMap<Arc<str>, Target, Hasher>; 3],
    hasher: Hasher,
    /// The name of the last listener lookup (`None`: none valid), and what
    /// it found.
    last_name: Option<Arc<str>>,
    last_listeners: Vec<Target>,
}

impl BindingIndex {
    pub(crate) fn new(hasher: &Hasher) -> Self {
        let h = || hasher.clone();
        Self {
            bindings: HashMap::with_hasher(h()),
            order: BTreeSet::new(),
            next_id: 1,
            listeners: [(); 3].map(|_| HashMap::with_hasher(h())),
            repliers: [(); 3].map(|_| HashMap::with_hasher(h())),
            hasher: h(),
            last_name: None,
            last_listeners: Vec::new(),
        }
    }

    pub(crate) fn get(&self, id: BindingId) -> Option<&Binding> {
        self.bindings.get(&id)
    }

    /// The bindings made after binding `after`, oldest first.
    pub(crate) fn after(&self, after: BindingId) -> impl Iterator<Item = (BindingId, &Binding)> {
        self.order
            .range(after.saturating_add(1)..)
            .filter_map(|&id| self.bindings.get(&id).map(|b| (id, b)))
    }

    pub(crate) fn len(&self) -> usize {
        self.bindings.len()
    }

    pub(crate) fn replier_count(&self) -> usize {
        self.repliers.iter().map(HashMap::len).sum()
    }

    /// The replier binding for exactly this pattern, if any.
    pub(crate) fn replier_for_pattern(&self, kind: PatternKind, prefix: &str) -> Option<Target> {
        self.repliers[slot(kind)].get(prefix).copied()
    }

    /// Every replier binding, in no particular order.
    pub(crate) fn replier_bindings(&self) -> impl Iterator<Item = &Binding> {
        self.repliers
            .iter()
            .flat_map(|m| m.values())
            .filter_map(|(id, _)| self.bindings.get(id))
    }

    /// Adds a binding. The caller has checked replier uniqueness.
    pub(crate) fn insert(&mut self, binding: Binding) -> BindingId {
        let id = self.next_id;
        self.next_id += 1;
        let s = slot(binding.kind);
        let target = (id, binding.endpoint);
        if binding.replier {
            let old = self.repliers[s].insert(binding.prefix.clone(), target);
            debug_assert!(old.is_none(), "replier uniqueness checked by caller");
        } else {
            self.listeners[s]
                .entry(binding.prefix.clone())
                .or_default()
                .push(target);
            self.last_name = None;
        }
        self.bindings.insert(id, binding);
        self.order.insert(id);
        id
    }

    /// Removes a binding.
    pub(crate) fn remove(&mut self, id: BindingId) -> Option<Binding> {
        let b = self.bindings.remove(&id)?;
        self.order.remove(&id);
        let s = slot(b.kind);
        if b.replier {
            self.repliers[s].remove(&*b.prefix);
        } else if let Some(v) = self.listeners[s].get_mut(&*b.prefix) {
            self.last_name = None;
            v.retain(|&(x, _)| x != id);
            if v.is_empty() {
                self.listeners[s].remove(&*b.prefix);
            }
        }
        Some(b)
    }

    /// Removes many bindings at once (an endpoint closing): one pass over
    /// each listener list touched, so O(bindings removed + targets of the
    /// prefixes touched) however many of them share a prefix. Returns the
    /// removed bindings in the order of `ids`.
    pub(crate) fn remove_many(&mut self, ids: &[BindingId]) -> Vec<Binding> {
        let mut removed = Vec::with_capacity(ids.len());
        let mut touched: HashSet<(usize, Arc<str>), Hasher> =
            HashSet::with_hasher(self.hasher.clone());
        for &id in ids {
            let Some(b) = self.bindings.remove(&id) else {
                continue;
            };
            self.order.remove(&id);
            let s = slot(b.kind);
            if b.replier {
                self.repliers[s].remove(&*b.prefix);
            } else {
                touched.insert((s, b.prefix.clone()));
            }
            removed.push(b);
        }
        if !touched.is_empty() {
            self.last_name = None;
        }
        let mut gone: HashSet<BindingId, Hasher> = HashSet::with_hasher(self.hasher.clone());
        gone.extend(ids.iter().copied());
        for (s, prefix) in touched {
            if let Some(v) = self.listeners[s].get_mut(&*prefix) {
                v.retain(|(x, _)| !gone.contains(x));
                if v.is_empty() {
                    self.listeners[s].remove(&*prefix);
                }
            }
        }
        removed
    }

    /// The replier that a request to `name` reaches.
    pub(crate) fn replier(&self, name: &str) -> Option<Target> {
        if let Some(&id) = self.repliers[0].get(name) {
            return Some(id);
        }
        if !self.repliers[1].is_empty()
            && let Some(&id) = self.repliers[1].get(parent(name))
        {
            return Some(id);
        }
        if !self.repliers[2].is_empty() {
            for p in any_words_prefixes(name) {
                if let Some(&id) = self.repliers[2].get(p) {
                    return Some(id);
                }
            }
        }
        None
    }

    /// The replier that a request to `name` reaches under KBUS's rule:
    /// among `*` repliers the most recently bound wins, whatever its prefix
    /// (exact still beats `%`, which beats `*`).
    pub(crate) fn replier_most_recent(&self, name: &str) -> Option<Target> {
        if let Some(&id) = self.repliers[0].get(name) {
            return Some(id);
        }
        if !self.repliers[1].is_empty()
            && let Some(&id) = self.repliers[1].get(parent(name))
        {
            return Some(id);
        }
        if self.repliers[2].is_empty() {
            return None;
        }
        any_words_prefixes(name)
            .filter_map(|p| self.repliers[2].get(p).copied())
            .max_by_key(|&(id, _)| id)
    }

    /// Every listener binding that matches `name`, in kind order (exact,
    /// `%`, `*` by prefix length), each kind in binding order.
    pub(crate) fn listeners(&mut self, name: &Arc<str>) -> &[Target] {
        let same = self
            .last_name
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, name) || **l == **name);
        if !same {
            let out = &mut self.last_listeners;
            out.clear();
            if let Some(v) = self.listeners[0].get(&**name) {
                out.extend_from_slice(v);
            }
            if !self.listeners[1].is_empty()
                && let Some(v) = self.listeners[1].get(parent(name))
            {
                out.extend_from_slice(v);
            }
            if !self.listeners[2].is_empty() {
                for p in any_words_prefixes(name) {
                    if let Some(v) = self.listeners[2].get(p) {
                        out.extend_from_slice(v);
                    }
                }
            }
            self.last_name = Some(name.clone());
        }
        &self.last_listeners
    }
}
