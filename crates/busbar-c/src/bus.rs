//! Buses: in-process or through a daemon, and what applies to a whole bus.

use std::ffi::{CString, c_char, c_int};

use busbar::{Bus, BusId, Errno, Quota};

use crate::error::guard;
use crate::types::{
    busbar_binding, busbar_bus_info, busbar_bus_stats, busbar_endpoint_stats, busbar_quota, c_str,
    put,
};

/// A bus: in-process, or one bus of a busbar daemon. Opaque.
#[derive(Debug)]
pub struct busbar_bus {
    pub(crate) bus: Bus,
}

/// The bus behind a handle (`EINVAL` for NULL).
pub(crate) fn bus_ref<'a>(p: *const busbar_bus) -> Result<&'a Bus, Errno> {
    // SAFETY: a non-NULL handle is one this library returned and the caller
    // has not freed, as the header requires.
    unsafe { p.as_ref() }.map(|b| &b.bus).ok_or(Errno::EINVAL)
}

/// Stores a new handle through `out` (checked non-NULL by `required`).
fn give(out: *mut *mut busbar_bus, bus: Bus) -> Result<c_int, Errno> {
    put(out, Box::into_raw(Box::new(busbar_bus { bus })));
    Ok(0)
}

/// A required out pointer: `EINVAL` if NULL (before anything is done).
pub(crate) fn required<T>(out: *mut T) -> Result<(), Errno> {
    if out.is_null() {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

/// Makes a new in-process bus (bus 0 of a kernel in this process, no daemon
/// needed). Free it with busbar_bus_free(). Errors: -EINVAL (out is NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_in_process(out: *mut *mut busbar_bus) -> c_int {
    guard(|| {
        required(out)?;
        give(out, Bus::in_process())
    })
}

/// Connects to a busbar daemon: at `socket_path`, or, if it is NULL, at the
/// default path ($BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock,
/// /tmp/busbar-<uid>/bus.sock). The result is bus 0; see busbar_bus_select.
/// Blocks for the handshake (at most 10 s). Errors: -ENOENT or
/// -ECONNREFUSED (no daemon there), -EACCES (the daemon runs as a user this
/// process does not trust; see BUSBAR_TRUSTED_UIDS), -EPERM (no permission
/// to the socket), -ETIMEDOUT (no answer), -EUSERS, -ENFILE, -EMFILE (the
/// daemon refused the connection), -ECONNRESET (the connection failed or
/// was closed, or the path is too long for a socket), -EBADMSG (the path is
/// not UTF-8), -EPROTO, -EOPNOTSUPP (not a busbar daemon, or another
/// protocol version), -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_connect(
    socket_path: *const c_char,
    out: *mut *mut busbar_bus,
) -> c_int {
    guard(|| {
        required(out)?;
        let bus = if socket_path.is_null() {
            Bus::connect_default()?
        } else {
            Bus::connect(c_str(socket_path)?)?
        };
        give(out, bus)
    })
}

/// Frees a bus handle (NULL is ignored). Endpoints opened from it stay
/// usable; the connection closes when the last of them is closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_free(bus: *mut busbar_bus) {
    if !bus.is_null() {
        // SAFETY: a handle this library returned, freed once, as the header
        // requires.
        drop(unsafe { Box::from_raw(bus) });
    }
}

/// The bus's id (0 for NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_id(bus: *const busbar_bus) -> u32 {
    bus_ref(bus).map_or(0, |b| b.id().0)
}

/// A handle on bus `id` of the same kernel or daemon (free it with
/// busbar_bus_free). Errors: -EINVAL; using a bus that does not exist
/// fails later with -ENOENT.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_select(
    bus: *const busbar_bus,
    id: u32,
    out: *mut *mut busbar_bus,
) -> c_int {
    guard(|| {
        required(out)?;
        give(out, bus_ref(bus)?.bus(BusId(id)))
    })
}

/// Creates a new bus in the same kernel and returns a handle on it.
/// Through a daemon this is a privileged operation. Errors: -EPERM (not
/// privileged), -ENOMEM (the kernel holds as many buses as it may),
/// -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_create(
    bus: *const busbar_bus,
    out: *mut *mut busbar_bus,
) -> c_int {
    guard(|| {
        required(out)?;
        give(out, bus_ref(bus)?.create_bus()?)
    })
}

/// Sets the bus's maximum message size (name plus data bytes; at least
/// 100, at most the absolute maximum); `*previous` (if not NULL) gets the
/// old value (`previous` is optional). Privileged through a daemon.
/// Errors: -EINVAL (out of range), -EPERM, -ENOENT (no such bus).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_set_max_message_size(
    bus: *const busbar_bus,
    bytes: u32,
    previous: *mut u32,
) -> c_int {
    guard(|| {
        put(previous, bus_ref(bus)?.set_max_message_size(bytes)?);
        Ok(0)
    })
}

/// The endpoint a request to `name` would reach now (wildcards resolved):
/// `*endpoint` is its id, or 0 if there is no replier. Errors: -EBADMSG
/// (not a message name), -ENAMETOOLONG, -ENOENT, -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_find_replier(
    bus: *const busbar_bus,
    name: *const c_char,
    endpoint: *mut u32,
) -> c_int {
    guard(|| {
        let found = bus_ref(bus)?.find_replier(c_str(name)?)?;
        put(endpoint, found.map_or(0, |e| e.0));
        Ok(0)
    })
}

/// The replier bound to exactly the pattern `pattern` (no wildcard
/// resolution, unlike busbar_bus_find_replier): `*endpoint` is its id, or
/// 0. Errors: -EBADMSG (not a valid pattern), -ENAMETOOLONG, -ENOENT,
/// -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_pattern_replier(
    bus: *const busbar_bus,
    pattern: *const c_char,
    endpoint: *mut u32,
) -> c_int {
    guard(|| {
        required(endpoint)?;
        let found = bus_ref(bus)?.pattern_replier(c_str(pattern)?)?;
        put(endpoint, found.map_or(0, |e| e.0));
        Ok(0)
    })
}

/// The bus's settings. Errors: -ENOENT (no such bus), -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_get_info(
    bus: *const busbar_bus,
    info: *mut busbar_bus_info,
) -> c_int {
    guard(|| {
        required(info)?;
        let i = bus_ref(bus)?.info()?;
        put(
            info,
            busbar_bus_info {
                bus: i.bus.0,
                buses: i.buses,
                max_message_size: i.max_message_size,
                absolute_max_message_size: i.absolute_max_message_size,
                replier_bind_events: i.replier_bind_events,
            },
        );
        Ok(0)
    })
}

/// The bus's counters in `*stats`, and the statistics of up to `capacity`
/// of its endpoints (by id) in `endpoints` (optional: may be NULL if
/// `capacity` is 0); returns how many endpoints the bus has (so a second
/// call with a big enough array gets them all). Errors: -ENOENT, -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_get_stats(
    bus: *const busbar_bus,
    stats: *mut busbar_bus_stats,
    endpoints: *mut busbar_endpoint_stats,
    capacity: usize,
) -> c_int {
    guard(|| {
        required(stats)?;
        if capacity > 0 {
            required(endpoints)?;
        }
        let s = bus_ref(bus)?.stats()?;
        put(
            stats,
            busbar_bus_stats {
                bus: s.bus.0,
                endpoints: s.endpoints,
                bindings: s.bindings,
                replier_bindings: s.replier_bindings,
                next_serial: s.next_serial,
                max_message_size: s.max_message_size,
                replier_bind_events: s.replier_bind_events,
                set_aside: s.set_aside,
            },
        );
        for (i, e) in s.endpoint_stats.iter().take(capacity).enumerate() {
            // SAFETY: the caller's array holds `capacity` entries.
            put(unsafe { endpoints.add(i) }, crate::endpoint::c_stats(e));
        }
        Ok(s.endpoint_stats.len().min(i32::MAX as usize) as c_int)
    })
}

/// Every binding on the bus, oldest first: `*bindings` gets an array of
/// `*count` entries, which the caller frees with busbar_bindings_free().
/// Errors: -ENOENT, -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_names(
    bus: *const busbar_bus,
    bindings: *mut *mut busbar_binding,
    count: *mut usize,
) -> c_int {
    guard(|| {
        if bindings.is_null() || count.is_null() {
            return Err(Errno::EINVAL);
        }
        let list: Vec<busbar_binding> = bus_ref(bus)?
            .list_bindings()?
            .into_iter()
            .map(|b| busbar_binding {
                endpoint: b.endpoint.0,
                pid: b.pid,
                uid: b.uid,
                replier: b.replier,
                name: CString::new(b.name.as_bytes())
                    .unwrap_or_default()
                    .into_raw(),
            })
            .collect();
        put(count, list.len());
        put(bindings, Box::into_raw(list.into_boxed_slice()).cast());
        Ok(0)
    })
}

/// Frees what busbar_bus_names() returned (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bindings_free(bindings: *mut busbar_binding, count: usize) {
    if bindings.is_null() {
        return;
    }
    // SAFETY: the array busbar_bus_names() made with exactly `count`
    // entries, freed once, as the header requires.
    let list = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(bindings, count)) };
    for b in list.iter() {
        if !b.name.is_null() {
            // SAFETY: each name came from CString::into_raw above.
            drop(unsafe { CString::from_raw(b.name) });
        }
    }
}

/// Sets the bus's quota per (receiving user, sending user); `*previous`
/// (optional) gets the old one. Privileged through a daemon. Errors:
/// -EPERM, -ENOENT, -EINVAL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_bus_set_quota(
    bus: *const busbar_bus,
    quota: *const busbar_quota,
    previous: *mut busbar_quota,
) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL quota is the caller's struct, as the header requires.
        let q = unsafe { quota.as_ref() }.ok_or(Errno::EINVAL)?;
        let old = bus_ref(bus)?.set_quota(Quota {
            messages: q.messages,
            bytes: q.bytes,
            handles: q.handles,
            fds: q.fds,
        })?;
        put(
            previous,
            busbar_quota {
                messages: old.messages,
                bytes: old.bytes,
                handles: old.handles,
                fds: old.fds,
            },
        );
        Ok(0)
    })
}
