//! Monitors: endpoints that get a copy of everything queued on the bus, in the
//! order they asked, except messages to nodes and node notices (those reach
//! only their destinations). A copy never asks for a reply. It is charged
//! to the monitor alone, never to the sender's quota: a monitor whose queue
//! is full, or whose copies would pass the bus quota's bytes or fds, loses
//! the copy (counted and reported like any loss) and never blocks or fails
//! a send. (The daemon lets only privileged clients monitor.)
//! copy_to_monitors: O(monitors); set_monitor: O(monitors) to switch off.

use std::mem;

use crate::{EndpointId, Errno, Flags, Host, Message};

use super::Bus;
use super::deliver::push_into;
use super::quota::{fd_count, size_of_message};
use crate::binding::MONITOR_COPY;

impl Bus {
    /// Gives every monitor its copy of `msg` (or counts it lost if full).
    pub(super) fn copy_to_monitors<H: Host>(&mut self, host: &mut H, msg: &Message) {
        if self.monitors.is_empty() {
            return;
        }
        let bus = self.id;
        let size = size_of_message(msg);
        let fds = u64::from(fd_count(msg));
        let q = self.quota;
        for &id in &self.monitors {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            let within_quota =
                ep.queued_bytes + size <= q.bytes && ep.monitor_fds + fds <= u64::from(q.fds);
            if ep.has_room() && within_quota {
                let mut m = msg.clone();
                m.flags = m.flags.without(Flags::WANT_YOU_TO_REPLY);
                let cause = Some(MONITOR_COPY);
                push_into(ep, &mut self.usage, host, (bus, id), m, cause, false);
            } else {
                ep.lost_unreported += 1;
                ep.lost_total += 1;
            }
        }
    }

    pub(crate) fn set_monitor<H: Host>(
        &mut self,
        _: &mut H,
        id: EndpointId,
        on: bool,
    ) -> Result<bool, Errno> {
        let ep = self.ep_mut(id)?;
        let was = mem::replace(&mut ep.monitor, on);
        if on && !was {
            self.monitors.push(id);
        } else if !on && was {
            self.monitors.retain(|&m| m != id);
        }
        Ok(was)
    }
}
