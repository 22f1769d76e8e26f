//! KBUS's ioctl commands: magic `'k'`, numbers 1..=18, the size field
//! `sizeof(char *)` (so the values below are the 64-bit ones).

use busbar::Errno;

/// KBUS's ioctl type.
pub const MAGIC: u8 = b'k';

const fn io(dir: u32, nr: u32) -> u32 {
    let size = if dir == 0 { 0 } else { 8 };
    (dir << 30) | (size << 16) | ((MAGIC as u32) << 8) | nr
}
const NONE: u32 = 0;
const WRITE: u32 = 1;
const READ: u32 = 2;

/// One KBUS ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `RESET`: no-op.
    Reset,
    /// `BIND`: `{u32 is_replier; u32 name_len; char *name}`.
    Bind,
    /// `UNBIND`: the same.
    Unbind,
    /// `KSOCKID`: out u32.
    KsockId,
    /// `REPLIER`: `{u32 return_id; u32 name_len; char *name}`; returns 0 or 1.
    Replier,
    /// `NEXTMSG`: out u32 length; returns 0 or 1.
    NextMsg,
    /// `LENLEFT`: out u32.
    LenLeft,
    /// `SEND`: out `kbus_msg_id`.
    Send,
    /// `DISCARD`: no argument.
    Discard,
    /// `LASTSENT`: out `kbus_msg_id`.
    LastSent,
    /// `MAXMSGS`: in/out u32.
    MaxMsgs,
    /// `NUMMSGS`: out u32.
    NumMsgs,
    /// `UNREPLIEDTO`: out u32.
    UnrepliedTo,
    /// `MSGONLYONCE`: in 0, 1 or 0xFFFFFFFF; out the previous value.
    MsgOnlyOnce,
    /// `VERBOSE`: the same, device-wide.
    Verbose,
    /// `NEWDEVICE`: out u32.
    NewDevice,
    /// `REPORTREPLIERBINDS`: in 0, 1 or 0xFFFFFFFF; out the previous value.
    ReportReplierBinds,
    /// `MAXMSGSIZE`: in 0 (query), 1 (absolute maximum) or a size; out the result.
    MaxMsgSize,
}

const TABLE: [(u32, Command); 18] = [
    (io(NONE, 1), Command::Reset),
    (io(WRITE, 2), Command::Bind),
    (io(WRITE, 3), Command::Unbind),
    (io(READ, 4), Command::KsockId),
    (io(READ | WRITE, 5), Command::Replier),
    (io(READ, 6), Command::NextMsg),
    (io(READ, 7), Command::LenLeft),
    (io(READ, 8), Command::Send),
    (io(NONE, 9), Command::Discard),
    (io(READ, 10), Command::LastSent),
    (io(READ | WRITE, 11), Command::MaxMsgs),
    (io(READ, 12), Command::NumMsgs),
    (io(READ, 13), Command::UnrepliedTo),
    (io(READ | WRITE, 14), Command::MsgOnlyOnce),
    (io(READ | WRITE, 15), Command::Verbose),
    (io(READ, 16), Command::NewDevice),
    (io(READ | WRITE, 17), Command::ReportReplierBinds),
    (io(READ | WRITE, 18), Command::MaxMsgSize),
];

impl Command {
    /// What an ioctl request number means for a Ksock: `None` for another
    /// type (not KBUS's: pass it on), `Err(ENOTTY)` for a `'k'` number
    /// that is not one of KBUS's.
    pub fn decode(request: u64) -> Option<Result<Self, Errno>> {
        // glibc passes `unsigned long`; only the low 32 bits are the number.
        let request = request as u32;
        if (request >> 8) & 0xff != u32::from(MAGIC) {
            return None;
        }
        Some(
            TABLE
                .iter()
                .find(|(n, _)| *n == request)
                .map(|&(_, c)| c)
                .ok_or(Errno::ENOTTY),
        )
    }

    /// The request number (x86-64 and aarch64).
    pub fn number(self) -> u32 {
        TABLE
            .iter()
            .find(|(_, c)| *c == self)
            .map(|&(n, _)| n)
            .expect("every command is in the table")
    }

    /// Does it take an argument pointer (`EFAULT` if NULL)?
    pub fn takes_pointer(self) -> bool {
        self.number() >> 30 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kbus_x86_64_values() {
        assert_eq!(Command::Reset.number(), 0x6b01);
        assert_eq!(Command::Bind.number(), 0x4008_6b02);
        assert_eq!(Command::KsockId.number(), 0x8008_6b04);
        assert_eq!(Command::Replier.number(), 0xc008_6b05);
        assert_eq!(Command::Discard.number(), 0x6b09);
        assert_eq!(Command::NewDevice.number(), 0x8008_6b10);
        assert_eq!(Command::MaxMsgSize.number(), 0xc008_6b12);
    }

    #[test]
    fn decodes_kbus_others_and_unknown() {
        assert_eq!(Command::decode(0xc008_6b0b), Some(Ok(Command::MaxMsgs)));
        assert_eq!(Command::decode(0x5401), None); // TCGETS
        assert_eq!(Command::decode(0x6b13), Some(Err(Errno::ENOTTY)));
        // Right number, wrong size field.
        assert_eq!(Command::decode(0x4004_6b02), Some(Err(Errno::ENOTTY)));
        assert!(!Command::Reset.takes_pointer());
        assert!(Command::Send.takes_pointer());
    }
}
