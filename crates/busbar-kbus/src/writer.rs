//! The message being written to a Ksock: KBUS's partial-write state
//! machine.
//!
//! `write` accepts any split, down to one byte. The header is checked the
//! moment it is complete, in KBUS's order (guards, then `name_len` 0, then
//! `name_len` > 1000, then the pointers, then both `ALL_OR` flags, then the
//! entire-form size); an entire message's name is checked the moment its
//! last byte arrives (`EBADMSG`), and its final guard (`EINVAL`). A pointy
//! message is complete after its header: its name and data are read from
//! the program's memory at `SEND`. A byte past the end is `EMSGSIZE`. Any
//! error throws away the whole partly written message.

use busbar::Errno;
use busbar::name::check_message_name;

use crate::abi::{
    END_GUARD, HEADER_LEN, Header, MAX_NAME_LEN, START_GUARD, flags, padded_data_len,
    padded_name_len,
};

/// A complete message, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// Header, name and data all written (entire form).
    Entire {
        /// The header (both pointers NULL).
        header: Header,
        /// The name.
        name: String,
        /// The data.
        data: Vec<u8>,
    },
    /// The header alone; name and data are behind its pointers.
    Pointy(Header),
}

/// The partly or wholly written message of one Ksock.
#[derive(Debug, Default)]
pub struct Writer {
    /// Bytes of the message so far (header, then for the entire form the
    /// padded name, padded data and final guard).
    buf: Vec<u8>,
    header: Option<Header>,
    finished: bool,
}

impl Writer {
    /// Is the header complete (and checked)?
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// Has nothing been written since the last message was sent or dropped?
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many more bytes the message takes before it is complete: the
    /// rest of the header while it is incomplete (then ask again), else the
    /// rest of the message (0 once complete).
    pub fn room(&self) -> usize {
        match self.header {
            None => HEADER_LEN - self.buf.len(),
            Some(_) if self.finished => 0,
            Some(h) => h.entire_len() - self.buf.len(),
        }
    }

    /// Drops the message being written.
    pub fn discard(&mut self) {
        *self = Self::default();
    }

    /// The finished message: `ENOMSG` if nothing was written, `EINVAL` if
    /// it is not complete.
    pub fn written(&self) -> Result<Written, Errno> {
        if self.buf.is_empty() {
            return Err(Errno::ENOMSG);
        }
        let (Some(header), true) = (self.header, self.finished) else {
            return Err(Errno::EINVAL);
        };
        if header.is_pointy() {
            return Ok(Written::Pointy(header));
        }
        let name_len = header.name_len as usize;
        let data_at = HEADER_LEN + padded_name_len(name_len);
        let name = String::from_utf8(self.buf[HEADER_LEN..HEADER_LEN + name_len].to_vec())
            .map_err(|_| Errno::EBADMSG)?;
        Ok(Written::Entire {
            header,
            name,
            data: self.buf[data_at..data_at + header.data_len as usize].to_vec(),
        })
    }

    /// Appends `bytes`. `fits(len)` is asked, once the header is complete,
    /// whether a message of that entire-form length is within the device's
    /// maximum (`EMSGSIZE` if not). Returns the count written; on error the
    /// whole message is gone.
    pub fn write(
        &mut self,
        bytes: &[u8],
        fits: &mut dyn FnMut(usize) -> Result<(), Errno>,
    ) -> Result<usize, Errno> {
        let r = self.append(bytes, fits);
        if r.is_err() {
            self.discard();
        }
        r.map(|()| bytes.len())
    }

    fn append(
        &mut self,
        mut bytes: &[u8],
        fits: &mut dyn FnMut(usize) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        while !bytes.is_empty() {
            if self.finished {
                return Err(Errno::EMSGSIZE);
            }
            let Some(header) = self.header else {
                let take = (HEADER_LEN - self.buf.len()).min(bytes.len());
                self.buf.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.buf.len() == HEADER_LEN {
                    let h = Header::parse(&self.buf);
                    check_header(&h)?;
                    fits(h.entire_len())?;
                    self.header = Some(h);
                    self.finished = h.is_pointy();
                }
                continue;
            };
            let name_len = header.name_len as usize;
            let name_end = HEADER_LEN + name_len;
            let total = header.entire_len();
            // Feed up to the next point where something is checked.
            let stop = if self.buf.len() < name_end {
                name_end
            } else {
                total
            };
            let take = (stop - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == name_end && stop == name_end {
                let name = std::str::from_utf8(&self.buf[HEADER_LEN..name_end])
                    .map_err(|_| Errno::EBADMSG)?;
                check_message_name(name).map_err(|_| Errno::EBADMSG)?;
            }
            if self.buf.len() == total {
                let guard = &self.buf[total - 4..];
                if u32::from_ne_bytes([guard[0], guard[1], guard[2], guard[3]]) != END_GUARD {
                    return Err(Errno::EINVAL);
                }
                debug_assert_eq!(
                    total,
                    HEADER_LEN
                        + padded_name_len(name_len)
                        + padded_data_len(header.data_len as usize)
                        + 4
                );
                self.finished = true;
            }
        }
        Ok(())
    }
}

/// KBUS's header checks, in KBUS's order (all but the size).
fn check_header(h: &Header) -> Result<(), Errno> {
    if h.start_guard != START_GUARD || h.end_guard != END_GUARD {
        return Err(Errno::EINVAL);
    }
    if h.name_len == 0 {
        return Err(Errno::EINVAL);
    }
    if h.name_len as usize > MAX_NAME_LEN {
        return Err(Errno::ENAMETOOLONG);
    }
    let pointers_ok = if h.name_ptr == 0 {
        h.data_ptr == 0
    } else {
        h.data_ptr != 0 || h.data_len == 0
    };
    if !pointers_ok || (h.data_len == 0 && h.data_ptr != 0) {
        return Err(Errno::EINVAL);
    }
    if h.flags & flags::ALL_OR_WAIT != 0 && h.flags & flags::ALL_OR_FAIL != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{encode_entire, entire_len};

    fn header(name_len: u32, data_len: u32) -> Header {
        Header {
            start_guard: START_GUARD,
            end_guard: END_GUARD,
            name_len,
            data_len,
            ..Header::default()
        }
    }

    fn entire(name: &str, data: &[u8]) -> Vec<u8> {
        let h = header(name.len() as u32, data.len() as u32);
        encode_entire(&h, name.as_bytes(), data)
    }

    fn ok(_: usize) -> Result<(), Errno> {
        Ok(())
    }

    #[test]
    fn entire_message_in_one_byte_writes() {
        let bytes = entire("$.Fred", b"1234567");
        assert_eq!(bytes.len(), entire_len(6, 7));
        let mut w = Writer::default();
        assert_eq!(w.written(), Err(Errno::ENOMSG));
        for (i, b) in bytes.chunks(1).enumerate() {
            if i > 0 {
                assert_eq!(w.written().err(), Some(Errno::EINVAL));
            }
            assert_eq!(w.write(b, &mut ok), Ok(1));
        }
        let Ok(Written::Entire { name, data, .. }) = w.written() else {
            panic!("complete");
        };
        assert_eq!((name.as_str(), &data[..]), ("$.Fred", &b"1234567"[..]));
        // One byte more is EMSGSIZE, and the message is gone.
        assert_eq!(w.write(b"x", &mut ok), Err(Errno::EMSGSIZE));
        assert_eq!(w.written(), Err(Errno::ENOMSG));
    }

    #[test]
    fn header_checks_in_kbus_order() {
        let cases: [(Header, Errno); 6] = [
            (
                Header {
                    start_guard: 1,
                    name_len: 0,
                    ..header(0, 0)
                },
                Errno::EINVAL,
            ),
            (header(0, 0), Errno::EINVAL),
            (header(1001, 0), Errno::ENAMETOOLONG),
            (
                Header {
                    data_ptr: 8,
                    ..header(5, 0)
                },
                Errno::EINVAL,
            ),
            (
                Header {
                    name_ptr: 8,
                    ..header(5, 3)
                },
                Errno::EINVAL,
            ),
            (
                Header {
                    flags: 0x300,
                    ..header(5, 0)
                },
                Errno::EINVAL,
            ),
        ];
        for (h, e) in cases {
            let mut w = Writer::default();
            assert_eq!(w.write(&h.emit(), &mut ok), Err(e), "{h:?}");
            assert!(w.is_empty());
        }
        let mut too_big = |_| Err(Errno::EMSGSIZE);
        let mut w = Writer::default();
        assert_eq!(
            w.write(&header(5, 0).emit(), &mut too_big),
            Err(Errno::EMSGSIZE)
        );
    }

    #[test]
    fn bad_name_and_final_guard() {
        let mut w = Writer::default();
        let bytes = entire("$.Fred.*", b"");
        assert_eq!(w.write(&bytes, &mut ok), Err(Errno::EBADMSG));
        let mut bytes = entire("$.Fred", b"ab");
        let n = bytes.len();
        bytes[n - 1] = 0;
        assert_eq!(w.write(&bytes, &mut ok), Err(Errno::EINVAL));
        assert!(w.is_empty());
    }

    #[test]
    fn pointy_is_complete_after_its_header() {
        let h = Header {
            name_ptr: 0x1000,
            data_ptr: 0x2000,
            ..header(6, 3)
        };
        let mut w = Writer::default();
        assert_eq!(w.write(&h.emit(), &mut ok), Ok(HEADER_LEN));
        assert_eq!(w.written(), Ok(Written::Pointy(h)));
        assert_eq!(w.write(&[0], &mut ok), Err(Errno::EMSGSIZE));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::abi::encode_entire;

    fn entire(name: &str, data: &[u8]) -> Vec<u8> {
        let h = Header {
            start_guard: START_GUARD,
            end_guard: END_GUARD,
            name_len: name.len() as u32,
            data_len: data.len() as u32,
            ..Header::default()
        };
        encode_entire(&h, name.as_bytes(), data)
    }

    proptest! {
        /// Any split of a valid message gives back the message.
        #[test]
        fn any_split_reassembles(data in proptest::collection::vec(any::<u8>(), 0..300),
                                 cuts in proptest::collection::vec(1usize..64, 1..40)) {
            let bytes = entire("$.a.b", &data);
            let mut w = Writer::default();
            let mut ok = |_| Ok(());
            let (mut at, mut i) = (0, 0);
            while at < bytes.len() {
                let n = cuts[i % cuts.len()].min(bytes.len() - at);
                prop_assert_eq!(w.write(&bytes[at..at + n], &mut ok), Ok(n));
                at += n;
                i += 1;
            }
            let whole = matches!(w.written(),
                Ok(Written::Entire { name, data: d, .. }) if name == "$.a.b" && d == data);
            prop_assert!(whole, "reassembled");
        }

        /// Corrupt any byte of a valid message, split anywhere: never a
        /// panic, and an error leaves nothing written.
        #[test]
        fn corruption_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64),
                                   pos in any::<prop::sample::Index>(), val in any::<u8>(),
                                   cut in 1usize..97) {
            let mut bytes = entire("$.x", &data);
            let p = pos.index(bytes.len());
            bytes[p] = val;
            let mut w = Writer::default();
            let mut ok = |_| Ok(());
            for piece in bytes.chunks(cut) {
                if w.write(piece, &mut ok).is_err() {
                    prop_assert!(w.is_empty());
                    break;
                }
            }
            let _ = w.written();
        }
    }
}
