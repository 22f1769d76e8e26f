//! Received messages: read without copying, freed by the caller.

use std::ffi::{CString, c_char, c_int};
use std::os::fd::AsRawFd;

use busbar::{Errno, Message};

use crate::types::{busbar_creds, busbar_msg_id, busbar_orig_from, put};

/// A received message. Opaque: read it with the busbar_message_*
/// functions; free it with busbar_message_free().
#[derive(Debug)]
pub struct busbar_message {
    msg: Message,
    name: CString,
}

pub(crate) fn message_ref<'a>(p: *const busbar_message) -> Result<&'a Message, Errno> {
    // SAFETY: a non-NULL handle is one this library returned and the caller
    // has not freed, as the header requires.
    unsafe { p.as_ref() }.map(|m| &m.msg).ok_or(Errno::EINVAL)
}

fn with<T: Default>(p: *const busbar_message, f: impl FnOnce(&busbar_message) -> T) -> T {
    // SAFETY: as in `message_ref`.
    unsafe { p.as_ref() }.map_or_else(T::default, f)
}

pub(crate) fn give_message(out: *mut *mut busbar_message, msg: Message) -> Result<c_int, Errno> {
    // Names are `$.` and letters, digits and dots: never a NUL.
    let name = CString::new(msg.name.as_bytes()).map_err(|_| Errno::EPROTO)?;
    put(out, Box::into_raw(Box::new(busbar_message { msg, name })));
    Ok(0)
}

/// Frees a message, closing the fds it carried (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_free(message: *mut busbar_message) {
    if !message.is_null() {
        // SAFETY: a message this library returned, freed once, as the
        // header requires.
        drop(unsafe { Box::from_raw(message) });
    }
}

/// Its id ({0,0} for NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_id(message: *const busbar_message) -> busbar_msg_id {
    with(message, |m| m.msg.id.into())
}

/// For a reply: the id of the request it answers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_in_reply_to(
    message: *const busbar_message,
) -> busbar_msg_id {
    with(message, |m| m.msg.in_reply_to.into())
}

/// The endpoint it was sent to (a stateful request's replier, a reply's
/// requester), or 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_to(message: *const busbar_message) -> u32 {
    with(message, |m| m.msg.to.0)
}

/// The endpoint that sent it (0: the bus itself).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_from(message: *const busbar_message) -> u32 {
    with(message, |m| m.msg.from.0)
}

/// Original sender across bridges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_orig_from(
    message: *const busbar_message,
) -> busbar_orig_from {
    with(message, |m| m.msg.orig_from.into())
}

/// Final target across bridges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_final_to(
    message: *const busbar_message,
) -> busbar_orig_from {
    with(message, |m| m.msg.final_to.into())
}

/// Its flags (`BUSBAR_WANT_A_REPLY`, ...).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_flags(message: *const busbar_message) -> u32 {
    with(message, |m| m.msg.flags.0)
}

/// Its name, NUL-terminated; valid until the message is freed ("" for
/// NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_name(message: *const busbar_message) -> *const c_char {
    // SAFETY: as in `message_ref`.
    match unsafe { message.as_ref() } {
        Some(m) => m.name.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Its data, not copied: `*len` gets its length. Valid until the message
/// is freed (NULL if it has no data).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_data(
    message: *const busbar_message,
    len: *mut usize,
) -> *const u8 {
    let (p, n) = with(message, |m| {
        if m.msg.data.is_empty() {
            (std::ptr::null(), 0)
        } else {
            (m.msg.data.as_ptr(), m.msg.data.len())
        }
    });
    put(len, n);
    p
}

/// The sender's pid, uid and gid, as the bus established them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_creds(message: *const busbar_message) -> busbar_creds {
    with(message, |m| busbar_creds {
        pid: m.msg.creds.pid,
        uid: m.msg.creds.uid,
        gid: m.msg.creds.gid,
    })
}

/// How many messages this endpoint lost (its queue was full) just before
/// this one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_lost(message: *const busbar_message) -> u32 {
    with(message, |m| m.msg.lost)
}

/// Made by the bus itself (`$.KBUS.Replier.GoneAway`, ...)?
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_is_synthetic(message: *const busbar_message) -> bool {
    with(message, |m| m.msg.is_synthetic())
}

/// A request (`BUSBAR_WANT_A_REPLY`)?
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_is_request(message: *const busbar_message) -> bool {
    with(message, |m| m.msg.is_request())
}

/// A reply (it has an `in_reply_to`)?
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_is_reply(message: *const busbar_message) -> bool {
    with(message, |m| m.msg.is_reply())
}

/// A request this endpoint must answer (it is its replier)?
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_wants_us_to_reply(message: *const busbar_message) -> bool {
    with(message, |m| m.msg.wants_us_to_reply())
}

/// The handles it carried (our ids for them), not copied: `*count` gets
/// how many. Valid until the message is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_handles(
    message: *const busbar_message,
    count: *mut usize,
) -> *const u64 {
    let (p, n) = with(message, |m| {
        (m.msg.handles.as_ptr().cast::<u64>(), m.msg.handles.len())
    });
    put(count, n);
    if n == 0 { std::ptr::null() } else { p }
}

/// For a message sent to one of our nodes: our handle to that node (0
/// otherwise).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_destination(message: *const busbar_message) -> u64 {
    with(message, |m| m.msg.destination.0)
}

/// How many file descriptors it carried.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_fd_count(message: *const busbar_message) -> usize {
    with(message, |m| m.msg.fds().len())
}

/// Its `index`th file descriptor (-1 if there is none). The message owns
/// it and closes it when freed: `dup` it to keep it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busbar_message_fd(message: *const busbar_message, index: usize) -> c_int {
    // SAFETY: as in `message_ref`.
    match unsafe { message.as_ref() } {
        Some(m) => m.msg.fds().get(index).map_or(-1, |f| f.as_raw_fd()),
        None => -1,
    }
}
