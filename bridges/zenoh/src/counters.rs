//! What a bridge has done, counted: logged when it stops and with every
//! warning about bad input or loss, so an operator can see it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The bridge's counters (all monotonic).
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl fmt::Display for Counters {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                $(
                    let v = self.$name.load(Ordering::Relaxed);
                    if v != 0 {
                        if !first {
                            write!(f, " ")?;
                        }
                        first = false;
                        write!(f, "{}={v}", stringify!($name))?;
                    }
                )*
                if first {
                    write!(f, "nothing yet")?;
                }
                Ok(())
            }
        }
    };
}

counters! {
    /// Local announcements put on Zenoh.
    published,
    /// Remote announcements sent on the local bus.
    injected,
    /// Remote announcements seen twice (overlapping subscriptions) and dropped.
    duplicates,
    /// Samples or queries that were not valid bridged messages, dropped.
    bad_input,
    /// Local messages that cannot cross (they carry fds or handles).
    not_bridgeable,
    /// Local messages the bridge's own queue had no room for.
    lost_local,
    /// Remote announcements the local bus refused.
    inject_failed,
    /// Local requests sent to a remote bridge.
    requests_out,
    /// Remote requests sent to a local replier.
    requests_in,
    /// Replies from remote repliers given to local requesters.
    replies_in,
    /// Replies from local repliers returned to remote requesters.
    replies_out,
    /// Replies the bridge made up (`$.KBUS.Replier.Disappeared`, remote errors).
    synthetic_replies,
    /// Replier conflicts seen (a pattern served on two buses).
    conflicts,
}

impl Counters {
    /// Adds one to `counter` and returns the new value.
    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Should the `n`th occurrence of something be logged? The first ten, then
/// powers of two: a flood cannot flood the log.
pub fn worth_logging(n: u64) -> bool {
    n <= 10 || n.is_power_of_two()
}
