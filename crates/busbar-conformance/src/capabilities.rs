//! Capabilities: nodes, handles, sending to handles, carrying
//! handles, destroying and releasing nodes, quotas.

use busbar::{Bus, Errno, Flags, HandleId, Outgoing, Quota, synthetic};

use crate::util::*;

/// Gives `to` a handle to `node` (owned by `owner`) through a named message;
/// returns `to`'s handle id.
fn give(owner: &busbar::Endpoint, node: HandleId, to: &busbar::Endpoint, name: &str) -> HandleId {
    owner
        .send(Outgoing::announcement(name, &b""[..]).carrying(vec![node]))
        .unwrap();
    let m = next(to);
    assert_eq!(m.handles.len(), 1);
    m.handles[0]
}

/// A node's owner gets a handle; carrying it gives the receiver its own
/// handle; a message to that handle reaches the owner, naming the owner's
/// handle, with the sender's credentials.
pub fn create_carry_and_send(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, other] = open_n(&bus);
    other.bind("$.offer").unwrap();
    let n1 = owner.create_node().unwrap();
    let n2 = owner.create_node().unwrap();
    assert_eq!((n1, n2), (HandleId(1), HandleId(2)));
    assert_eq!(
        (owner.stats().unwrap().nodes, owner.stats().unwrap().handles),
        (2, 2)
    );
    let h = give(&owner, n2, &other, "$.offer");
    assert_eq!(h, HandleId(1), "handle ids are local to their holder");
    let id = other
        .send_to_handles(&[h], "$.call.me", &b"hi"[..])
        .unwrap();
    let m = next(&owner);
    assert_eq!((m.id, m.from, m.destination), (id, other.id(), n2));
    assert_eq!(&m.data[..], b"hi");
    let st = other.stats().unwrap();
    assert_eq!((m.creds.pid, m.creds.uid), (st.pid, st.uid));
    assert_eq!(m.flags, Flags::empty());
    // Named messages name no node.
    owner.announce("$.offer", &b""[..]).unwrap();
    assert_eq!(next(&other).destination, HandleId::INVALID);
}

/// One handle per node per holder, with a reference count; ids are never
/// reused; the owner's own handle is pinned while the node lives.
pub fn coalesce_count_and_pin(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, other] = open_n(&bus);
    other.bind("$.offer").unwrap();
    let node = owner.create_node().unwrap();
    let h1 = give(&owner, node, &other, "$.offer");
    let h2 = give(&owner, node, &other, "$.offer");
    assert_eq!(h1, h2, "coalesced");
    other.release_handle(h1).unwrap();
    other.send_to_handles(&[h1], "$.still", &b""[..]).unwrap();
    assert_eq!(next(&owner).name.as_ref(), "$.still");
    other.release_handle(h1).unwrap();
    assert_err(other.release_handle(h1), Errno::ENOENT);
    assert_err(
        other.send_to_handles(&[h1], "$.gone", &b""[..]),
        Errno::ENOENT,
    );
    let h3 = give(&owner, node, &other, "$.offer");
    assert!(h3 != h1, "ids are never reused");
    // The owner's last reference is pinned.
    assert_no_effect(&bus, Errno::EBUSY, || owner.release_handle(node));
    // A carried copy of its own node gives the owner a second reference.
    owner.bind("$.self").unwrap();
    let again = give(&owner, node, &owner, "$.self");
    assert_eq!(again, node);
    owner.release_handle(node).unwrap();
    assert_err(owner.release_handle(node), Errno::EBUSY);
}

/// Sending to handles is an atomic multicast in the bus's one order:
/// duplicates and unknown handles are refused, a full owner fails the whole
/// send, and a receiver sees named and handle messages in send order.
pub fn multicast_is_atomic_and_ordered(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [a, b, s] = open_n(&bus);
    s.bind("$.offer").unwrap();
    let na = a.create_node().unwrap();
    let nb = b.create_node().unwrap();
    let ha = give(&a, na, &s, "$.offer");
    let hb = give(&b, nb, &s, "$.offer");
    assert_no_effect(&bus, Errno::EINVAL, || {
        s.send_to_handles(&[ha, hb, ha], "$.x", &b""[..])
    });
    assert_no_effect(&bus, Errno::ENOENT, || {
        s.send_to_handles(&[ha, HandleId(99)], "$.x", &b""[..])
    });
    assert_no_effect(&bus, Errno::EINVAL, || {
        s.send(Outgoing::to_handles(vec![ha], "$.x", &b""[..]).with_flags(Flags::WANT_A_REPLY))
    });
    assert_no_effect(&bus, Errno::EBADMSG, || {
        s.send_to_handles(&[ha], "$.", &b""[..])
    });
    b.set_queue_limit(1).unwrap();
    b.announce("$.nobody", &b""[..]).unwrap();
    b.bind("$.fill").unwrap();
    s.announce("$.fill", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EBUSY, || {
        s.send_to_handles(&[ha, hb], "$.x", &b""[..])
    });
    assert_empty(&a);
    next(&b);
    b.set_queue_limit(100).unwrap();
    // Named and handle messages interleave in one order.
    a.bind("$.named").unwrap();
    let m1 = s.send_to_handles(&[ha, hb], "$.x", &b"1"[..]).unwrap();
    let m2 = s.announce("$.named", &b"2"[..]).unwrap();
    let m3 = s.send_to_handles(&[hb, ha], "$.x", &b"3"[..]).unwrap();
    let seen: Vec<_> = (0..3).map(|_| next(&a).id).collect();
    assert_eq!(seen, [m1, m2, m3]);
    assert_eq!((next(&b).id, next(&b).id), (m1, m3));
}

/// Destroying nodes: every holder is told after every earlier message;
/// later sends are discarded; carried handles arrive invalid; errors.
pub fn destroy(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, h1, h2] = open_n(&bus);
    h1.bind("$.offer").unwrap();
    h2.bind("$.offer").unwrap();
    let n = owner.create_node().unwrap();
    let spare = owner.create_node().unwrap();
    owner
        .send(Outgoing::announcement("$.offer", &b""[..]).carrying(vec![n]))
        .unwrap();
    let x1 = next(&h1).handles[0];
    let x2 = next(&h2).handles[0];
    // A message queued before the destroy stays before the notice.
    let before = owner.announce("$.offer", &b"before"[..]).unwrap();
    assert_no_effect(&bus, Errno::EPERM, || h1.destroy_nodes(&[x1]));
    assert_no_effect(&bus, Errno::EINVAL, || owner.destroy_nodes(&[n, n]));
    assert_no_effect(&bus, Errno::ENOENT, || owner.destroy_nodes(&[HandleId(77)]));
    owner.destroy_nodes(&[n]).unwrap();
    for (e, x) in [(&h1, x1), (&h2, x2)] {
        assert_eq!(next(e).id, before);
        let d = next(e);
        assert!(d.is_synthetic());
        assert_eq!(
            (d.name.as_ref(), d.destination, d.from, d.to),
            (synthetic::NODE_DESTROYED, x, owner.id(), e.id())
        );
    }
    let mine = next(&owner);
    assert_eq!(
        (mine.name.as_ref(), mine.destination),
        (synthetic::NODE_DESTROYED, n)
    );
    assert_no_effect(&bus, Errno::EINVAL, || owner.destroy_nodes(&[n]));
    // Later sends to it are discarded (not an error).
    h1.send_to_handles(&[x1], "$.late", &b""[..]).unwrap();
    assert_empty(&owner);
    // Handles to it in later messages arrive invalid.
    h1.send(Outgoing::announcement("$.offer", &b""[..]).carrying(vec![x1]))
        .unwrap();
    assert_eq!(next(&h2).handles, [HandleId::INVALID]);
    // The owner's pin goes with the node; handles are released as usual.
    owner.release_handle(n).unwrap();
    h1.release_handle(x1).unwrap();
    // The other node is untouched.
    assert_err(owner.release_handle(spare), Errno::EBUSY);
}

/// The owner is told when the last other handle goes (in flight ones
/// included), and the notice is withdrawn if a handle comes back first.
pub fn release_notice(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, other] = open_n(&bus);
    other.bind("$.offer").unwrap();
    let n = owner.create_node().unwrap();
    let h = give(&owner, n, &other, "$.offer");
    // A handle sitting unread in a queue counts.
    owner
        .send(Outgoing::announcement("$.offer", &b""[..]).carrying(vec![n]))
        .unwrap();
    other.release_handle(h).unwrap();
    assert_empty(&owner);
    assert_eq!(next(&other).handles, [h]);
    other.release_handle(h).unwrap();
    let r = next(&owner);
    assert!(r.is_synthetic());
    assert_eq!(
        (r.name.as_ref(), r.destination, r.to),
        (synthetic::NODE_RELEASED, n, owner.id())
    );
    // Released again, then a handle comes back before the notice is read:
    // the notice is withdrawn.
    let h2 = give(&owner, n, &other, "$.offer");
    other.release_handle(h2).unwrap();
    assert_eq!(owner.stats().unwrap().queued, 1);
    give(&owner, n, &other, "$.offer");
    assert_empty(&owner);
}

/// Closing an endpoint destroys its nodes (holders are told) and releases
/// its handles (owners left alone are told).
pub fn close(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, holder, third] = open_n(&bus);
    holder.bind("$.offer").unwrap();
    let n = owner.create_node().unwrap();
    give(&owner, n, &holder, "$.offer");
    let m = third.create_node().unwrap();
    third
        .send(Outgoing::announcement("$.offer", &b""[..]).carrying(vec![m]))
        .unwrap();
    next(&holder);
    drop(holder);
    let r = next(&third);
    assert_eq!(
        (r.name.as_ref(), r.destination),
        (synthetic::NODE_RELEASED, m)
    );
    let [late] = open_n(&bus);
    late.bind("$.offer").unwrap();
    let lh = give(&owner, n, &late, "$.offer");
    drop(owner);
    let d = next(&late);
    assert_eq!(
        (d.name.as_ref(), d.destination),
        (synthetic::NODE_DESTROYED, lh)
    );
    late.send_to_handles(&[lh], "$.nobody", &b""[..]).unwrap();
    late.release_handle(lh).unwrap();
}

/// Quotas: messages and bytes are charged to the receiving user when
/// queued; a send that would go over fails whole (`EDQUOT`, no effect);
/// taking a message refunds it.
pub fn quota_messages_and_bytes(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, a, b] = open_n(&bus);
    a.bind("$.q").unwrap();
    b.bind("$.q").unwrap();
    let st = bus.quota_stats().unwrap();
    assert!(st.users.is_empty());
    // Messages queued before a quota is set are counted once it is.
    s.announce("$.q", &b"x"[..]).unwrap(); // a copy each: 2 messages
    let old = bus
        .set_quota(Quota {
            messages: 3,
            ..Quota::default()
        })
        .unwrap();
    assert_eq!(old, st.quota);
    assert_eq!(bus.quota_stats().unwrap().users[0].messages, 2);
    assert_no_effect(&bus, Errno::EDQUOT, || s.announce("$.q", &b"y"[..]));
    next(&a);
    s.announce("$.q", &b"y"[..]).unwrap();
    let u = bus.quota_stats().unwrap().users;
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].messages, u[0].bytes), (3, 3 * 4));
    assert_eq!(a.stats().unwrap().queued_bytes, 4);
    // Bytes.
    while a.try_recv().unwrap().is_some() {}
    while b.try_recv().unwrap().is_some() {}
    assert!(bus.quota_stats().unwrap().users.is_empty());
    bus.set_quota(Quota {
        bytes: 10,
        ..Quota::default()
    })
    .unwrap();
    assert_no_effect(&bus, Errno::EDQUOT, || s.announce("$.q", vec![0u8; 3]));
    b.unbind("$.q").unwrap();
    s.announce("$.q", vec![0u8; 3]).unwrap();
    assert_eq!(next(&a).data.len(), 3);
}

/// Handles count against the holder's user: creating a node or receiving
/// a new handle over quota fails with `EDQUOT`.
pub fn quota_handles(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [owner, other] = open_n(&bus);
    other.bind("$.offer").unwrap();
    bus.set_quota(Quota {
        handles: 2,
        ..Quota::default()
    })
    .unwrap();
    let n1 = owner.create_node().unwrap();
    let h = give(&owner, n1, &other, "$.offer");
    assert_eq!(bus.quota_stats().unwrap().users[0].handles, 2);
    assert_eq!(
        (
            owner.stats().unwrap().handles,
            other.stats().unwrap().handles
        ),
        (1, 1)
    );
    assert_no_effect(&bus, Errno::EDQUOT, || owner.create_node());
    // Another reference to a handle it already has costs nothing.
    give(&owner, n1, &other, "$.offer");
    other.release_handle(h).unwrap();
    other.release_handle(h).unwrap();
    let n2 = owner.create_node().unwrap();
    assert_no_effect(&bus, Errno::EDQUOT, || {
        owner.send(Outgoing::announcement("$.offer", &b""[..]).carrying(vec![n2]))
    });
}

/// A file that holds `text`, opened read-only (an fd to pass around).
fn file_with(text: &str) -> std::os::fd::OwnedFd {
    use std::io::Write;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "busbar-conformance-fd-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    f.into()
}

/// Reads a whole file through `fd` (from offset 0, not moving its offset).
fn read_fd(fd: &std::os::fd::OwnedFd) -> String {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd.try_clone().unwrap());
    let mut buf = vec![0u8; 64];
    let n = f.read_at(&mut buf, 0).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// File descriptors travel with any message (named or to handles): every
/// receiver gets them; at most `MAX_FDS_PER_MESSAGE` per message; they
/// count against the receiver's quota.
pub fn fds(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, a, b] = open_n(&bus);
    a.bind("$.fd").unwrap();
    b.bind("$.fd").unwrap();
    s.send(
        Outgoing::announcement("$.fd", &b""[..]).with_fds(vec![file_with("one"), file_with("two")]),
    )
    .unwrap();
    let (ma, mb) = (next(&a), next(&b));
    // Each receiver has its own fds.
    use std::os::fd::AsRawFd;
    assert_ne!(ma.fds()[0].as_raw_fd(), mb.fds()[0].as_raw_fd());
    for m in [ma, mb] {
        assert_eq!(m.fds().len(), 2);
        assert_eq!(
            (read_fd(&m.fds()[0]), read_fd(&m.fds()[1])),
            ("one".into(), "two".into())
        );
    }
    // To a node, with a handle too.
    let node = a.create_node().unwrap();
    a.send(Outgoing::announcement("$.fd", &b""[..]).carrying(vec![node]))
        .unwrap();
    next(&a);
    let h = next(&b).handles[0];
    b.send(Outgoing::to_handles(vec![h], "$.to.node", &b""[..]).with_fds(vec![file_with("three")]))
        .unwrap();
    let m = next(&a);
    assert_eq!(
        (m.destination, read_fd(&m.fds()[0])),
        (node, "three".into())
    );
    // The limit per message.
    let one = file_with("x");
    let many: Vec<_> = (0..=busbar::MAX_FDS_PER_MESSAGE)
        .map(|_| one.try_clone().unwrap())
        .collect();
    assert_no_effect(&bus, Errno::ETOOMANYREFS, || {
        s.send(Outgoing::announcement("$.fd", &b""[..]).with_fds(many))
    });
    // Fds count against the receiving user's quota.
    bus.set_quota(Quota {
        fds: 1,
        ..Quota::default()
    })
    .unwrap();
    assert_no_effect(&bus, Errno::EDQUOT, || {
        s.send(Outgoing::announcement("$.fd", &b""[..]).with_fds(vec![file_with("y")]))
    });
    b.unbind("$.fd").unwrap();
    s.send(Outgoing::announcement("$.fd", &b""[..]).with_fds(vec![file_with("z")]))
        .unwrap();
    assert_eq!(bus.quota_stats().unwrap().users[0].fds, 1);
    assert_eq!(read_fd(&next(&a).fds()[0]), "z");
    assert!(bus.quota_stats().unwrap().users.iter().all(|u| u.fds == 0));
}
