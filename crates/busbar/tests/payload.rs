//! Large data without copies, on both transports: through a daemon, data of
//! at least `memfd_threshold()` bytes travels as one sealed memfd that every
//! receiver maps; in-process every receiver shares the sender's bytes. Sizes
//! around the threshold, 64 MiB with the default configuration, many
//! receivers, `PayloadBuffer`, receivers that close unread (no fd or mapping
//! left anywhere), unsealed memfds refused, quotas charged and released.
//!
//! The daemon runs in this process (`support::daemon_bus`), so counting this
//! process's fds and memfd mappings counts the daemon's and the clients'
//! together; the cases of this file run one at a time.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use busbar::{
    Attachment, Bus, Bytes, Errno, Outgoing, PayloadBuffer, Quota, is_sealed_memfd, memfd_threshold,
};

mod support;

use support::daemon_bus;

/// Serialises the cases (some count the process's fds and mappings).
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Mappings of payload memfds in this process.
fn memfd_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:busbar-payload"))
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn sizes_around_the_threshold_through_the_daemon() {
    let _x = exclusive();
    let bus = daemon_bus();
    let (s, l) = (bus.open().unwrap(), bus.open().unwrap());
    l.bind("$.t").unwrap();
    let t = memfd_threshold();
    for (len, memfd) in [(t - 1, false), (t, true), (t + 1, true)] {
        let data = pattern(len, len as u8);
        s.announce("$.t", data.clone()).unwrap();
        let m = l.recv().unwrap();
        assert_eq!(m.data.len(), len);
        assert!(m.data[..] == data[..], "{len} bytes intact");
        assert_eq!(is_sealed_memfd(&m.data), memfd, "{len} bytes");
        assert!(
            m.fds().is_empty(),
            "the data's memfd is not one of the message's fds"
        );
    }
}

#[test]
fn in_process_data_is_never_copied() {
    let _x = exclusive();
    let bus = Bus::in_process();
    let s = bus.open().unwrap();
    let ls: Vec<_> = (0..4).map(|_| bus.open().unwrap()).collect();
    for l in &ls {
        l.bind("$.big").unwrap();
    }
    let data = Bytes::from(pattern(8 << 20, 1));
    s.announce("$.big", data.clone()).unwrap();
    for l in &ls {
        assert_eq!(l.recv().unwrap().data.as_ptr(), data.as_ptr());
    }
}

/// 64 MiB with the default configuration, to four receivers, through the
/// daemon: one memfd, mapped by each; built in place with `PayloadBuffer`.
#[test]
fn sixty_four_mib_to_four_receivers() {
    let _x = exclusive();
    let bus = daemon_bus();
    let s = bus.open().unwrap();
    let ls: Vec<_> = (0..4).map(|_| bus.open().unwrap()).collect();
    for l in &ls {
        l.bind("$.frame").unwrap();
    }
    let len = (64 << 20) - "$.frame".len();
    let mut buf = PayloadBuffer::new(len).unwrap();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let data = buf.seal().unwrap();
    assert!(is_sealed_memfd(&data));
    s.announce("$.frame", data.clone()).unwrap();
    // One byte more is refused, as for any data.
    assert_eq!(
        s.announce("$.frame", vec![0u8; len + 1]).unwrap_err(),
        Errno::EMSGSIZE
    );
    for l in &ls {
        let m = l.recv().unwrap();
        assert!(is_sealed_memfd(&m.data));
        assert!(m.data[..] == data[..]);
    }
}

/// Receivers that close with large messages unread, and messages dropped
/// read: afterwards no memfd is mapped or open anywhere in the process.
#[test]
fn nothing_left_when_receivers_close_unread() {
    let _x = exclusive();
    let (fds0, maps0) = (open_fds(), memfd_mappings());
    {
        let bus = daemon_bus();
        let s = bus.open().unwrap();
        let mut ls: Vec<_> = (0..3).map(|_| bus.open().unwrap()).collect();
        for l in &ls {
            l.bind("$.x").unwrap();
        }
        for i in 0..10 {
            s.announce("$.x", pattern(1 << 20, i)).unwrap();
        }
        assert!(memfd_mappings() > maps0, "the daemon maps what it holds");
        // One reads everything, two close unread.
        let reader = ls.remove(0);
        for _ in 0..10 {
            assert!(is_sealed_memfd(&reader.recv().unwrap().data));
        }
        for l in ls {
            l.close().unwrap();
        }
        assert_eq!(memfd_mappings(), maps0, "closed unread: the daemon let go");
    }
    assert_eq!(memfd_mappings(), maps0);
    assert_eq!(open_fds(), fds0, "no fd left behind");
}

/// A memfd made the way a careless or hostile sender would: not sealed, so
/// it could still change after the send.
fn unsealed_memfd(data: &[u8]) -> OwnedFd {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = memfd_create("evil", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::io::write(&fd, data).unwrap();
    fd
}

/// Data "in" an fd that is not a sealed memfd: the daemon refuses the send
/// with `EINVAL` and delivers nothing; in-process the marker itself is
/// refused (it exists only on the wire).
#[test]
fn unsealed_data_fds_are_refused() {
    let _x = exclusive();
    for (transport, bus) in [("in-process", Bus::in_process()), ("daemon", daemon_bus())] {
        let (s, l) = (bus.open().unwrap(), bus.open().unwrap());
        l.bind("$.evil").unwrap();
        let mut m = Outgoing::announcement("$.evil", Bytes::new());
        m.set_attached_fds(Some(Attachment {
            count: 1,
            data_in_last: true,
            payload: Arc::new(vec![unsealed_memfd(b"changeable")]),
        }));
        assert_eq!(s.send(m).unwrap_err(), Errno::EINVAL, "{transport}");
        assert!(l.try_recv().unwrap().is_none(), "{transport}");
    }
}

/// The receiving user is charged the data's bytes while it is queued, and
/// released when it is taken: memfd or not, a quota counts bytes.
#[test]
fn quotas_charge_the_bytes() {
    let _x = exclusive();
    let bus = daemon_bus();
    bus.set_quota(Quota {
        bytes: 3 << 20,
        ..Quota::default()
    })
    .unwrap();
    let (s, l) = (bus.open().unwrap(), bus.open().unwrap());
    l.bind("$.q").unwrap();
    s.announce("$.q", pattern(2 << 20, 0)).unwrap();
    let charged: u64 = bus
        .quota_stats()
        .unwrap()
        .users
        .iter()
        .map(|u| u.bytes)
        .sum();
    assert!(charged >= 2 << 20, "charged {charged}");
    assert_eq!(
        s.announce("$.q", pattern(2 << 20, 1)).unwrap_err(),
        Errno::EDQUOT
    );
    assert!(is_sealed_memfd(&l.recv().unwrap().data));
    let left: u64 = bus
        .quota_stats()
        .unwrap()
        .users
        .iter()
        .map(|u| u.bytes)
        .sum();
    assert_eq!(left, 0);
    s.announce("$.q", pattern(2 << 20, 2)).unwrap();
}
