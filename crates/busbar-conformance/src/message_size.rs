//! Maximum message size: per bus, name plus data bytes.

use busbar::{Bus, Errno, MIN_MAX_MESSAGE_SIZE, Outgoing};

use crate::util::*;

const DEFAULT: u32 = 64 << 20;
const ABSOLUTE: u32 = 64 << 20;

/// Default 64 MiB (the absolute maximum), counting name plus data; one
/// byte more is `EMSGSIZE`.
pub fn default_limit(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_eq!(bus.stats().unwrap().max_message_size, DEFAULT);
    let [s, l, r] = open_n(&bus);
    let name = "$.abcdef"; // 8 bytes
    l.bind(name).unwrap();
    r.bind_replier(name).unwrap();
    let fits = DEFAULT as usize - name.len();
    let id = s.announce(name, vec![7u8; fits]).unwrap();
    let m = next(&l);
    assert_eq!((m.id, m.data.len()), (id, fits));
    assert_no_effect(&bus, Errno::EMSGSIZE, || {
        s.announce(name, vec![7u8; fits + 1])
    });
    assert_no_effect(&bus, Errno::EMSGSIZE, || {
        s.request(name, vec![7u8; fits + 1])
    });
    s.request(name, vec![7u8; fits]).unwrap();
    next(&l);
    let req = next(&r);
    assert_no_effect(&bus, Errno::EMSGSIZE, || r.reply(&req, vec![0u8; fits + 1]));
    r.reply(&req, vec![0u8; fits]).unwrap();
    assert_eq!(next(&s).data.len(), fits);
}

/// The limit is settable (returns the previous value) and applies at once.
pub fn set_limit(make: &dyn Fn() -> Bus) {
    let bus = make();
    assert_eq!(MIN_MAX_MESSAGE_SIZE, 100);
    assert_eq!(bus.set_max_message_size(100).unwrap(), DEFAULT);
    assert_eq!(bus.stats().unwrap().max_message_size, 100);
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    s.announce("$.a", vec![0u8; 97]).unwrap();
    assert_no_effect(&bus, Errno::EMSGSIZE, || s.announce("$.a", vec![0u8; 98]));
    assert_no_effect(&bus, Errno::EMSGSIZE, || {
        s.send(Outgoing::announcement(
            &format!("$.{}", "n".repeat(99)),
            &b""[..],
        ))
    });
    assert_eq!(bus.set_max_message_size(ABSOLUTE).unwrap(), 100);
    s.announce("$.a", vec![0u8; 98]).unwrap();
    assert_eq!(ids(&drain(&l)).len(), 2);
    assert_eq!(bus.set_max_message_size(DEFAULT).unwrap(), ABSOLUTE);
}

/// Outside `MIN_MAX_MESSAGE_SIZE..=64 MiB`: `EINVAL`, nothing changes.
pub fn out_of_range(make: &dyn Fn() -> Bus) {
    let bus = make();
    for bad in [0, 1, 99, ABSOLUTE + 1, u32::MAX] {
        assert_no_effect(&bus, Errno::EINVAL, || bus.set_max_message_size(bad));
    }
    assert_eq!(bus.stats().unwrap().max_message_size, DEFAULT);
    assert_eq!(bus.set_max_message_size(ABSOLUTE).unwrap(), DEFAULT);
}
