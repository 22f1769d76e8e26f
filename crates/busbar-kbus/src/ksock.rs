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

/// How a Ksock was opened (`O_RDONLY`, `O_WRONLY`, `O_RDWR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `O_RDONLY`.
    ReadOnly,
    /// `O_WRONLY`.
    WriteOnly,
    /// `O_RDWR`.
    ReadWrite,
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
    can_read: bool,
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
    /// Opens a Ksock on `bus` (KBUS compatibility on), for reading and
    /// writing as `mode` says (a read-only Ksock refuses writes and is never
    /// writable; a write-only one refuses reads).
    pub fn open(bus: &Bus, device: Arc<DeviceState>, mode: Mode) -> Result<Self, Errno> {
        let endpoint = bus.open()?;
        endpoint.set_kbus_compat(true)?;
        Ok(Self {
            endpoint,
            device,
            can_read: mode != Mode::WriteOnly,
            can_write: mode != Mode::ReadOnly,
            writer: Writer::default(),
            current: None,
            sending: false,
        })
    }

    /// The endpoint underneath.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How it was opened.
    pub fn mode(&self) -> Mode {
        match (self.can_read, self.can_write) {
            (true, false) => Mode::ReadOnly,
            (false, true) => Mode::WriteOnly,
            _ => Mode::ReadWrite,
        }
    }

    /// `write` from the program's buffer at `addr`. As KBUS, only what the
    /// message can take is copied (the rest of it, and one byte more, which
    /// is `EMSGSIZE`): a huge `len` costs nothing. `EFAULT` if the buffer
    /// cannot be read (the partly written message is gone, as after any
    /// write error).
    pub fn write_from(&mut self, addr: u64, len: usize, mem: &dyn Memory) -> Result<usize, Errno> {
        if !self.can_write {
            return Err(Errno::EBADF);
        }
        if self.sending {
            return Err(Errno::EALREADY);
        }
        let mut done = 0;
        while done < len {
            // The header first (it says how big the message is), then the
            // rest of the message plus one byte.
            let header_pending = self.writer.room() > 0 && !self.writer.has_header();
            let want = if header_pending {
                self.writer.room()
            } else {
                self.writer.room().saturating_add(1)
            };
            let take = want.min(len - done);
            let bytes = match mem.read(addr + done as u64, take) {
                Ok(b) => b,
                Err(e) => {
                    self.writer.discard();
                    return Err(e);
                }
            };
            self.write(&bytes)?;
            done += take;
            if !header_pending {
                // Everything the message could take went in; any more would
                // have been the EMSGSIZE byte, which `write` refused.
                break;
            }
        }
        Ok(len)
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

    /// `read` into the program's buffer at `addr`: up to `max` bytes of the
    /// current message (0: end of it, or no current message; a fully read
    /// message is released). `EBADF` if not opened for reading; `EFAULT`
    /// (and nothing consumed) if the buffer cannot be written.
    pub fn read(&mut self, addr: u64, max: usize, mem: &mut dyn Memory) -> Result<usize, Errno> {
        if !self.can_read {
            return Err(Errno::EBADF);
        }
        let Some((bytes, pos)) = &mut self.current else {
            return Ok(0);
        };
        let left = bytes.len() - *pos;
        if left == 0 {
            self.current = None;
            return Ok(0);
        }
        let n = max.min(left);
        if n == 0 {
            return Ok(0);
        }
        mem.write(addr, &bytes[*pos..*pos + n])?;
        *pos += n;
        Ok(n)
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
                // KBUS's query is by exact name: no wildcard resolution,
                // and an invalid name is simply not bound.
                let found = match self.endpoint.bus().pattern_replier(&name) {
                    Ok(r) => r.map_or(0, |e| e.0),
                    Err(Errno::EBADMSG | Errno::ENAMETOOLONG) => 0,
                    Err(e) => return Err(e),
                };
                put_u32(mem, arg, found)?;
                Ok(i32::from(found != 0))
            }
            Command::NextMsg => {
                self.current = None;
                // A length we could not write back would lose the message.
                put_u32(mem, arg, 0)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{END_GUARD, HEADER_LEN, START_GUARD, encode_entire, padded_name_len};

    /// Program memory for the tests: one arena at a fixed address.
    struct Arena {
        base: u64,
        bytes: Vec<u8>,
    }

    impl Arena {
        fn new() -> Self {
            Self {
                base: 0x10_000,
                bytes: vec![0; 4096],
            }
        }
        /// Puts `b` at offset `at`; returns its address.
        fn put(&mut self, at: usize, b: &[u8]) -> u64 {
            self.bytes[at..at + b.len()].copy_from_slice(b);
            self.base + at as u64
        }
        fn u32_at(&self, addr: u64) -> u32 {
            let b = self.read(addr, 4).unwrap();
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    impl Memory for Arena {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
            let at = addr.checked_sub(self.base).ok_or(Errno::EFAULT)? as usize;
            self.bytes
                .get(at..at + len)
                .map(<[u8]>::to_vec)
                .ok_or(Errno::EFAULT)
        }
        fn write(&mut self, addr: u64, b: &[u8]) -> Result<(), Errno> {
            let at = addr.checked_sub(self.base).ok_or(Errno::EFAULT)? as usize;
            self.bytes
                .get_mut(at..at + b.len())
                .ok_or(Errno::EFAULT)?
                .copy_from_slice(b);
            Ok(())
        }
    }

    const OUT: usize = 0; // an out argument slot
    const ARG: u64 = 0x10_000;

    fn open(bus: &Bus, can_write: bool) -> Ksock {
        let mode = if can_write {
            Mode::ReadWrite
        } else {
            Mode::ReadOnly
        };
        Ksock::open(bus, Arc::new(DeviceState::default()), mode).unwrap()
    }

    fn bind(k: &mut Ksock, m: &mut Arena, name: &str, replier: bool) -> Result<i32, Errno> {
        let name_at = m.put(256, name.as_bytes());
        let mut arg = Vec::new();
        arg.extend_from_slice(&u32::from(replier).to_ne_bytes());
        arg.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        arg.extend_from_slice(&name_at.to_ne_bytes());
        let at = m.put(128, &arg);
        k.ioctl(Command::Bind, at, m)
    }

    fn entire(name: &str, data: &[u8], flags: u32, to: u32) -> Vec<u8> {
        let h = Header {
            start_guard: START_GUARD,
            end_guard: END_GUARD,
            name_len: name.len() as u32,
            data_len: data.len() as u32,
            flags,
            to,
            ..Header::default()
        };
        encode_entire(&h, name.as_bytes(), data)
    }

    fn send(k: &mut Ksock, m: &mut Arena, bytes: &[u8]) -> Result<MessageId, Errno> {
        assert_eq!(k.write(bytes), Ok(bytes.len()));
        k.ioctl(Command::Send, ARG, m)?;
        Ok(MessageId {
            network: m.u32_at(ARG),
            serial: m.u32_at(ARG + 4),
        })
    }

    /// NEXTMSG then the whole message: its header and data.
    fn take(k: &mut Ksock, m: &mut Arena) -> Option<(Header, Vec<u8>)> {
        if k.ioctl(Command::NextMsg, ARG, m).unwrap() == 0 {
            assert_eq!(m.u32_at(ARG), 0);
            return None;
        }
        let len = m.u32_at(ARG) as usize;
        let mut bytes = Vec::new();
        let buf = m.base + 1024;
        loop {
            let n = k.read(buf, 7, m).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend(m.read(buf, n).unwrap());
        }
        assert_eq!(bytes.len(), len);
        let h = Header::parse(&bytes);
        let at = HEADER_LEN + padded_name_len(h.name_len as usize);
        Some((h, bytes[at..at + h.data_len as usize].to_vec()))
    }

    #[test]
    fn announce_and_read_in_pieces() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut tx = open(&bus, true);
        let mut rx = open(&bus, false);
        bind(&mut rx, &mut m, "$.Fred", false).unwrap();
        assert_eq!(rx.readiness(), Ok(Readiness::default()));
        let id = send(&mut tx, &mut m, &entire("$.Fred", b"hello", 0, 0)).unwrap();
        assert_eq!(
            rx.readiness(),
            Ok(Readiness {
                readable: true,
                writable: false
            })
        );
        let (h, data) = take(&mut rx, &mut m).unwrap();
        assert_eq!(
            (h.id, h.from, &data[..]),
            (id, tx.endpoint().id().0, &b"hello"[..])
        );
        assert_eq!((h.name_ptr, h.data_ptr, h.extra), (0, 0, 0));
        assert_eq!(take(&mut rx, &mut m), None);
        // Read-only: no writes. A buffer we cannot write: EFAULT, nothing lost.
        assert_eq!(rx.write(b"x"), Err(Errno::EBADF));
        send(&mut tx, &mut m, &entire("$.Fred", b"again", 0, 0)).unwrap();
        rx.ioctl(Command::NextMsg, ARG, &mut m).unwrap();
        assert_eq!(rx.read(0xdead_0000, 8, &mut m), Err(Errno::EFAULT));
        // A zero-length read consumes nothing and keeps the message.
        assert_eq!(rx.read(m.base + 1024, 0, &mut m), Ok(0));
        assert_eq!(rx.read(m.base + 1024, 8, &mut m), Ok(8));
        assert_eq!(&m.bytes[1024..1028], b"Kbus");
    }

    #[test]
    fn pointy_is_read_at_send() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut k = open(&bus, true);
        bind(&mut k, &mut m, "$.P", false).unwrap();
        let name = m.put(512, b"$.P");
        let data = m.put(600, b"old!");
        let h = Header {
            start_guard: START_GUARD,
            end_guard: END_GUARD,
            name_len: 3,
            data_len: 4,
            name_ptr: name,
            data_ptr: data,
            ..Header::default()
        };
        assert_eq!(k.write(&h.emit()), Ok(HEADER_LEN));
        m.put(600, b"new!");
        k.ioctl(Command::Send, ARG, &mut m).unwrap();
        assert_eq!(take(&mut k, &mut m).unwrap().1, b"new!");
        // A pointer the program cannot read: EFAULT, and the message is gone.
        let bad = Header {
            data_ptr: 0xdead_0000,
            ..h
        };
        k.write(&bad.emit()).unwrap();
        assert_eq!(k.ioctl(Command::Send, ARG, &mut m), Err(Errno::EFAULT));
        assert_eq!(k.ioctl(Command::Send, ARG, &mut m), Err(Errno::ENOMSG));
    }

    #[test]
    fn failed_send_numbers_lastsent() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut k = open(&bus, true);
        let a = send(&mut k, &mut m, &entire("$.a", b"", 0, 0)).unwrap();
        let e = send(&mut k, &mut m, &entire("$.a", b"", 1, 0));
        assert_eq!(e, Err(Errno::EADDRNOTAVAIL));
        k.ioctl(Command::LastSent, ARG, &mut m).unwrap();
        assert_eq!(m.u32_at(ARG + 4), a.serial + 1);
        let b = send(&mut k, &mut m, &entire("$.a", b"", 0, 0)).unwrap();
        assert_eq!(b.serial, a.serial + 2);
    }

    #[test]
    fn all_or_wait_sending_state() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut tx = open(&bus, true);
        let mut rx = open(&bus, true);
        bind(&mut rx, &mut m, "$.w", false).unwrap();
        m.put(OUT, &1u32.to_ne_bytes());
        rx.ioctl(Command::MaxMsgs, ARG, &mut m).unwrap();
        assert_eq!(m.u32_at(ARG), 1, "MAXMSGS returns the resulting limit");
        send(&mut tx, &mut m, &entire("$.w", b"", 0, 0)).unwrap();
        let e = send(&mut tx, &mut m, &entire("$.w", b"", 0x100, 0));
        assert_eq!(e, Err(Errno::EAGAIN));
        assert_ne!(m.u32_at(ARG + 4), 0, "the id is given with EAGAIN");
        assert_eq!(tx.write(b"x"), Err(Errno::EALREADY));
        assert!(!tx.readiness().unwrap().writable);
        // Room appears: the bus finishes the send; the Ksock is writable.
        take(&mut rx, &mut m).unwrap();
        assert!(tx.readiness().unwrap().writable);
        assert_eq!(tx.write(&entire("$.w", b"", 0, 0)[..4]), Ok(4));
        tx.ioctl(Command::Discard, 0, &mut m).unwrap();
        assert_eq!(tx.ioctl(Command::Send, ARG, &mut m), Err(Errno::ENOMSG));
    }

    #[test]
    fn flag_ioctls_and_queries() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut k = open(&bus, true);
        for (cmd, v, want) in [
            (Command::MsgOnlyOnce, 1u32, Ok(0)),
            (Command::MsgOnlyOnce, 0xFFFF_FFFF, Ok(1)),
            (Command::MsgOnlyOnce, 0, Ok(1)),
            (Command::MsgOnlyOnce, 2, Err(Errno::EINVAL)),
            (Command::Verbose, 1, Ok(0)),
            (Command::Verbose, 0xFFFF_FFFF, Ok(1)),
            (Command::ReportReplierBinds, 0xFFFF_FFFF, Ok(0)),
        ] {
            m.put(OUT, &v.to_ne_bytes());
            let got = k.ioctl(cmd, ARG, &mut m).map(|_| m.u32_at(ARG));
            assert_eq!(got, want, "{cmd:?} {v:#x}");
        }
        // MAXMSGSIZE: 0 current, 1 absolute, below 100 EINVAL, else set.
        m.put(OUT, &1u32.to_ne_bytes());
        k.ioctl(Command::MaxMsgSize, ARG, &mut m).unwrap();
        let abs = m.u32_at(ARG);
        m.put(OUT, &99u32.to_ne_bytes());
        assert_eq!(
            k.ioctl(Command::MaxMsgSize, ARG, &mut m),
            Err(Errno::EINVAL)
        );
        m.put(OUT, &(abs + 1).to_ne_bytes());
        assert_eq!(
            k.ioctl(Command::MaxMsgSize, ARG, &mut m),
            Err(Errno::EINVAL)
        );
        m.put(OUT, &104u32.to_ne_bytes());
        k.ioctl(Command::MaxMsgSize, ARG, &mut m).unwrap();
        assert_eq!(m.u32_at(ARG), 104);
        // 108 bytes in entire form: refused when the header is written.
        assert_eq!(
            k.write(&entire("$.Fred", b"1234567", 0, 0)),
            Err(Errno::EMSGSIZE)
        );
        // NULL argument, unknown command handled by the decoder.
        assert_eq!(k.ioctl(Command::KsockId, 0, &mut m), Err(Errno::EFAULT));
        assert_eq!(k.ioctl(Command::Reset, 0, &mut m), Ok(0));
    }

    #[test]
    fn replier_query_is_exact() {
        let bus = Bus::in_process();
        let mut m = Arena::new();
        let mut k = open(&bus, true);
        bind(&mut k, &mut m, "$.Fred.*", true).unwrap();
        bind(&mut k, &mut m, "$.Jim", true).unwrap();
        let query = |k: &mut Ksock, m: &mut Arena, name: &str| {
            let at = m.put(256, name.as_bytes());
            let mut arg = vec![0u8; 4];
            arg.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            arg.extend_from_slice(&at.to_ne_bytes());
            let a = m.put(128, &arg);
            k.ioctl(Command::Replier, a, m).map(|r| (r, m.u32_at(a)))
        };
        let id = k.endpoint().id().0;
        assert_eq!(query(&mut k, &mut m, "$.Jim"), Ok((1, id)));
        assert_eq!(query(&mut k, &mut m, "$.Fred.Bob"), Ok((0, 0)));
        assert_eq!(query(&mut k, &mut m, "$.Fred.*"), Ok((1, id)));
        assert_eq!(query(&mut k, &mut m, ""), Err(Errno::ENAMETOOLONG));
        assert_eq!(bind(&mut k, &mut m, "", false), Err(Errno::EBADMSG));
        assert_eq!(
            bind(&mut k, &mut m, &"x".repeat(1001), false),
            Err(Errno::ENAMETOOLONG)
        );
    }
}
