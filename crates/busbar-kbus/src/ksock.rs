//! One Ksock: a KBUS file descriptor's state over a busbar endpoint.
//!
//! The endpoint has KBUS compatibility on (its failed sends still take a
//! serial, its messages are measured in entire form, its requests reach
//! the most recently bound of equal wildcard repliers). Everything else a
//! KBUS device keeps per open file lives here: the message being written,
//! the message being read, whether a send is waiting (`ALL_OR_WAIT`).
//! Program memory (ioctl arguments, pointy names and data) is reached
//! through [`Memory`], so this module has no `unsafe` and is tested against
//! the in-process bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use busbar::{Bus, Endpoint, Errno, Flags, MessageId, Outgoing};

use crate::abi::{Header, MAX_NAME_LEN, MIN_MAX_MESSAGE_SIZE, entire_form, flags};
use crate::ioctl::Command;
use crate::writer::{Writer, Written};

/// The program's memory, as the device sees it through ioctl arguments and
/// pointy messages.
pub trait Memory {
    /// Reads `len` bytes at `addr` (`EFAULT` if they cannot be read).
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno>;
    /// Writes `bytes` at `addr` (`EFAULT` if they cannot be written).
    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), Errno>;
}

/// What every Ksock of one device in this process shares.
#[derive(Debug, Default)]
pub struct DeviceState {
    /// `VERBOSE` (KBUS's debug output; nothing else changes).
    pub verbose: AtomicBool,
    /// The device's maximum message size as last seen (0: not yet asked).
    pub max_message_size: AtomicU32,
}

/// A Ksock's readiness, as `poll` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A message is queued.
    pub readable: bool,
    /// Opened for writing and no send is waiting.
    pub writable: bool,
}

/// One open Ksock.
#[derive(Debug)]
pub struct Ksock {
    endpoint: Endpoint,
    device: Arc<DeviceState>,
    can_write: bool,
    writer: Writer,
    /// The message being read (entire form) and how much has been read.
    current: Option<(Vec<u8>, usize)>,
    /// An `ALL_OR_WAIT` send is waiting (KBUS's "sending" state).
    sending: bool,
}

fn u32_arg(mem: &dyn Memory, arg: u64) -> Result<u32, Errno> {
    let b = mem.read(arg, 4)?;
    Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn put_u32(mem: &mut dyn Memory, arg: u64, v: u32) -> Result<(), Errno> {
    mem.write(arg, &v.to_ne_bytes())
}

fn put_id(mem: &mut dyn Memory, arg: u64, id: MessageId) -> Result<(), Errno> {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&id.network.to_ne_bytes());
    b[4..].copy_from_slice(&id.serial.to_ne_bytes());
    mem.write(arg, &b)
}

/// Reads a `{u32 a; u32 name_len; char *name}` argument (BIND, UNBIND,
/// REPLIER): `(a, name)`. `zero_len` is the error for an empty name.
fn name_arg(mem: &dyn Memory, arg: u64, zero_len: Errno) -> Result<(u32, String), Errno> {
    let b = mem.read(arg, 16)?;
    let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (a, len) = (word(0), word(4) as usize);
    let ptr = u64::from_ne_bytes(b[8..16].try_into().expect("8 bytes"));
    if len == 0 {
        return Err(zero_len);
    }
    if len > MAX_NAME_LEN {
        return Err(Errno::ENAMETOOLONG);
    }
    if ptr == 0 {
        return Err(Errno::EFAULT);
    }
    let name = mem.read(ptr, len)?;
    // KBUS stops at a NUL inside the given length.
    let end = name.iter().position(|&c| c == 0).unwrap_or(len);
    let name = String::from_utf8(name[..end].to_vec()).map_err(|_| Errno::EBADMSG)?;
    Ok((a, name))
}

/// The 0 / 1 / 0xFFFFFFFF (query) argument of the flag ioctls.
fn flag_arg(mem: &dyn Memory, arg: u64) -> Result<Option<bool>, Errno> {
    match u32_arg(mem, arg)? {
        0 => Ok(Some(false)),
        1 => Ok(Some(true)),
        0xFFFF_FFFF => Ok(None),
        _ => Err(Errno::EINVAL),
    }
}

impl Ksock {
    /// Opens a Ksock on `bus` (KBUS compatibility on). `can_write`: opened
    /// read/write (a read-only Ksock refuses writes and is never writable).
    pub fn open(bus: &Bus, device: Arc<DeviceState>, can_write: bool) -> Result<Self, Errno> {
        let endpoint = bus.open()?;
        endpoint.set_kbus_compat(true)?;
        Ok(Self {
            endpoint,
            device,
            can_write,
            writer: Writer::default(),
            current: None,
            sending: false,
        })
    }

    /// The endpoint underneath.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opened for writing?
    pub fn can_write(&self) -> bool {
        self.can_write
    }

    /// `write`: appends to the message being written.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno> {
        if !self.can_write {
            return Err(Errno::EBADF);
        }
        if self.sending {
            return Err(Errno::EALREADY);
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        let endpoint = &self.endpoint;
        let device = &self.device;
        self.writer
            .write(bytes, &mut |len| fits(endpoint, device, len))
    }

    /// `read`: up to `max` bytes of the current message (none: end of it, or
    /// no current message). A fully read message is released.
    pub fn read(&mut self, max: usize) -> Vec<u8> {
        let Some((bytes, pos)) = &mut self.current else {
            return Vec::new();
        };
        let n = max.min(bytes.len() - *pos);
        let out = bytes[*pos..*pos + n].to_vec();
        *pos += n;
        if n == 0 {
            self.current = None;
        }
        out
    }

    /// Where the Ksock stands for `poll`, taking in what the bus has said
    /// without blocking.
    pub fn readiness(&mut self) -> Result<Readiness, Errno> {
        let mut something = self.endpoint.refresh()?;
        if self.sending && something {
            self.finish_sending()?;
            something = self.endpoint.refresh()?;
        }
        Ok(Readiness {
            readable: something,
            writable: self.can_write && !self.sending,
        })
    }

    /// If the waiting send has finished, leaves the sending state; returns
    /// its outcome.
    fn finish_sending(&mut self) -> Result<Option<Result<MessageId, Errno>>, Errno> {
        match self.endpoint.take_send_outcome()? {
            Some(o) => {
                self.sending = false;
                self.writer.discard();
                Ok(Some(o.result.map(|()| o.id)))
            }
            None => Ok(None),
        }
    }

    /// Closes the Ksock: KBUS's release (the bus answers requests left
    /// unread or unanswered).
    pub fn close(self) -> Result<(), Errno> {
        self.endpoint.close()
    }

    /// One KBUS ioctl; returns the ioctl's (non-negative) result.
    pub fn ioctl(&mut self, cmd: Command, arg: u64, mem: &mut dyn Memory) -> Result<i32, Errno> {
        if cmd.takes_pointer() && arg == 0 {
            return Err(Errno::EFAULT);
        }
        match cmd {
            Command::Reset => Ok(0),
            Command::Bind | Command::Unbind => {
                let (replier, name) = name_arg(mem, arg, Errno::EBADMSG)?;
                let replier = replier != 0;
                let r = match (cmd, replier) {
                    (Command::Bind, false) => self.endpoint.bind(&name),
                    (Command::Bind, true) => self.endpoint.bind_replier(&name),
                    (_, false) => self.endpoint.unbind(&name),
                    (_, true) => self.endpoint.unbind_replier(&name),
                };
                r.map(|()| 0)
            }
            Command::KsockId => put_u32(mem, arg, self.endpoint.id().0).map(|()| 0),
            Command::Replier => {
                let (_, name) = name_arg(mem, arg, Errno::ENAMETOOLONG)?;
                // KBUS's query is by exact name: no wildcard resolution.
                let found = self
                    .endpoint
                    .bus()
                    .list_bindings()?
                    .into_iter()
                    .find(|b| b.replier && *b.name == *name)
                    .map_or(0, |b| b.endpoint.0);
                put_u32(mem, arg, found)?;
                Ok(i32::from(found != 0))
            }
            Command::NextMsg => {
                self.current = None;
                match self.endpoint.try_recv()? {
                    Some(m) => {
                        let bytes = entire_form(&m);
                        put_u32(mem, arg, bytes.len() as u32)?;
                        self.current = Some((bytes, 0));
                        Ok(1)
                    }
                    None => put_u32(mem, arg, 0).map(|()| 0),
                }
            }
            Command::LenLeft => {
                let left = self
                    .current
                    .as_ref()
                    .map_or(0, |(b, pos)| (b.len() - pos) as u32);
                put_u32(mem, arg, left).map(|()| 0)
            }
            Command::Send => self.send(arg, mem),
            Command::Discard => {
                self.writer.discard();
                if self.sending {
                    self.sending = false;
                    self.endpoint.discard_send()?;
                    // A send that finished meanwhile leaves an outcome: drop it.
                    self.endpoint.take_send_outcome()?;
                }
                Ok(0)
            }
            Command::LastSent => {
                let id = self.endpoint.stats()?.last_sent;
                put_id(mem, arg, id).map(|()| 0)
            }
            Command::MaxMsgs => {
                let n = u32_arg(mem, arg)?;
                let limit = if n > 0 {
                    self.endpoint.set_queue_limit(n)?;
                    n
                } else {
                    self.endpoint.stats()?.queue_limit
                };
                put_u32(mem, arg, limit).map(|()| 0)
            }
            Command::NumMsgs => {
                let s = self.endpoint.stats()?;
                put_u32(mem, arg, s.queued + s.set_aside).map(|()| 0)
            }
            Command::UnrepliedTo => {
                let s = self.endpoint.stats()?;
                put_u32(mem, arg, s.owed_replies).map(|()| 0)
            }
            Command::MsgOnlyOnce => {
                let previous = match flag_arg(mem, arg)? {
                    Some(on) => self.endpoint.set_only_once(on)?,
                    None => self.endpoint.stats()?.only_once,
                };
                put_u32(mem, arg, u32::from(previous)).map(|()| 0)
            }
            Command::Verbose => {
                let previous = match flag_arg(mem, arg)? {
                    Some(on) => self.device.verbose.swap(on, Ordering::SeqCst),
                    None => self.device.verbose.load(Ordering::SeqCst),
                };
                put_u32(mem, arg, u32::from(previous)).map(|()| 0)
            }
            Command::NewDevice => {
                let bus = self.endpoint.bus().create_bus()?;
                put_u32(mem, arg, bus.id().0).map(|()| 0)
            }
            Command::ReportReplierBinds => {
                let previous = match flag_arg(mem, arg)? {
                    Some(on) => self.endpoint.set_replier_bind_events(on)?,
                    None => self.endpoint.bus().info()?.replier_bind_events,
                };
                put_u32(mem, arg, u32::from(previous)).map(|()| 0)
            }
            Command::MaxMsgSize => {
                let wanted = u32_arg(mem, arg)?;
                let info = self.endpoint.bus().info()?;
                let result = match wanted {
                    0 => info.max_message_size,
                    1 => info.absolute_max_message_size,
                    n if n < MIN_MAX_MESSAGE_SIZE || n > info.absolute_max_message_size => {
                        return Err(Errno::EINVAL);
                    }
                    n => {
                        self.endpoint.bus().set_max_message_size(n)?;
                        n
                    }
                };
                if wanted != 1 {
                    self.device.max_message_size.store(result, Ordering::SeqCst);
                }
                put_u32(mem, arg, result).map(|()| 0)
            }
        }
    }

    fn send(&mut self, arg: u64, mem: &mut dyn Memory) -> Result<i32, Errno> {
        if self.sending {
            // SEND again while waiting: done if the bus has finished it.
            return match self.finish_sending()? {
                Some(Ok(id)) => put_id(mem, arg, id).map(|()| 0),
                Some(Err(e)) => Err(e),
                None => {
                    let id = self.endpoint.stats()?.pending_send.unwrap_or_default();
                    put_id(mem, arg, id)?;
                    Err(Errno::EAGAIN)
                }
            };
        }
        let outgoing = match self.writer.written()? {
            Written::Entire { header, name, data } => outgoing(&header, name, data),
            Written::Pointy(header) => {
                let name = mem.read(header.name_ptr, header.name_len as usize);
                let data = if header.data_len == 0 {
                    Ok(Vec::new())
                } else {
                    mem.read(header.data_ptr, header.data_len as usize)
                };
                let (name, data) = match (name, data) {
                    (Ok(n), Ok(d)) => (n, d),
                    (Err(e), _) | (_, Err(e)) => {
                        self.writer.discard();
                        return Err(e);
                    }
                };
                let Ok(name) = String::from_utf8(name) else {
                    self.writer.discard();
                    return Err(Errno::EBADMSG);
                };
                outgoing(&header, name, data)
            }
        };
        let wait = outgoing.flags.contains(Flags::ALL_OR_WAIT);
        match self.endpoint.send(outgoing) {
            Ok(id) => {
                self.writer.discard();
                put_id(mem, arg, id).map(|()| 0)
            }
            Err(Errno::EAGAIN) if wait => {
                self.sending = true;
                let id = self.endpoint.stats()?.last_sent;
                put_id(mem, arg, id)?;
                Err(Errno::EAGAIN)
            }
            Err(e) => {
                self.writer.discard();
                if e == Errno::EMSGSIZE {
                    // Someone lowered the maximum: see it next time.
                    self.device.max_message_size.store(0, Ordering::SeqCst);
                }
                Err(e)
            }
        }
    }
}

/// Builds the busbar message for a written KBUS one.
fn outgoing(h: &Header, name: String, data: Vec<u8>) -> Outgoing {
    let mut m = Outgoing::announcement(&name, data);
    // The bus sets WANT_YOU_TO_REPLY and SYNTHETIC itself.
    m.flags = Flags(h.flags & !(flags::WANT_YOU_TO_REPLY | flags::SYNTHETIC));
    m.to = crate::abi::endpoint(h.to);
    m.in_reply_to = h.in_reply_to;
    m.id = h.id;
    m.orig_from = h.orig_from;
    m.final_to = h.final_to;
    m
}

/// Is a message of entire-form length `len` within the device's maximum?
/// Asks the bus when the remembered maximum says no (it may have been
/// raised) or was never asked.
fn fits(endpoint: &Endpoint, device: &DeviceState, len: usize) -> Result<(), Errno> {
    let known = device.max_message_size.load(Ordering::SeqCst);
    if known != 0 && len <= known as usize {
        return Ok(());
    }
    let max = endpoint.bus().info()?.max_message_size;
    device.max_message_size.store(max, Ordering::SeqCst);
    if len <= max as usize {
        Ok(())
    } else {
        Err(Errno::EMSGSIZE)
    }
}
