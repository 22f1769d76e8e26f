//! Message names shared instead of copied: a thread that sends by name
//! (`announce`, `request`, `call`) mostly repeats a few names, so each
//! thread keeps its last few as `Arc<str>`s and hands out a clone when the
//! same name comes again (one reference-count increment instead of an
//! allocation and a copy; the bus also knows a name it has checked before).
//!
//! The cache is per thread, not per endpoint: no lock, no atomic beyond the
//! clone itself. It holds at most [`SLOTS`] names per thread.

use std::cell::RefCell;
use std::sync::Arc;

/// Names kept per thread.
const SLOTS: usize = 4;

#[derive(Default)]
struct Recent {
    names: [Option<Arc<str>>; SLOTS],
    /// The slot the next new name replaces (the oldest).
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::default();
}

/// `name` as a shared string: one this thread made before when it is the
/// same, else a new one (remembered in place of the oldest).
pub(crate) fn shared(name: &str) -> Arc<str> {
    RECENT
        .try_with(|r| {
            let mut r = r.borrow_mut();
            for n in r.names.iter().flatten() {
                if n.len() == name.len() && **n == *name {
                    return n.clone();
                }
            }
            let n: Arc<str> = name.into();
            let i = r.next;
            r.names[i] = Some(n.clone());
            r.next = (i + 1) % SLOTS;
            n
        })
        // The thread is exiting (its cache is gone): just make one.
        .unwrap_or_else(|_| name.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_share_and_new_names_replace_the_oldest() {
        let a = shared("$.a");
        assert!(Arc::ptr_eq(&a, &shared("$.a")));
        let others: Vec<_> = (0..SLOTS).map(|i| shared(&format!("$.n{i}"))).collect();
        // "$.a" was the oldest and is gone; the rest are still shared.
        assert!(!Arc::ptr_eq(&a, &shared("$.a")));
        assert_eq!(&*shared("$.a"), "$.a");
        assert!(Arc::ptr_eq(
            &others[SLOTS - 1],
            &shared(&format!("$.n{}", SLOTS - 1))
        ));
        // Equal length, other bytes: not confused.
        assert_eq!(&*shared("$.b"), "$.b");
    }
}
