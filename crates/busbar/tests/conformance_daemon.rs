//! The conformance suite on the daemon transport: every case runs against
//! its own real daemon (a `busbar_daemon::Daemon` in a thread of this test
//! process, on a unique socket), stopped when the case drops its last handle.

mod support;

/// A fresh bus on a fresh daemon (so a fresh kernel, as the suite expects).
fn make() -> busbar::Bus {
    support::daemon_bus()
}

busbar_conformance::conformance_tests!(make);
