//! # busbar-conformance
//!
//! busbar's conformance suite: every rule of `docs/semantics.md`, written
//! once against the public `busbar` API and run on every transport.
//!
//! Each case is a `pub fn case(make: &dyn Fn() -> busbar::Bus)`; `make` must
//! return a bus (id 0) on a fresh kernel with default limits each time it is
//! called. A transport instantiates the whole suite with one line in a test
//! file:
//!
//! ```ignore
//! busbar_conformance::conformance_tests!(busbar::Bus::in_process);
//! ```
//!
//! which expands to one `#[test]` per case (`names::valid`,
//! `full_queues::all_or_wait_recv`, ...). The list of cases lives in one
//! place, [`for_each_case!`]: adding a case there adds the test on every
//! transport.
//!
//! Cases synchronise only through the bus itself (a blocking call in a
//! second thread that is joined, or polling state through the API); timeouts
//! are failure guards, never synchronisation.

pub mod batch;
pub mod bind_events;
pub mod bindings;
pub mod blocking;
pub mod buses;
pub mod capabilities;
pub mod close;
pub mod errors;
pub mod full_queues;
pub mod guarantee;
pub mod kbus_compat;
pub mod message_size;
pub mod messages;
pub mod names;
pub mod only_once;
pub mod order;
pub mod queue_limit;
pub mod readiness;
pub mod replies;
pub mod reservation;
pub mod stats;
pub mod unbind;
mod util;

#[doc(hidden)]
pub use busbar as __busbar;

/// A conformance case: runs against buses made by the factory.
pub type Case = fn(&dyn Fn() -> busbar::Bus);

/// The one list of cases. `for_each_case!(path::to::callback)` expands to
/// `path::to::callback! { module { case, ... } ... }`.
#[macro_export]
macro_rules! for_each_case {
    ($($callback:tt)+) => {
        $($callback)+ ! {
            names {
                valid, case_sensitive, too_long, malformed, repeated_names_still_checked,
                wildcards_match, bad_wildcards
            }
            bindings {
                listener_copies, announcement_nobody_listening, replier_unique,
                replier_bind_event_name_reserved, replier_precedence, longest_star_wins,
                percent_is_one_word, find_replier, several_bindings_per_endpoint,
                changes_between_repeated_sends
            }
            unbind {
                most_recent, kind_and_owner, removes_only_caused, replier_unbound_replies,
                taken_request_still_answerable, loss_report_moves, stops_delivery
            }
            messages {
                announcement_fields, request_copies, request_needs_replier, reply_delivery,
                bus_sets_flags, stateful_request, stateful_request_errors,
                stateful_from_stateful, forwarded_id, forwarded_keeps_synthetic, data_is_opaque
            }
            replies {
                only_designated_replier, only_once, to_must_be_requester, unknown_request,
                requester_gone, reply_flags_honoured
            }
            order {
                serials_start_at_one, serial_shared_with_synthetic, failed_sends_take_no_serial,
                urgent_lifo_at_front, total_order, total_order_threads
            }
            guarantee {
                gone_away, ignored, ignored_in_id_order, unbound, disappeared, error_sending,
                stateful_gone_away, stateful_ignored, stateful_unbound, exactly_one,
                pending_reply_no_synthetic, forwarded_ids_never_collide
            }
            reservation { enolck, enolck_every_mode, reserved_slot_counts, reply_always_fits }
            full_queues {
                listener_skipped_lost, replier_full_ebusy, all_or_fail, all_or_fail_replier,
                planned_copies_count, all_or_wait_recv, all_or_wait_unbind,
                all_or_wait_close, all_or_wait_raise_limit, all_or_wait_request,
                pending_oldest_first, discard_send, send_wait_completes, send_wait_adds_all_or_wait, send_wait_timeout,
                ealready, outcome_forgotten
            }
            only_once { off_by_default, one_copy, replier_copy_preferred, requester_copy_preferred }
            bind_events {
                off_by_default, switch_returns_previous, bind_and_unbind_events,
                listener_full_eagain, errors_checked_first, dump_on_switch, dump_ebusy,
                set_aside_on_close, set_aside_order, listener_with_room_direct,
                set_aside_overflow, unbind_listener_drops_set_aside
            }
            message_size { default_limit, set_limit, out_of_range }
            queue_limit { default_and_set, zero_einval, lowering_discards_nothing }
            close {
                order, pending_send_dropped, outstanding_forgotten, bindings_removed,
                ids_never_reused, set_aside_dropped
            }
            buses { create_bus, independent, no_such_bus }
            readiness {
                messages, send_outcome, set_aside_is_readable, recv_timeout, poll_while_sending,
                poll_concurrent_senders, poll_replier, poll_while_waiting_reply
            }
            blocking {
                recv_wakes, call_returns_reply, call_leaves_others_queued, call_no_replier,
                call_gone_away, call_ignored, call_timeout, wait_reply, take_reply,
                reply_then_recv, serve, serve_reply_fails, try_serve_handler_fails
            }
            batch { recv_batch, recv_batch_einval, recv_batch_byte_budget, send_batch, send_batch_pending }
            capabilities {
                create_carry_and_send, coalesce_count_and_pin, multicast_is_atomic_and_ordered,
                destroy, release_notice, close, quota_messages_and_bytes, quota_handles, fds
            }
            stats { endpoint_fields, bus_fields, counters, sent_and_received, credentials }
            kbus_compat {
                failed_sends_take_a_serial, forwarded_synthetic_cleared, entire_form_size,
                most_recent_wildcard_replier,
                anyone_may_answer_a_kbus_requester, list_bindings, bus_info, one_unbind_events_lost
            }
            errors {
                numbers, create_bus, open, bind, unbind, send, take_reply, set_queue_limit,
                set_replier_bind_events, set_max_message_size, find_replier, bus_stats
            }
        }
    };
}

/// Expands to one `#[test]` per case, each calling it with buses from
/// `$make` (an expression callable as `Fn() -> busbar::Bus`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        fn __busbar_conformance_make() -> $crate::__busbar::Bus {
            let make = $make;
            make()
        }
        $crate::for_each_case!($crate::__busbar_conformance_emit);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __busbar_conformance_emit {
    ($( $module:ident { $( $case:ident ),* $(,)? } )*) => {
        $(
            mod $module {
                $(
                    #[test]
                    fn $case() {
                        $crate::$module::$case(&super::__busbar_conformance_make)
                    }
                )*
            }
        )*
    };
}

macro_rules! list_cases {
    ($( $module:ident { $( $case:ident ),* $(,)? } )*) => {
        /// Every case with its name (`"names::valid"`), in suite order.
        pub fn all_cases() -> Vec<(&'static str, Case)> {
            vec![ $( $( (concat!(stringify!($module), "::", stringify!($case)), $module::$case as Case), )* )* ]
        }
    };
}

for_each_case!(list_cases);
