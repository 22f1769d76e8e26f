#!/usr/bin/env python3
"""The /dev/kbusN emulation (libbusbar_kbus.so) as a Python program sees it.

Run: busbar kbus [--socket PATH] -- python3 test_device.py
Exit status 0 when every test passes (unittest's usual output on stderr).

Only the standard library's os, fcntl, select, struct, ctypes, errno (and
unittest, subprocess, sys, stat) are used: no KBUS or busbar package. The
device ABI (header layout, ioctl numbers) is written out below from KBUS's
documented ABI (see docs/kbus.md). Names are "$.py.P<pid>.<test>", so runs can share a bus.
"""

import ctypes
import errno
import fcntl
import os
import select
import stat
import struct
import subprocess
import sys
import unittest

# ---------------------------------------------------------------- the ABI

START_GUARD = 0x7375624B  # "Kbus"
END_GUARD = 0x4B627573  # "subK"

# struct kbus_message_header, native byte order, 88 bytes on 64-bit:
# start_guard, id{network, serial}, in_reply_to{network, serial}, to, from,
# orig_from{2}, final_to{2}, extra, flags, name_len, data_len, (4 pad),
# char *name, void *data, end_guard, (4 pad).
HEADER = struct.Struct("=I2I2III2I2IIIII4xQQI4x")
assert HEADER.size == 88

# The REPLIER/BIND argument: {u32 is_replier | return_id; u32 name_len; char *name}.
BIND_ARG = struct.Struct("=IIQ")

WANT_A_REPLY = 0x1
WANT_YOU_TO_REPLY = 0x2
SYNTHETIC = 0x4
URGENT = 0x8
ALL_OR_WAIT = 0x100
ALL_OR_FAIL = 0x200

RESET = 0x6B01
BIND = 0x40086B02
UNBIND = 0x40086B03
KSOCKID = 0x80086B04
REPLIER = 0xC0086B05
NEXTMSG = 0x80086B06
LENLEFT = 0x80086B07
SEND = 0x80086B08
DISCARD = 0x6B09
LASTSENT = 0x80086B0A
MAXMSGS = 0xC0086B0B
NUMMSGS = 0x80086B0C
UNREPLIEDTO = 0x80086B0D
MAXMSGSIZE = 0xC0086B12


def padded_name_len(n):
    return (n + 1 + 3) // 4 * 4


def padded_data_len(d):
    return (d + 3) // 4 * 4


def entire_len(n, d):
    return HEADER.size + padded_name_len(n) + padded_data_len(d) + 4


def header(name_len, data_len, flags=0, to=0, in_reply_to=(0, 0), name_ptr=0,
           data_ptr=0, start=START_GUARD, end=END_GUARD):
    return HEADER.pack(start, 0, 0, in_reply_to[0], in_reply_to[1], to, 0,
                       0, 0, 0, 0, 0, flags, name_len, data_len,
                       name_ptr, data_ptr, end)


def entire(name, data=b"", **kw):
    """A message in entire form: header, padded name, padded data, guard."""
    name = name.encode() if isinstance(name, str) else name
    n, d = len(name), len(data)
    out = header(n, d, **kw)
    out += name + bytes(padded_name_len(n) - n)
    out += data + bytes(padded_data_len(d) - d)
    out += struct.pack("=I", END_GUARD)
    assert len(out) == entire_len(n, d)
    return out


class Msg:
    """A message as read back (entire form), taken apart."""

    def __init__(self, raw):
        f = HEADER.unpack_from(raw)
        (self.start_guard, net, serial, irt_net, irt_serial, self.to,
         self.from_, _, _, _, _, self.extra, self.flags, self.name_len,
         self.data_len, self.name_ptr, self.data_ptr, self.end_guard) = f
        self.id = (net, serial)
        self.in_reply_to = (irt_net, irt_serial)
        at = HEADER.size
        self.name = raw[at:at + self.name_len].decode()
        at += padded_name_len(self.name_len)
        self.data = raw[at:at + self.data_len]
        self.raw = raw


# ------------------------------------------------------------- helpers

def nm(suffix):
    return "$.py.P%d.%s" % (os.getpid(), suffix)


def kopen(flags=os.O_RDWR, dev=0):
    return os.open("/dev/kbus%d" % dev, flags)


def ioctl_u32(fd, cmd, value=0):
    """A u32-in/out ioctl: (the ioctl's result, the value written back)."""
    buf = bytearray(struct.pack("=I", value))
    rc = fcntl.ioctl(fd, cmd, buf, True)
    return rc, struct.unpack("=I", buf)[0]


def ksock_id(fd):
    return ioctl_u32(fd, KSOCKID)[1]


def name_ioctl(fd, cmd, name, first=0, name_len=None):
    """BIND, UNBIND or REPLIER: (result, first field written back)."""
    raw = name.encode()
    keep = ctypes.create_string_buffer(raw)  # alive during the call
    n = len(raw) if name_len is None else name_len
    buf = bytearray(BIND_ARG.pack(first, n, ctypes.addressof(keep)))
    rc = fcntl.ioctl(fd, cmd, buf, True)
    return rc, BIND_ARG.unpack(buf)[0]


def bind(fd, name, replier=False):
    return name_ioctl(fd, BIND, name, int(replier))[0]


def unbind(fd, name, replier=False):
    return name_ioctl(fd, UNBIND, name, int(replier))[0]


def send_written(fd):
    """SEND what has been written: the id (network, serial)."""
    buf = bytearray(8)
    fcntl.ioctl(fd, SEND, buf, True)
    return struct.unpack("=II", buf)


def send(fd, name, data=b"", **kw):
    msg = entire(name, data, **kw)
    assert os.write(fd, msg) == len(msg)
    return send_written(fd)


def nummsgs(fd):
    return ioctl_u32(fd, NUMMSGS)[1]


def take(fd):
    """NEXTMSG then read it all: a Msg, or None when nothing is queued."""
    rc, length = ioctl_u32(fd, NEXTMSG)
    if rc == 0:
        return None
    raw = b""
    while len(raw) < length:
        piece = os.read(fd, length - len(raw))
        if not piece:
            break
        raw += piece
    assert len(raw) == length, (len(raw), length)
    return Msg(raw)


class KbusCase(unittest.TestCase):
    """Opens Ksocks for a test and closes them after it."""

    def setUp(self):
        self.fds = []

    def tearDown(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def ksock(self, flags=os.O_RDWR, dev=0):
        fd = kopen(flags, dev)
        self.fds.append(fd)
        return fd

    def assertErrno(self, err, fn, *args, **kw):
        with self.assertRaises(OSError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.errno, err,
                         "got %s, want %s" % (errno.errorcode.get(cm.exception.errno),
                                              errno.errorcode[err]))


# ----------------------------------------------------------- device files

class DeviceFiles(KbusCase):

    def test_stat_mode(self):
        st = os.stat("/dev/kbus0")
        self.assertEqual(st.st_mode, 0o20666)
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertTrue(os.path.exists("/dev/kbus0"))
        # 99: earlier runs of abi.c on the same daemon may have made kbus3...
        self.assertFalse(os.path.exists("/dev/kbus99"))
        with self.assertRaises(FileNotFoundError):
            os.stat("/dev/kbus99")
        with self.assertRaises(FileNotFoundError):
            os.open("/dev/kbus99", os.O_RDWR)
        with self.assertRaises(FileNotFoundError):
            open("/dev/kbus99", "r+b", buffering=0)

    def test_python_open(self):
        listener = self.ksock()
        name = nm("Open")
        bind(listener, name)
        with open("/dev/kbus0", "r+b", buffering=0) as f:
            self.assertFalse(f.isatty())
            self.assertEqual(os.fstat(f.fileno()).st_mode, 0o20666)
            self.assertNotEqual(ksock_id(f.fileno()), 0)
            msg = entire(name, b"from file.write")
            self.assertEqual(f.write(msg), len(msg))
            send_written(f.fileno())
        m = take(listener)
        self.assertEqual((m.name, m.data), (name, b"from file.write"))

    def test_os_open_modes_and_ids(self):
        ro, rw = self.ksock(os.O_RDONLY), self.ksock(os.O_RDWR)
        a, b = ksock_id(ro), ksock_id(rw)
        self.assertNotEqual(a, 0)
        self.assertNotEqual(b, 0)
        self.assertNotEqual(a, b)
        # A read-only Ksock binds and reads, but cannot write.
        bind(ro, nm("RO"))
        self.assertErrno(errno.EBADF, os.write, ro, entire(nm("RO")))
        send(rw, nm("RO"), b"x")
        self.assertEqual(take(ro).data, b"x")

    def test_proc_bindings(self):
        r, l = self.ksock(), self.ksock(os.O_RDONLY)
        bind(r, nm("Proc.R"), replier=True)
        bind(l, nm("Proc.L"))
        with open("/proc/kbus/bindings") as f:
            text = f.read()
        lines = text.splitlines()
        self.assertTrue(lines[0].startswith("#"))
        want_r = "%3u: %8u %8lu  %c  %s" % (0, ksock_id(r), os.getpid(), "R", nm("Proc.R"))
        want_l = "%3u: %8u %8lu  %c  %s" % (0, ksock_id(l), os.getpid(), "L", nm("Proc.L"))
        self.assertIn(want_r, lines)
        self.assertIn(want_l, lines)
        os.close(r)
        self.fds.remove(r)
        with open("/proc/kbus/bindings") as f:
            lines = f.read().splitlines()
        self.assertNotIn(want_r, lines)
        self.assertIn(want_l, lines)


# ------------------------------------------------------------- messages

class Messages(KbusCase):

    def test_entire_write_and_read_in_pieces(self):
        s, l = self.ksock(), self.ksock()
        name = nm("Pieces")
        bind(l, name)
        msg = entire(name, b"hello", flags=0x10000)
        self.assertEqual(os.write(s, msg), len(msg))
        sent = send_written(s)
        self.assertEqual(sent[0], 0)
        self.assertNotEqual(sent[1], 0)
        send(s, name, b"second")

        rc, length = ioctl_u32(l, NEXTMSG)
        self.assertEqual((rc, length), (1, len(msg)))
        self.assertEqual(ioctl_u32(l, LENLEFT)[1], length)
        raw = b""
        for _ in range(3):
            raw += os.read(l, 1)
        while len(raw) < length:
            piece = os.read(l, 7)
            self.assertTrue(piece)
            raw += piece
        self.assertEqual(len(raw), length)
        self.assertEqual(os.read(l, 100), b"")  # never into the next message
        self.assertEqual(ioctl_u32(l, LENLEFT)[1], 0)
        m = Msg(raw)
        self.assertEqual((m.start_guard, m.end_guard), (START_GUARD, END_GUARD))
        self.assertEqual(m.id, sent)
        self.assertEqual(m.from_, ksock_id(s))
        self.assertEqual(m.flags, 0x10000)
        self.assertEqual((m.name, m.data), (name, b"hello"))
        self.assertEqual((m.name_ptr, m.data_ptr), (0, 0))
        self.assertEqual(raw[-4:], struct.pack("=I", END_GUARD))
        self.assertEqual(take(l).data, b"second")
        self.assertIsNone(take(l))

    def test_pointy(self):
        s, l = self.ksock(), self.ksock()
        name = nm("Pointy")
        bind(l, name)
        name_buf = ctypes.create_string_buffer(name.encode())
        data_buf = ctypes.create_string_buffer(b"early", 5)
        h = header(len(name), 5, name_ptr=ctypes.addressof(name_buf),
                   data_ptr=ctypes.addressof(data_buf))
        self.assertEqual(os.write(s, h), HEADER.size)
        ctypes.memmove(data_buf, b"later", 5)  # copied at SEND, not before
        send_written(s)
        ctypes.memmove(data_buf, b"after", 5)
        m = take(l)
        self.assertEqual((m.name, m.data), (name, b"later"))
        self.assertEqual(len(m.raw), entire_len(len(name), 5))

    def test_request_and_reply(self):
        s, r = self.ksock(), self.ksock()
        name = nm("Req")
        bind(r, name, replier=True)
        req_id = send(s, name, b"q", flags=WANT_A_REPLY)
        req = take(r)
        self.assertEqual(req.flags, WANT_A_REPLY | WANT_YOU_TO_REPLY)
        self.assertEqual(ioctl_u32(r, UNREPLIEDTO)[1], 1)
        send(r, name, b"a", to=req.from_, in_reply_to=req.id)
        self.assertEqual(ioctl_u32(r, UNREPLIEDTO)[1], 0)
        rep = take(s)
        self.assertEqual(rep.in_reply_to, req_id)
        self.assertEqual(rep.from_, ksock_id(r))
        self.assertEqual(rep.data, b"a")

    def test_replier_query(self):
        r, q = self.ksock(), self.ksock()
        bind(r, nm("Q.Exact"), replier=True)
        bind(r, nm("Q.*"), replier=True)
        self.assertEqual(name_ioctl(q, REPLIER, nm("Q.Exact")), (1, ksock_id(r)))
        self.assertEqual(name_ioctl(q, REPLIER, nm("Q.Other"), first=7), (0, 0))
        self.assertErrno(errno.ENAMETOOLONG, name_ioctl, q, REPLIER, nm("Q.Exact"),
                         name_len=0)

    def test_urgent(self):
        s, l = self.ksock(), self.ksock()
        name = nm("Urgent")
        bind(l, name)
        for data, flags in ((b"A", 0), (b"B", 0), (b"C", URGENT)):
            send(s, name, data, flags=flags)
        self.assertEqual([take(l).data for _ in range(3)], [b"C", b"A", b"B"])


# ---------------------------------------------------------------- errors

class Errors(KbusCase):

    def test_no_replier(self):
        s = self.ksock()
        before = send(s, nm("Nobody"))
        self.assertErrno(errno.EADDRNOTAVAIL, send, s, nm("Nobody"), flags=WANT_A_REPLY)
        buf = bytearray(8)
        fcntl.ioctl(s, LASTSENT, buf, True)
        self.assertGreater(struct.unpack("=II", buf)[1], before[1])

    def test_enolck(self):
        s, r = self.ksock(), self.ksock()
        bind(r, nm("Lck"), replier=True)
        self.assertEqual(ioctl_u32(s, MAXMSGS, 1)[1], 1)
        send(s, nm("Lck"), flags=WANT_A_REPLY)
        self.assertErrno(errno.ENOLCK, send, s, nm("Lck"), flags=WANT_A_REPLY)

    def test_econnrefused(self):
        s, r = self.ksock(), self.ksock()
        self.assertErrno(errno.ECONNREFUSED, send, r, nm("Refused"), to=ksock_id(s),
                         in_reply_to=(0, 123456789))

    def test_emsgsize(self):
        s = self.ksock()
        limit = ioctl_u32(s, MAXMSGSIZE, 0)[1]
        # The entire form of a message with `limit` bytes of data is larger.
        self.assertErrno(errno.EMSGSIZE, os.write, s, header(len(nm("Big")), limit))
        self.assertErrno(errno.ENOMSG, send_written, s)
        # A byte after a complete message.
        msg = entire(nm("Big"))
        self.assertEqual(os.write(s, msg), len(msg))
        self.assertErrno(errno.EMSGSIZE, os.write, s, b"x")

    def test_einval(self):
        s = self.ksock()
        self.assertErrno(errno.EINVAL, os.write, s, header(5, 0, start=0))
        self.assertErrno(errno.EINVAL, os.write, s, header(0, 0))
        self.assertErrno(errno.EINVAL, os.write, s,
                         header(5, 0, flags=ALL_OR_WAIT | ALL_OR_FAIL))
        self.assertErrno(errno.EBADMSG, os.write, s, entire(nm("*")))
        self.assertErrno(errno.ENOMSG, send_written, s)
        os.write(s, header(5, 0)[:40])
        self.assertErrno(errno.EINVAL, send_written, s)  # incomplete
        self.assertEqual(fcntl.ioctl(s, DISCARD, 0), 0)
        self.assertErrno(errno.ENOMSG, send_written, s)

    def test_ioctl_errors(self):
        s = self.ksock()
        self.assertEqual(fcntl.ioctl(s, RESET, 0), 0)
        self.assertErrno(errno.ENOTTY, fcntl.ioctl, s, 0x6B30, 0)
        self.assertErrno(errno.EFAULT, fcntl.ioctl, s, KSOCKID, 0)
        self.assertErrno(errno.EBADMSG, bind, s, "$.bad..name")
        self.assertErrno(errno.EINVAL, unbind, s, nm("NotBound"))
        bind(s, nm("Taken"), replier=True)
        self.assertErrno(errno.EADDRINUSE, bind, self.ksock(), nm("Taken"), replier=True)


# ------------------------------------------------------------ readiness

class Readiness(KbusCase):
    """select, poll and epoll: a Ksock is readable exactly while a message
    is queued, writable iff opened for writing (and no send is waiting)."""

    def setUp(self):
        super().setUp()
        self.name = nm("Ready")
        self.s = self.ksock()
        self.rw = self.ksock(os.O_RDWR)
        self.ro = self.ksock(os.O_RDONLY)
        bind(self.rw, self.name)
        bind(self.ro, self.name)
        self.pr, self.pw = os.pipe()
        self.fds += [self.pr, self.pw]

    def states(self):
        """Three views of {fd: (readable, writable)} for rw, ro, pipe."""
        fds = [self.rw, self.ro, self.pr, self.pw]
        views = []
        r, w, _ = select.select(fds, fds, [], 0)
        views.append({fd: (fd in r, fd in w) for fd in fds})
        p = select.poll()
        for fd in fds:
            p.register(fd, select.POLLIN | select.POLLOUT)
        ev = dict(p.poll(0))
        views.append({fd: (bool(ev.get(fd, 0) & select.POLLIN),
                           bool(ev.get(fd, 0) & select.POLLOUT)) for fd in fds})
        with select.epoll() as ep:
            for fd in fds:
                ep.register(fd, select.EPOLLIN | select.EPOLLOUT)
            ev = dict(ep.poll(0))
        views.append({fd: (bool(ev.get(fd, 0) & select.EPOLLIN),
                           bool(ev.get(fd, 0) & select.EPOLLOUT)) for fd in fds})
        return views

    def expect(self, rw, ro, pipe_readable):
        want = {self.rw: rw, self.ro: ro, self.pr: (pipe_readable, False),
                self.pw: (False, True)}
        for how, view in zip(("select", "poll", "epoll"), self.states()):
            self.assertEqual(view, want, how)

    def test_readable_and_writable(self):
        self.expect(rw=(False, True), ro=(False, False), pipe_readable=False)
        send(self.s, self.name, b"x")
        os.write(self.pw, b"p")
        self.expect(rw=(True, True), ro=(True, False), pipe_readable=True)
        ioctl_u32(self.rw, NEXTMSG)  # taken, not yet read
        os.read(self.pr, 1)
        self.expect(rw=(False, True), ro=(True, False), pipe_readable=False)
        take(self.ro)
        self.expect(rw=(False, True), ro=(False, False), pipe_readable=False)

    def test_waiting_send_is_not_writable(self):
        q = self.ksock()
        bind(q, nm("ReadyQ"))
        ioctl_u32(q, MAXMSGS, 1)
        send(self.s, nm("ReadyQ"))
        self.assertErrno(errno.EAGAIN, send, self.s, nm("ReadyQ"), flags=ALL_OR_WAIT)
        p = select.poll()
        p.register(self.s, select.POLLOUT)
        self.assertEqual(p.poll(0), [])
        self.assertErrno(errno.EALREADY, os.write, self.s, entire(nm("ReadyQ")))
        take(q)  # room: the waiting send completes
        self.assertEqual(p.poll(10000), [(self.s, select.POLLOUT)])
        self.assertEqual(nummsgs(q), 1)


# -------------------------------------------------- fds, dup, processes

class Fds(KbusCase):

    def test_dup(self):
        k, s = self.ksock(), self.ksock()
        name = nm("Dup")
        d = os.dup(k)
        self.assertEqual(ksock_id(d), ksock_id(k))
        bind(d, name)  # a binding made through the dup is the Ksock's
        send(s, name, b"1")
        self.assertEqual(nummsgs(k), 1)
        self.assertEqual(take(d).data, b"1")
        os.close(d)
        # The original is untouched: same id, the binding, the queue.
        self.assertNotEqual(ksock_id(k), 0)
        send(s, name, b"2")
        self.assertEqual(take(k).data, b"2")
        unbind(k, name)

    def test_subprocess(self):
        k, s = self.ksock(), self.ksock()
        name = nm("Sub")
        bind(k, name)
        send(s, name, b"before")
        # vfork/posix_spawn + exec while Ksocks are open (close_fds=True).
        done = subprocess.run([sys.executable, "-c", "pass"])
        self.assertEqual(done.returncode, 0)
        # A child that inherits a Ksock fd and closes its copy.
        done = subprocess.run([sys.executable, "-c", "import os, sys; os.close(int(sys.argv[1]))",
                               str(k)], pass_fds=[k])
        self.assertEqual(done.returncode, 0)
        self.assertEqual(take(k).data, b"before")
        send(s, name, b"after")
        self.assertEqual(take(k).data, b"after")
        self.assertNotEqual(ksock_id(k), ksock_id(s))

    def test_fork(self):
        k, s = self.ksock(), self.ksock()
        name = nm("Fork")
        bind(k, name)
        pid = os.fork()
        if pid == 0:
            os._exit(0)  # the child's copies of the Ksocks close here
        self.assertEqual(os.waitpid(pid, 0)[1], 0)
        send(s, name, b"after fork")
        self.assertEqual(take(k).data, b"after fork")


if __name__ == "__main__":
    unittest.main()
