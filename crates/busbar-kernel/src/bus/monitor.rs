//! Monitors: endpoints that get a copy of everything queued on the bus, in the
//! order they asked. A copy never asks for a reply; a full monitor loses it
//! (counted and reported like any loss) and never blocks or fails a send.
//! copy_to_monitors: O(monitors); set_monitor: O(monitors) to switch off.

use std::mem;

use crate::{EndpointId, Errno, Flags, Host, Message};

use super::Bus;
use super::route::push_into;

impl Bus {
    /// Gives every monitor its copy of `msg` (or counts it lost if full).
    pub(super) fn copy_to_monitors<H: Host>(&mut self, host: &mut H, msg: &Message) {
        if self.monitors.is_empty() {
            return;
        }
        let bus = self.id;
        for &id in &self.monitors {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            if ep.has_room() {
                let mut m = msg.clone();
                m.flags = m.flags.without(Flags::WANT_YOU_TO_REPLY);
                push_into(ep, &mut self.usage, host, (bus, id), m, None, false);
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
