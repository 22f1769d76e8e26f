"""Two Python processes through a daemon; a replier killed with SIGKILL;
Ctrl-C during a blocking receive."""

import os
import signal
import subprocess
import sys
import threading

import pytest

import busbar

REPLIER = """
import sys, busbar
bus = busbar.Bus.connect(sys.argv[1])
ep = bus.open()
ep.bind("$.proc", replier=True)
print("ready", flush=True)
for req in ep:
    if req.data == b"hang":
        print("taken", flush=True)
        continue
    ep.reply(req, req.data[::-1])
"""


def test_request_reply_and_killed_replier(daemon):
    replier = subprocess.Popen(
        [sys.executable, "-c", REPLIER, daemon.socket], stdout=subprocess.PIPE, text=True
    )
    try:
        assert replier.stdout.readline().strip() == "ready"
        with busbar.Bus.connect(daemon.socket).open() as c:
            assert c.call("$.proc", b"abc", timeout=10).data == b"cba"
            rid = c.request("$.proc", b"hang")
            assert replier.stdout.readline().strip() == "taken"
            replier.kill()
            replier.wait()
            m = c.wait_reply(rid, timeout=10)
            assert (m.name, m.is_synthetic) == (busbar.IGNORED, True)
    finally:
        replier.kill()
        replier.wait()
        replier.stdout.close()


def test_ctrl_c_interrupts_a_blocking_recv(bus):
    with bus.open() as e:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            e.recv()  # forever, but for the signal
        timer.join()


def test_ctrl_c_interrupts_a_blocking_call_and_send_wait(bus):
    with bus.open() as r, bus.open() as c, bus.open() as full:
        r.bind("$.never", replier=True)
        full.bind("$.jam")
        full.set_queue_limit(1)
        c.announce("$.jam")
        for call in [lambda: c.call("$.never", b""), lambda: c.send_wait("$.jam", b"")]:
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
            with pytest.raises(KeyboardInterrupt):
                timer.start()
                call()
            timer.join()
        # The interrupted send was given up: nothing more reaches `full`.
        assert c.stats()["pending_send"] is None
        assert full.try_recv() is not None and full.try_recv() is None


def test_send_wait_waits_for_room(bus):
    with bus.open() as s, bus.open() as full:
        full.bind("$.jam")
        full.set_queue_limit(1)
        s.announce("$.jam", b"1")
        with pytest.raises(busbar.BusTimeoutError):
            s.send_wait("$.jam", b"late", timeout=0.05)
        t = threading.Timer(0.1, full.try_recv)
        t.start()
        mid = s.send_wait("$.jam", b"2", timeout=20)
        t.join()
        m = full.recv(timeout=10)
        assert (m.data, m.id) == (b"2", mid)
