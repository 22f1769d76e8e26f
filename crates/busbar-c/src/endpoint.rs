//! Endpoints: binding, sending, receiving, settings, nodes and handles.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::time::Duration;

use busbar::{Endpoint, EndpointStats, Errno, HandleId, Outgoing};

use crate::bus::{bus_ref, busbar_bus, required};
use crate::error::guard;
use crate::message::{busbar_message, give_message, message_ref};
use crate::types::{
    busbar_endpoint_stats, busbar_msg_id, busbar_outgoing, c_slice, c_str, outgoing, put,
};

/// An open endpoint (KBUS's Ksock): one connection to a bus. Opaque.
#[derive(Debug)]
pub struct busbar_endpoint {
    ep: Endpoint,
}

fn ep_ref<'a>(p: *const busbar_endpoint) -> Result<&'a Endpoint, Errno> {
    // SAFETY: a non-NULL handle is one this library returned and the caller
    // has not closed, as the header requires.
    unsafe { p.as_ref() }.map(|e| &e.ep).ok_or(Errno::EINVAL)
}

/// -1: forever; 0: no wait; n: n ms.
fn timeout(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

pub(crate) fn c_stats(s: &EndpointStats) -> busbar_endpoint_stats {
    busbar_endpoint_stats {
        id: s.id.0,
        pid: s.pid,
        uid: s.uid,
        queued: s.queued,
        set_aside: s.set_aside,
        queue_limit: s.queue_limit,
        lost: s.lost,
        sent: s.sent,
        received: s.received,
        outstanding_requests: s.outstanding_requests,
        owed_replies: s.owed_replies,
        bindings: s.bindings,
        only_once: s.only_once,
        has_pending_send: s.pending_send.is_some(),
        pending_send: s.pending_send.unwrap_or_default().into(),
        queued_bytes: s.queued_bytes,
        handles: s.handles,
        nodes: s.nodes,
        last_sent: s.last_sent.into(),
    }
}

/// Opens an endpoint on `bus`; close it with busbar_endpoint_close().
/// Through a daemon this is a new connection (blocks for its handshake).
/// Errors: -ENOENT (no such bus), -EMFILE (a daemon limit on endpoints),
/// -ECONNREFUSED and the other errors of busbar_bus_connect, -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_endpoint_open(
    bus: *const busbar_bus,
    out: *mut *mut busbar_endpoint,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Errno::EINVAL);
        }
        let ep = bus_ref(bus)?.open()?;
        put(out, Box::into_raw(Box::new(busbar_endpoint { ep })));
        Ok(0)
    })
}

/// Closes an endpoint and frees the handle (NULL is ignored): unread
/// requests are answered `$.KBUS.Replier.GoneAway`, taken but unanswered
/// ones `$.KBUS.Replier.Ignored`, its bindings are removed. Blocks until the
/// bus has done so. Returns 0, or -ECONNRESET if the daemon was gone
/// (the handle is freed either way).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_endpoint_close(ep: *mut busbar_endpoint) -> c_int {
    if ep.is_null() {
        return 0;
    }
    // SAFETY: a handle this library returned, closed once, as the header
    // requires.
    let b = unsafe { Box::from_raw(ep) };
    guard(|| b.ep.close().map(|()| 0))
}

/// The endpoint's id, unique on its bus (0 for NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_endpoint_id(ep: *const busbar_endpoint) -> u32 {
    ep_ref(ep).map_or(0, |e| e.id().0)
}

/// Binds `pattern` (a name, or one ending in `.*` or `.%`) as a listener or
/// (`replier` true) as the replier. Errors: -EBADMSG (not a valid pattern,
/// or `$.KBUS.ReplierBindEvent` as replier), -ENAMETOOLONG, -EADDRINUSE
/// (the pattern has a replier), -EAGAIN (bind events are on and a listener
/// of them is full), -EMFILE (a daemon limit on bindings), -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bind(
    ep: *const busbar_endpoint,
    pattern: *const c_char,
    replier: bool,
) -> c_int {
    guard(|| {
        let (e, p) = (ep_ref(ep)?, c_str(pattern)?);
        if replier {
            e.bind_replier(p)?;
        } else {
            e.bind(p)?;
        }
        Ok(0)
    })
}

/// Removes the most recent binding of `pattern` of that kind, and the
/// queued messages it caused. Errors: -EINVAL (no such binding), -EBADMSG,
/// -ENAMETOOLONG, -EAGAIN.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_unbind(
    ep: *const busbar_endpoint,
    pattern: *const c_char,
    replier: bool,
) -> c_int {
    guard(|| {
        let (e, p) = (ep_ref(ep)?, c_str(pattern)?);
        if replier {
            e.unbind_replier(p)?;
        } else {
            e.unbind(p)?;
        }
        Ok(0)
    })
}

/// Stores a send's id; a send left pending (`EAGAIN`) has one too.
fn sent(
    e: &Endpoint,
    id: *mut busbar_msg_id,
    r: Result<busbar::MessageId, Errno>,
) -> Result<c_int, Errno> {
    match r {
        Ok(got) => {
            put(id, got.into());
            Ok(0)
        }
        Err(Errno::EAGAIN) => {
            if let Some(p) = e.stats().ok().and_then(|s| s.pending_send) {
                put(id, p.into());
            }
            Err(Errno::EAGAIN)
        }
        Err(err) => Err(err),
    }
}

/// Sends a message; `*id` (optional) gets its id. Does not block: with
/// `BUSBAR_ALL_OR_WAIT` and a full queue it returns -EAGAIN, `*id` gets the
/// id it will have, and the send stays pending (see
/// busbar_take_send_outcome, busbar_discard_send; for a request, its reply
/// comes once it is delivered).
/// Errors: -EBADMSG (bad or wildcard name), -ENAMETOOLONG, -EMSGSIZE,
/// -EINVAL (both ALL_OR flags; a request that is also a reply),
/// -EADDRNOTAVAIL (a request with no replier; a reply whose requester has
/// gone), -EPIPE (a stateful request whose replier changed), -ECONNREFUSED
/// (a reply this endpoint may not send), -ENOLCK (no room in our own queue
/// for a request's reply), -EBUSY (a recipient's queue is full), -EAGAIN,
/// -EALREADY (a send is already pending), -EDQUOT (a quota),
/// -ETOOMANYREFS (too many fds or handles), -EBADF (an fd not open),
/// -EPERM (a forwarded id without privilege), -ENOENT (a `to_handles`
/// handle we do not hold), -EINVAL (also: duplicate `to_handles`, a request
/// or reply sent to handles, a NULL array with a non-zero count, a NULL
/// name), -EOPNOTSUPP (through a daemon: a Unix-domain socket among the
/// fds, which the daemon refuses to pass).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_send(
    ep: *const busbar_endpoint,
    message: *const busbar_outgoing,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL message is the caller's struct, as the header requires.
        let m = unsafe { message.as_ref() }.ok_or(Errno::EINVAL)?;
        let out = outgoing(m)?;
        {
            let e = ep_ref(ep)?;
            sent(e, id, e.send(out))
        }
    })
}

/// Sends a message like busbar_send with `BUSBAR_ALL_OR_WAIT` added to its
/// flags (every recipient gets it or none does), and while a recipient's
/// queue is full waits up to `timeout_ms` for room. Blocks. Errors: those
/// of busbar_send, -EINVAL with `BUSBAR_ALL_OR_FAIL`, and -ETIMEDOUT
/// (still pending at the timeout: it is discarded).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_send_wait(
    ep: *const busbar_endpoint,
    message: *const busbar_outgoing,
    timeout_ms: c_int,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL message is the caller's struct, as the header requires.
        let m = unsafe { message.as_ref() }.ok_or(Errno::EINVAL)?;
        let out = outgoing(m)?;
        {
            let e = ep_ref(ep)?;
            sent(e, id, e.send_wait(out, timeout(timeout_ms)))
        }
    })
}

/// Sends `n` messages in order, as if by one busbar_send each, in one bus
/// operation: `results[i]` gets 0 or the negative errno of message i, and
/// `ids[i]` its id (both arrays optional). Once one goes pending (-EAGAIN)
/// the rest fail with -EALREADY. Returns how many were sent. Errors
/// (nothing sent): a message the API cannot read: -EINVAL (a NULL name or
/// array), -EBADMSG (a name not UTF-8), -ETOOMANYREFS, -EBADF (its fds).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_send_batch(
    ep: *const busbar_endpoint,
    messages: *const busbar_outgoing,
    n: usize,
    results: *mut c_int,
    ids: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        let batch = c_slice(messages, n)?
            .iter()
            .map(outgoing)
            .collect::<Result<Vec<Outgoing>, Errno>>()?;
        let mut ok = 0;
        for (i, r) in ep_ref(ep)?.send_batch(batch)?.into_iter().enumerate() {
            if !results.is_null() {
                // SAFETY: the caller's array holds `n` results.
                put(
                    unsafe { results.add(i) },
                    r.err().map_or(0, |e| -e.number()),
                );
            }
            if let (false, Ok(id)) = (ids.is_null(), r) {
                // SAFETY: the caller's array holds `n` ids.
                put(unsafe { ids.add(i) }, id.into());
            }
            ok += i32::from(r.is_ok());
        }
        Ok(ok)
    })
}

fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Errno> {
    c_slice(data, len)
}

/// Sends an announcement (to every listener of `name`). As busbar_send.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_announce(
    ep: *const busbar_endpoint,
    name: *const c_char,
    data: *const u8,
    len: usize,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        let (e, n, d) = (ep_ref(ep)?, c_str(name)?, bytes(data, len)?);
        sent(e, id, e.announce(n, d.to_vec()))
    })
}

/// Sends a request (to the replier of `name`, and its listeners); wait for
/// the reply with busbar_wait_reply or busbar_recv. As busbar_send.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_request(
    ep: *const busbar_endpoint,
    name: *const c_char,
    data: *const u8,
    len: usize,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        let (e, n, d) = (ep_ref(ep)?, c_str(name)?, bytes(data, len)?);
        sent(e, id, e.request(n, d.to_vec()))
    })
}

/// Replies to `request` (a message this endpoint received as its replier).
/// As busbar_send; -ECONNREFUSED if this endpoint may not answer it (not
/// its replier, or answered already).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_reply(
    ep: *const busbar_endpoint,
    request: *const busbar_message,
    data: *const u8,
    len: usize,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        let (e, r, d) = (ep_ref(ep)?, message_ref(request)?, bytes(data, len)?);
        sent(e, id, e.reply(r, d.to_vec()))
    })
}

/// Replies to `request`, then waits up to `timeout_ms` for the next
/// message, which `*next` gets: a replier's loop in one round trip through
/// a daemon. `*reply_result` gets 0 if the reply was sent, or its negative
/// errno (as busbar_reply: -EADDRNOTAVAIL if the requester has gone, ...;
/// `reply_result` is optional); the wait happens even if the reply failed. Blocks unless `timeout_ms`
/// is 0. Returns 0 with a message, -ETIMEDOUT (or -EAGAIN for timeout 0)
/// with none, or another negative errno for a failure of the endpoint.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_reply_then_recv(
    ep: *const busbar_endpoint,
    request: *const busbar_message,
    data: *const u8,
    len: usize,
    timeout_ms: c_int,
    reply_result: *mut c_int,
    next: *mut *mut busbar_message,
) -> c_int {
    guard(|| {
        if next.is_null() {
            return Err(Errno::EINVAL);
        }
        let (e, r, d) = (ep_ref(ep)?, message_ref(request)?, bytes(data, len)?);
        let (sent, got) = e.reply_then_recv(r, d.to_vec(), timeout(timeout_ms))?;
        put(reply_result, sent.err().map_or(0, |e| -e.number()));
        let m = got.ok_or(if timeout_ms == 0 {
            Errno::EAGAIN
        } else {
            Errno::ETIMEDOUT
        })?;
        give_message(next, m)
    })
}

/// Sends a stateful request: to the same replier endpoint as `earlier` (a
/// reply from it, or an earlier stateful request). As busbar_send; -EPIPE
/// if another endpoint now holds the name, -EADDRNOTAVAIL if none does,
/// -EINVAL if `earlier` is neither a reply nor a stateful request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_stateful_request(
    ep: *const busbar_endpoint,
    earlier: *const busbar_message,
    name: *const c_char,
    data: *const u8,
    len: usize,
    id: *mut busbar_msg_id,
) -> c_int {
    guard(|| {
        let (e, m) = (ep_ref(ep)?, message_ref(earlier)?);
        let (n, d) = (c_str(name)?, bytes(data, len)?);
        if !(m.is_reply() || m.is_stateful_request()) {
            return Err(Errno::EINVAL);
        }
        sent(e, id, e.send(Outgoing::stateful_request(m, n, d.to_vec())))
    })
}

/// Sends a request and waits up to `timeout_ms` for its reply, which
/// `*reply` gets (free it with busbar_message_free). The reply may be
/// synthetic (busbar_message_is_synthetic: the replier went away, ignored
/// it or unbound). Blocks. Errors: those of busbar_send, -ETIMEDOUT (the
/// reply will still come, into the ordinary queue: to wait for it by id,
/// send with busbar_request and use busbar_wait_reply instead).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_call(
    ep: *const busbar_endpoint,
    name: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: c_int,
    reply: *mut *mut busbar_message,
) -> c_int {
    guard(|| {
        if reply.is_null() {
            return Err(Errno::EINVAL);
        }
        let (e, n, d) = (ep_ref(ep)?, c_str(name)?, bytes(data, len)?);
        give_message(reply, e.call(n, d.to_vec(), timeout(timeout_ms))?)
    })
}

/// Takes the next message (free it with busbar_message_free), waiting up
/// to `timeout_ms` (0: don't wait). Blocks unless `timeout_ms` is 0.
/// Errors: -EAGAIN (nothing queued, timeout 0), -ETIMEDOUT, -ECONNRESET
/// (the daemon went away), -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_recv(
    ep: *const busbar_endpoint,
    timeout_ms: c_int,
    message: *mut *mut busbar_message,
) -> c_int {
    guard(|| {
        if message.is_null() {
            return Err(Errno::EINVAL);
        }
        let e = ep_ref(ep)?;
        let got = if timeout_ms == 0 {
            e.try_recv()?.ok_or(Errno::EAGAIN)?
        } else {
            e.recv_timeout(timeout(timeout_ms))?
                .ok_or(Errno::ETIMEDOUT)?
        };
        give_message(message, got)
    })
}

/// Takes up to `max` queued messages at once (one bus operation), waiting
/// up to `timeout_ms` for the first: `messages` (an array of at least `max`
/// pointers) gets them in queue order, `*count` how many; free each with
/// busbar_message_free. Stops early after 64 MiB of data. Blocks unless
/// `timeout_ms` is 0. Errors: -EAGAIN (nothing queued, timeout 0),
/// -ETIMEDOUT, -EINVAL (`max` 0, a NULL array or count).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_recv_batch(
    ep: *const busbar_endpoint,
    max: u32,
    timeout_ms: c_int,
    messages: *mut *mut busbar_message,
    count: *mut usize,
) -> c_int {
    guard(|| {
        required(messages)?;
        required(count)?;
        let e = ep_ref(ep)?;
        let got = if timeout_ms == 0 {
            e.try_recv_batch(max)?
        } else {
            e.recv_batch_timeout(max, timeout(timeout_ms))?
        };
        put(count, 0);
        if got.is_empty() {
            return Err(if timeout_ms == 0 {
                Errno::EAGAIN
            } else {
                Errno::ETIMEDOUT
            });
        }
        let n = got.len();
        for (i, m) in got.into_iter().enumerate() {
            // SAFETY: the caller's array holds at least `max` >= n pointers.
            give_message(unsafe { messages.add(i) }, m)?;
        }
        put(count, n);
        Ok(0)
    })
}

/// Waits up to `timeout_ms` for the reply to our request `request`, leaving
/// other messages queued. Errors: -EAGAIN (not there yet, timeout 0),
/// -ETIMEDOUT, -EINVAL (no such request of ours outstanding).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_wait_reply(
    ep: *const busbar_endpoint,
    request: busbar_msg_id,
    timeout_ms: c_int,
    reply: *mut *mut busbar_message,
) -> c_int {
    guard(|| {
        if reply.is_null() {
            return Err(Errno::EINVAL);
        }
        let e = ep_ref(ep)?;
        let got = if timeout_ms == 0 {
            e.take_reply(request.into())?.ok_or(Errno::EAGAIN)?
        } else {
            e.wait_reply(request.into(), timeout(timeout_ms))?
        };
        give_message(reply, got)
    })
}

/// Drops the pending (`BUSBAR_ALL_OR_WAIT`) send: returns 1 if there was
/// one, 0 if not.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_discard_send(ep: *const busbar_endpoint) -> c_int {
    guard(|| Ok(c_int::from(ep_ref(ep)?.discard_send()?)))
}

/// How a pending send ended: `*id` (optional) its id, `*result` 0
/// (delivered) or the negative errno. Errors: -EAGAIN (still pending, or
/// none finished).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_take_send_outcome(
    ep: *const busbar_endpoint,
    id: *mut busbar_msg_id,
    result: *mut c_int,
) -> c_int {
    guard(|| {
        required(result)?;
        let o = ep_ref(ep)?.take_send_outcome()?.ok_or(Errno::EAGAIN)?;
        put(id, o.id.into());
        put(result, o.result.err().map_or(0, |e| -e.number()));
        Ok(0)
    })
}

/// An fd that poll/epoll report readable (level-triggered) while the
/// endpoint has something to take (a message, or a send outcome). It
/// belongs to the endpoint: do not close it. Errors: -EIO (out of fds).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_readiness_fd(ep: *const busbar_endpoint) -> c_int {
    guard(|| Ok(ep_ref(ep)?.readiness_fd()?.as_raw_fd()))
}

/// Sets the queue limit (at least 1: queued messages plus reserved reply
/// slots); `*previous` (optional) gets the old one. Errors: -EINVAL (0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_set_queue_limit(
    ep: *const busbar_endpoint,
    limit: u32,
    previous: *mut u32,
) -> c_int {
    guard(|| {
        put(previous, ep_ref(ep)?.set_queue_limit(limit)?);
        Ok(0)
    })
}

/// Turns "only once" on or off (one copy per message however many of our
/// bindings match); `*previous` (optional) gets the old value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_set_only_once(
    ep: *const busbar_endpoint,
    on: bool,
    previous: *mut bool,
) -> c_int {
    guard(|| {
        put(previous, ep_ref(ep)?.set_only_once(on)?);
        Ok(0)
    })
}

/// Turns the bus's replier bind events on or off (turning them on queues
/// for us one `$.KBUS.ReplierBindEvent` per existing replier);
/// `*previous` (optional) gets the old value. Privileged through a daemon. Errors:
/// -EBUSY (the events do not fit in our queue), -EPERM.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_set_replier_bind_events(
    ep: *const busbar_endpoint,
    on: bool,
    previous: *mut bool,
) -> c_int {
    guard(|| {
        put(previous, ep_ref(ep)?.set_replier_bind_events(on)?);
        Ok(0)
    })
}

/// Turns KBUS compatibility on or off for this endpoint (its failed sends
/// still take a serial, its messages are measured in KBUS's entire form,
/// its requests reach the most recently bound of equal wildcard repliers,
/// and anyone may answer its requests while it awaits them; see the
/// project's docs/kbus.md); `*previous` (optional) gets the old value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_set_kbus_compat(
    ep: *const busbar_endpoint,
    on: bool,
    previous: *mut bool,
) -> c_int {
    guard(|| {
        put(previous, ep_ref(ep)?.set_kbus_compat(on)?);
        Ok(0)
    })
}

/// Turns monitoring on or off (a copy of every message the bus queues for
/// anyone); `*previous` (optional) gets the old value. Privileged through a daemon.
/// Errors: -EPERM.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_set_monitor(
    ep: *const busbar_endpoint,
    on: bool,
    previous: *mut bool,
) -> c_int {
    guard(|| {
        put(previous, ep_ref(ep)?.set_monitor(on)?);
        Ok(0)
    })
}

/// The endpoint's statistics.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_endpoint_get_stats(
    ep: *const busbar_endpoint,
    stats: *mut busbar_endpoint_stats,
) -> c_int {
    guard(|| {
        required(stats)?;
        put(stats, c_stats(&ep_ref(ep)?.stats()?));
        Ok(0)
    })
}

/// Creates a node owned by this endpoint; `*handle` gets our handle to it.
/// Others get handles only from messages carrying it. Errors: -EDQUOT.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_create_node(ep: *const busbar_endpoint, handle: *mut u64) -> c_int {
    guard(|| {
        required(handle)?;
        put(handle, ep_ref(ep)?.create_node()?.0);
        Ok(0)
    })
}

/// Drops one reference to one of our handles. Errors: -ENOENT (not ours),
/// -EBUSY (the owner's last reference to a live node).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_release_handle(ep: *const busbar_endpoint, handle: u64) -> c_int {
    guard(|| ep_ref(ep)?.release_handle(HandleId(handle)).map(|()| 0))
}

/// Destroys nodes we own, atomically; every holder is told
/// (`$.KBUS.Node.Destroyed`). Errors: -EPERM (one is not ours), -EINVAL
/// (a duplicate, or already destroyed), -ENOENT.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_destroy_nodes(
    ep: *const busbar_endpoint,
    handles: *const u64,
    n: usize,
) -> c_int {
    guard(|| {
        let hs: Vec<HandleId> = c_slice(handles, n)?.iter().map(|&h| HandleId(h)).collect();
        ep_ref(ep)?.destroy_nodes(&hs).map(|()| 0)
    })
}
