//! The conformance suite (`busbar-conformance`) on the in-process transport.

busbar_conformance::conformance_tests!(busbar::Bus::in_process);
