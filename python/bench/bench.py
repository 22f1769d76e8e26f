"""Python benchmark: request/reply round trips through a busbar daemon and
announce throughput, beside a raw Python baseline and busbar's Rust numbers
from the same run.

    python python/bench/bench.py [--rounds N] [--messages N] [--size BYTES] [--json]

It starts a private `busbar daemon` (the binary at $BUSBAR_BIN, else
target/release/busbar) on a socket in a fresh temporary directory and
measures, in this order:

- raw: a `socket.socketpair` ping-pong between two Python processes;
- python_daemon: `Endpoint.call` round trips to a replier in another Python
  process, through the daemon;
- rust_daemon: `busbar bench --socket` against the same daemon (Rust
  request/reply and announce throughput, and its own raw Unix-socket
  baseline);
- dbus: `dbus-python` method calls (a byte array echoed) between two Python
  processes through a private `dbus-daemon`, if dbus-python, PyGObject and
  dbus-daemon are installed (else reported as not available; on Debian:
  python3-dbus and python3-gi, with the wheel installed in a venv made by
  `/usr/bin/python3 -m venv --system-site-packages`);
- announce throughput in-process and through the daemon: one endpoint
  sends (one `announce` per message, or `send_batch` of 256), another
  drains with `recv_batch`, in one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import busbar

HERE = os.path.dirname(os.path.abspath(__file__))
BUSBAR_BIN = os.environ.get("BUSBAR_BIN", os.path.join(HERE, "..", "..", "target", "release", "busbar"))

REPLIER = """
import sys, busbar
ep = busbar.Bus.connect(sys.argv[1]).open()
ep.bind("$.bench.echo", replier=True)
print("ready", flush=True)
for req in ep:
    ep.reply(req, req.data)
"""


def percentiles(samples_ns: list[int]) -> dict:
    s = sorted(samples_ns)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000.0  # noqa: E731
    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "mean_us": statistics.fmean(s) / 1000.0}


def raw_pingpong(rounds: int, size: int) -> dict:
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        try:
            while True:
                buf = b.recv(65536)
                if not buf:
                    break
                b.sendall(buf)
        finally:
            os._exit(0)
    b.close()
    payload = b"x" * size
    out = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        a.sendall(payload)
        got = 0
        while got < size:
            got += len(a.recv(65536))
        out.append(time.perf_counter_ns() - t)
    a.close()
    os.waitpid(pid, 0)
    return percentiles(out)


def python_daemon_calls(sock: str, rounds: int, size: int) -> dict:
    replier = subprocess.Popen([sys.executable, "-c", REPLIER, sock], stdout=subprocess.PIPE, text=True)
    try:
        assert replier.stdout.readline().strip() == "ready"
        ep = busbar.Bus.connect(sock).open()
        payload = b"x" * size
        for _ in range(min(1000, rounds)):  # warm up
            ep.call("$.bench.echo", payload, timeout=10)
        out = []
        for _ in range(rounds):
            t = time.perf_counter_ns()
            ep.call("$.bench.echo", payload, timeout=10)
            out.append(time.perf_counter_ns() - t)
        ep.close()
        return percentiles(out)
    finally:
        replier.kill()
        replier.wait()
        replier.stdout.close()


def announce_throughput(bus: busbar.Bus, messages: int, size: int, batched: bool, batch: int = 256) -> dict:
    s, l = bus.open(), bus.open()
    l.bind("$.bench.flow")
    l.set_queue_limit(batch * 2)
    payload = b"x" * size
    got = 0
    t = time.perf_counter()
    sent = 0
    while sent < messages:
        n = min(batch, messages - sent)
        if batched:
            s.send_batch([("$.bench.flow", payload)] * n)
        else:
            for _ in range(n):
                s.announce("$.bench.flow", payload)
        sent += n
        while got < sent:
            got += len(l.recv_batch(batch, timeout=10))
    dt = time.perf_counter() - t
    s.close()
    l.close()
    return {"msgs_per_s": messages / dt}


def rust_bench(sock: str, rounds: int, messages: int, size: int) -> dict:
    out = subprocess.run(
        [BUSBAR_BIN, "bench", "--socket", sock, "--rounds", str(rounds), "--messages", str(messages),
         "--size", str(size), "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


DBUS_SERVICE = """
import sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
class Echo(dbus.service.Object):
    @dbus.service.method("bench.Echo", in_signature="ay", out_signature="ay", byte_arrays=True)
    def Echo(self, data):
        return data
name = dbus.service.BusName("bench.Echo", bus)
Echo(bus, "/bench")
print("ready", flush=True)
GLib.MainLoop().run()
"""


def dbus_calls(rounds: int, size: int, tmp: str) -> dict | str:
    try:
        import dbus  # noqa: F401
        import gi  # noqa: F401
    except ImportError:
        return "not available (dbus-python and PyGObject are not installed)"
    if shutil.which("dbus-daemon") is None:
        return "not available (no dbus-daemon)"
    address = "unix:path=" + os.path.join(tmp, "dbus.sock")
    d = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address", "--address", address],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = d.stdout.readline().strip()
    svc = subprocess.Popen([sys.executable, "-c", DBUS_SERVICE, addr], stdout=subprocess.PIPE, text=True)
    try:
        assert svc.stdout.readline().strip() == "ready"
        import dbus

        bus = dbus.bus.BusConnection(addr)
        echo = bus.get_object("bench.Echo", "/bench").get_dbus_method("Echo", "bench.Echo")
        payload = dbus.ByteArray(b"x" * size)
        out = []
        for i in range(rounds + min(1000, rounds)):
            t = time.perf_counter_ns()
            echo(payload, byte_arrays=True)
            if i >= min(1000, rounds):
                out.append(time.perf_counter_ns() - t)
        return percentiles(out)
    finally:
        for p in (svc, d):
            p.kill()
            p.wait()
            p.stdout.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20000, help="round trips to time (default 20000)")
    ap.add_argument("--messages", type=int, default=200000, help="announcements for throughput (default 200000)")
    ap.add_argument("--size", type=int, default=32, help="payload bytes (default 32)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="busbar-pybench-")
    os.chmod(tmp, 0o700)
    sock = os.path.join(tmp, "bus.sock")
    daemon = subprocess.Popen([BUSBAR_BIN, "daemon", "--socket", sock], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RUST_LOG": "info"})
    try:
        for line in daemon.stderr:
            if "listening" in line:
                break
        r = {"rounds": a.rounds, "messages": a.messages, "size": a.size, "python": sys.version.split()[0]}
        r["raw_socketpair_pingpong"] = raw_pingpong(a.rounds, a.size)
        r["python_daemon_call"] = python_daemon_calls(sock, a.rounds, a.size)
        rust = rust_bench(sock, a.rounds, a.messages, a.size)
        r["rust_daemon_call"] = {"p50_us": rust["bus_request_reply_p50_us"], "p99_us": rust["bus_request_reply_p99_us"]}
        r["rust_raw_pingpong"] = {"p50_us": rust["raw_pingpong_p50_us"], "p99_us": rust["raw_pingpong_p99_us"]}
        r["rust_daemon_announce_msgs_per_s"] = rust["bus_announce_msgs_per_s"]
        r["dbus_python_call"] = dbus_calls(a.rounds, a.size, tmp)
        for where, bus in [("in_process", busbar.Bus.in_process()), ("daemon", busbar.Bus.connect(sock))]:
            for kind, batched in [("announce", False), ("send_batch", True)]:
                got = announce_throughput(bus, a.messages, a.size, batched)
                r[f"python_{where}_{kind}_msgs_per_s"] = got["msgs_per_s"]
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    raw = r["raw_socketpair_pingpong"]["p50_us"]
    print(f"busbar Python benchmark: Python {r['python']}, {a.rounds} round trips, {a.messages} announcements, {a.size}-byte payloads\n")
    print(f"{'round trip':44} {'p50 µs':>9} {'p99 µs':>9} {'p50 / raw':>10}")
    for label, key in [("raw socketpair ping-pong (2 Python procs)", "raw_socketpair_pingpong"),
                       ("busbar call via daemon (Python, 2 procs)", "python_daemon_call"),
                       ("busbar call via daemon (Rust, same run)", "rust_daemon_call"),
                       ("raw Unix ping-pong (Rust, same run)", "rust_raw_pingpong"),
                       ("dbus-python call via dbus-daemon", "dbus_python_call")]:
        v = r[key]
        if isinstance(v, str):
            print(f"{label:44} {v}")
        else:
            print(f"{label:44} {v['p50_us']:9.1f} {v['p99_us']:9.1f} {v['p50_us'] / raw:10.2f}")
    print(f"\n{'announce throughput':44} {'msgs/s':>12}")
    for label, key in [("Python announce, in-process", "python_in_process_announce_msgs_per_s"),
                       ("Python send_batch(256), in-process", "python_in_process_send_batch_msgs_per_s"),
                       ("Python announce, via daemon", "python_daemon_announce_msgs_per_s"),
                       ("Python send_batch(256), via daemon", "python_daemon_send_batch_msgs_per_s"),
                       ("Rust, via daemon (batched, same run)", "rust_daemon_announce_msgs_per_s")]:
        print(f"{label:44} {r[key]:12,.0f}")


if __name__ == "__main__":
    main()
