"""The bus's main rules through the Python package, on both transports."""

import array
import errno
import os
import select
import threading

import pytest

import busbar
from busbar import Flags


def test_names_and_errors(bus):
    with bus.open() as e:
        for bad in ["", "fred", "$.", "$.a..b", "$.a.", "$.a b"]:
            with pytest.raises(busbar.InvalidNameError) as info:
                e.bind(bad)
            assert info.value.errno == errno.EBADMSG
            assert isinstance(info.value, OSError)
        with pytest.raises(busbar.InvalidNameError) as info:
            e.bind("$." + "a" * 1000)
        assert info.value.errno == errno.ENAMETOOLONG
        with pytest.raises(busbar.InvalidNameError):
            e.announce("$.a.*")
        e.bind("$.a.*")
        e.bind("$.a.%")


def test_wrong_types_raise_and_never_crash(bus):
    with bus.open() as e:
        with pytest.raises(TypeError):
            e.bind(42)
        with pytest.raises(TypeError, match="not str"):
            e.announce("$.x", "not bytes")
        with pytest.raises(TypeError, match="not int"):
            e.announce("$.x", 5)
        with pytest.raises(TypeError):
            e.send("$.x", b"", flags="urgent")
        with pytest.raises(OverflowError):
            e.send("$.x", b"", flags=-1)
        with pytest.raises(OverflowError):
            e.release_handle(-3)
        for t in [-1, float("nan")]:
            with pytest.raises(ValueError, match="timeout"):
                e.recv(timeout=t)
        with pytest.raises(TypeError):
            e.recv(timeout="soon")
        with pytest.raises(busbar.InvalidNameError):
            e.bind("$.a\0b")
        for fd in [-1, 1 << 20]:
            with pytest.raises(busbar.BusbarError) as info:
                e.send("$.x", b"", fds=[fd])
            assert info.value.errno == errno.EBADF
        with pytest.raises(TypeError):
            e.reply("not a message", b"")
        # Anything with the buffer protocol is data.
        e.bind("$.x")
        e.announce("$.x", bytearray(b"ba"))
        e.announce("$.x", memoryview(b"xmvx")[1:3])
        e.announce("$.x", array.array("B", [1, 2]))
        assert [m.data for m in e.try_recv_batch(10)] == [b"ba", b"mv", b"\x01\x02"]
        bus.set_max_message_size(100)
        with pytest.raises(busbar.BusbarError) as info:
            e.announce("$.x", b"x" * 200)
        assert info.value.errno == errno.EMSGSIZE


def test_replier_precedence_and_uniqueness(bus):
    with bus.open() as star, bus.open() as pct, bus.open() as exact, bus.open() as c:
        star.bind("$.s.*", replier=True)
        pct.bind("$.s.%", replier=True)
        exact.bind("$.s.k.t", replier=True)
        with pytest.raises(busbar.AddressInUseError):
            c.bind("$.s.*", replier=True)
        assert bus.find_replier("$.s.k.t") == exact.id
        assert bus.find_replier("$.s.k") == pct.id
        assert bus.find_replier("$.s.l.t") == star.id
        c.request("$.s.k", b"")
        m = pct.recv(timeout=10)
        assert m.wants_us_to_reply and m.flags & Flags.WANT_YOU_TO_REPLY
        with pytest.raises(busbar.NoReplierError) as info:
            c.request("$.nobody", b"")
        assert info.value.errno == errno.EADDRNOTAVAIL


def test_request_reply_and_listeners(bus):
    with bus.open() as r, bus.open() as listener, bus.open() as c:
        r.bind("$.svc", replier=True)
        listener.bind("$.svc")
        rid = c.request("$.svc", b"ping")
        req = r.recv(timeout=10)
        assert (req.name, req.data, req.from_, req.id) == ("$.svc", b"ping", c.id, rid)
        assert req.creds == (os.getpid(), os.getuid(), os.getgid())
        r.reply(req, b"pong")
        reply = c.wait_reply(rid, timeout=10)
        assert (reply.data, reply.in_reply_to, reply.is_reply) == (b"pong", rid, True)
        # The listener saw both, in bus order.
        assert listener.recv(timeout=10).id == rid
        assert listener.recv(timeout=10).in_reply_to == rid
        # Only once.
        with pytest.raises(busbar.NotAllowedError) as info:
            r.reply(req, b"again")
        assert info.value.errno == errno.ECONNREFUSED
        # A stateful request reaches the same replier.
        earlier = reply
        assert listener.try_recv() is None
        c.stateful_request(earlier, "$.svc", b"s")
        assert r.recv(timeout=10).to == r.id
        with pytest.raises(ValueError):
            c.stateful_request(req, "$.svc", b"")


def test_call_and_timeout(bus):
    with bus.open() as r, bus.open() as c:
        r.bind("$.late", replier=True)
        with pytest.raises(busbar.BusTimeoutError) as info:
            c.call("$.late", b"", timeout=0.05)
        assert info.value.errno == errno.ETIMEDOUT
        req = r.recv(timeout=10)
        r.reply(req, b"late")
        # The late reply arrives in the ordinary queue.
        assert c.recv(timeout=10).data == b"late"


@pytest.mark.parametrize("how", ["gone_away", "ignored", "unbound"])
def test_the_reply_guarantee(bus, how):
    with bus.open() as c:
        r = bus.open()
        r.bind("$.g", replier=True)
        rid = c.request("$.g", b"")
        if how == "gone_away":
            r.close()
            name = busbar.GONE_AWAY
        elif how == "ignored":
            assert r.recv(timeout=10).id == rid
            r.close()
            name = busbar.IGNORED
        else:
            r.unbind("$.g", replier=True)
            r.close()
            name = busbar.UNBOUND
        m = c.wait_reply(rid, timeout=10)
        assert (m.name, m.is_synthetic, m.in_reply_to) == (name, True, rid)


def test_full_queues_loss_and_all_or(bus):
    with bus.open() as s, bus.open() as full, bus.open() as ok:
        full.bind("$.q")
        ok.bind("$.q")
        assert full.set_queue_limit(1) == 100
        s.announce("$.q", b"1")
        s.announce("$.q", b"2")  # lost by `full`, never silently
        with pytest.raises(busbar.QueueFullError) as info:
            s.send("$.q", b"3", flags=Flags.ALL_OR_FAIL)
        assert info.value.errno == errno.EBUSY
        assert full.recv(timeout=10).data == b"1"
        s.announce("$.q", b"4")
        m = full.recv(timeout=10)
        assert (m.data, m.lost) == (b"4", 1)
        assert full.stats()["lost"] == 1
        assert [ok.recv(timeout=10).data for _ in range(3)] == [b"1", b"2", b"4"]
        # ALL_OR_WAIT: pending until room, then delivered.
        s.announce("$.q", b"5")
        with pytest.raises(busbar.QueueFullError) as info:
            s.send("$.q", b"6", flags=Flags.ALL_OR_WAIT)
        assert info.value.errno == errno.EAGAIN
        assert full.recv(timeout=10).data == b"5"
        assert full.recv(timeout=10).data == b"6"
        outcome = s.take_send_outcome()
        assert outcome is not None and outcome[1] == 0


def test_urgent_and_only_once(bus):
    with bus.open() as s, bus.open() as l:
        l.bind("$.u")
        l.bind("$.%")
        s.announce("$.u", b"a")
        s.send("$.u", b"b", flags=Flags.URGENT)
        got = [l.try_recv().data for _ in range(4)]
        assert got == [b"b", b"b", b"a", b"a"]
        assert l.set_only_once(True) is False
        s.announce("$.u", b"c")
        assert l.try_recv().data == b"c"
        assert l.try_recv() is None


def test_readiness_fd_with_select(bus):
    with bus.open() as s, bus.open() as l:
        l.bind("$.r")
        assert select.select([l], [], [], 0)[0] == []
        s.announce("$.r", b"")
        assert select.select([l], [], [], 10)[0] == [l]
        l.try_recv()
        assert select.select([l], [], [], 0)[0] == []


def test_nodes_handles_and_fds(bus):
    with bus.open() as owner, bus.open() as other:
        node = owner.create_node()
        other.bind("$.cap")
        owner.send("$.cap", b"here", handles=[node])
        m = other.recv(timeout=10)
        (h,) = m.handles
        other.send("$.to.node", b"hi", to_handles=[h])
        got = owner.recv(timeout=10)
        assert (got.data, got.destination, got.from_) == (b"hi", node, other.id)
        with pytest.raises(busbar.QueueFullError):
            owner.release_handle(node)  # EBUSY: the owner's last reference
        # An fd: the receiver gets its own copy.
        r, w = os.pipe()
        owner.bind("$.fd")
        other.send("$.fd", b"", fds=[w])
        os.close(w)
        (fd,) = owner.recv(timeout=10).take_fds()
        os.write(fd, b"through the bus")
        os.close(fd)
        assert os.read(r, 100) == b"through the bus"
        os.close(r)
        # File objects both ways.
        r, w = os.pipe()
        with open(w, "wb", buffering=0) as wf:
            other.send("$.fd", b"", fds=[wf])
        (f,) = owner.recv(timeout=10).take_files("wb", buffering=0)
        with f:
            f.write(b"as a file")
        assert os.read(r, 100) == b"as a file"
        os.close(r)
        with pytest.raises(TypeError, match="fileno"):
            other.send("$.fd", b"", fds=["not an fd"])
        owner.destroy_nodes([node])


def test_names_and_stats(bus):
    with bus.open() as a:
        a.bind("$.n", replier=True)
        (b,) = bus.names()
        assert (b.endpoint, b.pid, b.uid, b.replier, b.name) == (a.id, os.getpid(), os.getuid(), True, "$.n")
        assert "name='$.n'" in repr(b) or 'name="$.n"' in repr(b)
        s = bus.stats()
        assert s["bindings"] == 1 and s["endpoints"][0]["id"] == a.id
        with pytest.raises(busbar.NoReplierError):
            a.request("$.nobody")
        a.announce("$.n")
        c = bus.stats()["counters"]
        assert (c["sent"], c["refused"]) == (1, {"EADDRNOTAVAIL": 1})
        assert c["synthetic"][busbar.GONE_AWAY] == 0


def test_close_from_another_thread_ends_a_blocking_recv(bus):
    e = bus.open()
    e.bind("$.nothing")
    out = []

    def listen():
        out.extend(m for m in e)  # until closed

    t = threading.Thread(target=listen)
    t.start()
    e.close()
    t.join(30)
    assert not t.is_alive() and out == []
    with pytest.raises(busbar.BusbarError) as info:
        e.recv()
    assert info.value.errno == errno.EBADF


def test_closed_endpoint(bus):
    e = bus.open()
    e.close()
    e.close()
    assert e.closed
    with pytest.raises(busbar.BusbarError) as info:
        e.announce("$.x")
    assert info.value.errno == errno.EBADF


def test_batches(bus):
    with bus.open() as s, bus.open() as l:
        l.bind("$.b")
        assert l.try_recv_batch() == []
        assert l.recv_batch(timeout=0.01) == []
        for i in range(5):
            s.announce("$.b", bytes([i]))
        assert [m.data for m in l.try_recv_batch(3)] == [b"\0", b"\1", b"\2"]
        assert [m.data for m in l.recv_batch(10, timeout=10)] == [b"\3", b"\4"]
        with pytest.raises(busbar.BusbarError) as info:
            l.try_recv_batch(0)
        assert info.value.errno == errno.EINVAL
        # send_batch: one result per message, errors returned in place.
        l.set_queue_limit(2)
        res = s.send_batch([("$.b", b"a"), ("$.bad name", b""), ("$.b", b"u", Flags.URGENT), ("$.b", b"f", Flags.ALL_OR_FAIL)])
        assert isinstance(res[0], tuple) and isinstance(res[2], tuple)
        assert isinstance(res[1], busbar.InvalidNameError) and res[1].errno == errno.EBADMSG
        assert isinstance(res[3], busbar.QueueFullError) and res[3].errno == errno.EBUSY
        assert [m.data for m in l.try_recv_batch()] == [b"u", b"a"]
        with pytest.raises(TypeError, match="tuples"):
            s.send_batch([("$.b",)])


def test_iteration_and_infinite_timeout(bus):
    with bus.open() as s, bus.open() as l:
        l.bind("$.i")
        for i in range(3):
            s.announce("$.i", bytes([i]))
        got = []
        for m in l:
            got.append(m.data)
            if len(got) == 3:
                break
        assert got == [b"\0", b"\1", b"\2"]
        s.announce("$.i", b"x")
        assert l.recv(timeout=float("inf")).data == b"x"


def test_large_data(bus):
    with bus.open() as s, bus.open() as l:
        l.bind("$.big")
        data = os.urandom(3 << 20)
        s.announce("$.big", data)
        assert l.recv(timeout=30).data == data
        # Past the default maximum (64 MiB, name included): refused, whole.
        with pytest.raises(busbar.BusbarError) as info:
            s.announce("$.big", bytes(64 << 20))
        assert info.value.errno == errno.EMSGSIZE
        assert l.try_recv() is None
