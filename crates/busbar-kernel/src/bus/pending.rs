//! `ALL_OR_WAIT` sends that found a full queue: at most one per endpoint, kept
//! in the order they went pending and retried in that order after every
//! operation on the bus (O(pending × send)). A finished one leaves its outcome
//! to take and makes the endpoint readable; a failed request gets a synthetic
//! reply, an expired one (`ETIMEDOUT`) was never sent and gets none.
//! next_deadline and expire: O(pending).

use std::mem;

use crate::endpoint::{Pending, SendState};
use crate::message::synthetic;
use crate::{EndpointId, Errno, Host, Nanos, SendOutcome};

use super::Bus;

impl Bus {
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn discard_send<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        let SendState::Pending(p) = mem::take(&mut ep.send) else {
            // Idle or Done: put back what was there.
            return Ok(false);
        };
        ep.outstanding.remove(&p.id);
        self.pending.retain(|&e| e != id);
        self.update_readiness(host, id);
        Ok(true)
    }

    pub(crate) fn take_send_outcome<H: Host>(
        &mut self,
        host: &mut H,
        id: EndpointId,
        _: (),
    ) -> Result<Option<SendOutcome>, Errno> {
        let ep = self.ep_mut(id)?;
        let out = match mem::take(&mut ep.send) {
            SendState::Done(o) => Some(o),
            other => {
                ep.send = other;
                None
            }
        };
        self.update_readiness(host, id);
        Ok(out)
    }

    /// Retries every pending send, oldest first. Called after every
    /// operation while any send is pending, so no chance of room is missed.
    pub(crate) fn retry_pending<H: Host>(&mut self, host: &mut H) {
        for _ in 0..self.pending.len() {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            let SendState::Pending(p) = mem::take(&mut ep.send) else {
                continue;
            };
            let creds = ep.creds;
            match self.route(host, id, creds, &p.msg, p.id, true) {
                Ok(()) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.sent += 1;
                    }
                    self.finish_send(
                        host,
                        id,
                        SendOutcome {
                            id: p.id,
                            result: Ok(()),
                        },
                    );
                }
                Err(Errno::EAGAIN) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.send = SendState::Pending(p);
                    }
                    self.pending.push_back(id);
                }
                Err(e) => self.fail_pending(host, id, p, e),
            }
        }
    }

    fn fail_pending<H: Host>(&mut self, host: &mut H, id: EndpointId, p: Pending, e: Errno) {
        if p.msg.is_request() {
            let name = if e == Errno::EADDRNOTAVAIL {
                synthetic::DISAPPEARED
            } else {
                synthetic::ERROR_SENDING
            };
            self.synthetic_reply(host, name, EndpointId::BUS, id, p.id);
        }
        self.finish_send(
            host,
            id,
            SendOutcome {
                id: p.id,
                result: Err(e),
            },
        );
    }

    fn finish_send<H: Host>(&mut self, host: &mut H, id: EndpointId, outcome: SendOutcome) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.send = SendState::Done(outcome);
            ep.readable = true;
            host.wake(self.id, id, true);
        }
    }

    /// The earliest deadline of a pending send.
    pub(crate) fn next_deadline(&self) -> Option<Nanos> {
        self.pending
            .iter()
            .filter_map(|id| match &self.endpoints.get(id)?.send {
                SendState::Pending(p) => p.deadline,
                _ => None,
            })
            .min()
    }

    /// Ends pending sends whose deadline has passed (outcome `ETIMEDOUT`;
    /// the message was never sent, so it gets no reply).
    pub(crate) fn expire<H: Host>(&mut self, host: &mut H, now: Nanos) {
        for _ in 0..self.pending.len() {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            match mem::take(&mut ep.send) {
                SendState::Pending(p) if p.deadline.is_some_and(|d| d <= now) => {
                    ep.outstanding.remove(&p.id);
                    self.finish_send(
                        host,
                        id,
                        SendOutcome {
                            id: p.id,
                            result: Err(Errno::ETIMEDOUT),
                        },
                    );
                }
                other => {
                    ep.send = other;
                    self.pending.push_back(id);
                }
            }
        }
    }
}
