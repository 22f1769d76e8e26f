//! Wake-ups: turning the kernel's "endpoint readable" reports into answers
//! to parked waits, or into `Wake` frames (at most one per endpoint between
//! two of its requests). A wake-up costs O(waits parked on that endpoint).

use std::collections::VecDeque;

use busbar_kernel::{BusId, EndpointId, Nanos, OpCode, Response};
use busbar_wire::{FLAG_READABLE, WAKE, emit_frame, emit_response, is_empty_result};

use crate::conn::State;
use crate::session::Server;

impl Server {
    /// Handles the kernel's wake-ups: parked requests of a woken endpoint are
    /// retried; an endpoint with none gets a `Wake` frame (at most one
    /// between two of its requests). Retries can wake others in turn, so this
    /// runs until nothing is left.
    pub(crate) fn deliver_wakes(&mut self, except: Option<(BusId, EndpointId)>) {
        loop {
            let mut woken = std::mem::take(&mut self.kernel.host_mut().woken);
            if woken.is_empty() {
                self.kernel.host_mut().woken = woken;
                return;
            }
            woken.sort_unstable();
            woken.dedup();
            for &(bus, ep) in &woken {
                // Parked requests are retried even for the requester (another
                // thread of it may be waiting); only its Wake is left to the
                // response flag. A Wake still goes when no parked request
                // took what arrived (e.g. a wait for one reply, and an
                // announcement came): someone may poll the readiness fd.
                if self.retry_parked(bus, ep, None) || Some((bus, ep)) == except {
                    continue;
                }
                let Some(&c) = self.owners.get(&(bus, ep)) else {
                    continue;
                };
                let Some(conn) = self.conns.get_mut(&c) else {
                    continue;
                };
                if conn.state == State::Serving && conn.disarm(bus, ep) {
                    emit_frame(&mut conn.out.buf, WAKE, 0, 0, 0, |b| {
                        b.extend_from_slice(&bus.0.to_le_bytes());
                        b.extend_from_slice(&ep.0.to_le_bytes());
                    });
                    self.mark_dirty(c);
                }
            }
            woken.clear();
            let fresh = std::mem::replace(&mut self.kernel.host_mut().woken, woken);
            self.kernel.host_mut().woken.extend(fresh);
        }
    }

    /// Retries the parked requests of one endpoint, oldest first; answers
    /// those that find something (or fail, or are past `expired_at`).
    /// While the owner's output is full, only expired waits are answered
    /// (with the empty result); the rest wait for it to drain. Returns
    /// whether a parked request was answered with something it found.
    pub(crate) fn retry_parked(
        &mut self,
        bus: BusId,
        ep: EndpointId,
        expired_at: Option<Nanos>,
    ) -> bool {
        if !self.parked.has(bus, ep) {
            return false;
        }
        let list = self.parked.take(bus, ep);
        let mut keep = VecDeque::new();
        let mut answered = false;
        for p in list {
            let Some(conn) = self.conns.get(&p.conn) else {
                continue;
            };
            let op = p.request.code();
            let expired = expired_at.is_some_and(|now| p.deadline.is_some_and(|d| d <= now));
            let result = if self.out_full(conn) {
                if !expired {
                    if let Some(conn) = self.conns.get_mut(&p.conn) {
                        conn.stalled.insert((bus, ep));
                    }
                    keep.push_back(p);
                    continue;
                }
                Ok(empty_response(op))
            } else {
                self.kernel.dispatch(bus, ep, p.request.clone())
            };
            if is_empty_result(&result) && !expired {
                keep.push_back(p);
                continue;
            }
            answered |= !is_empty_result(&result);
            let readable = self.kernel.host().readable(bus, ep);
            if let Some(conn) = self.conns.get_mut(&p.conn) {
                conn.parked -= 1;
                conn.arm(bus, ep);
                let flags = if readable { FLAG_READABLE } else { 0 };
                let at = conn.out.buf.len();
                let mut result = result;
                let data_in_fds = crate::payload::data_as_fds(&mut result);
                emit_response(&mut conn.out.buf, p.seq, op, flags, &result);
                conn.out.note_fds(at, &result, data_in_fds);
                self.recharge(p.conn);
                self.mark_dirty(p.conn);
            }
        }
        self.parked.put_back(bus, ep, keep);
        answered
    }
}

/// The "found nothing" result of a waitable operation.
pub(crate) fn empty_response(op: OpCode) -> Response {
    match op {
        OpCode::Recv => Response::Recv(None),
        OpCode::TakeReply => Response::TakeReply(None),
        OpCode::RecvBatch => Response::RecvBatch(Vec::new()),
        _ => Response::TakeSendOutcome(None),
    }
}
