"""Fixtures: a bus on each transport (in-process, and a real `busbar daemon`
process on a private socket), and the daemon itself."""

import os
import shutil
import subprocess
import tempfile

import pytest

import busbar

HERE = os.path.dirname(os.path.abspath(__file__))
#: The `busbar` binary (scripts/test.sh builds it; BUSBAR_BIN overrides).
BUSBAR_BIN = os.environ.get(
    "BUSBAR_BIN", os.path.join(HERE, "..", "..", "target", "debug", "busbar")
)


class Daemon:
    """A `busbar daemon` on a private socket, stopped at the end."""

    def __init__(self, *args: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="busbar-py-")
        os.chmod(self.dir, 0o700)
        self.socket = os.path.join(self.dir, "bus.sock")
        self.proc = subprocess.Popen(
            [BUSBAR_BIN, "daemon", "--socket", self.socket, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "info"},
        )
        for line in self.proc.stderr:
            if "busbar daemon listening" in line:
                break
        else:
            raise RuntimeError("the daemon exited before listening")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture(params=["in_process", "daemon"])
def bus(request):
    """A fresh bus 0, in-process or through a real daemon."""
    if request.param == "in_process":
        yield busbar.Bus.in_process()
        return
    d = Daemon()
    try:
        yield busbar.Bus.connect(d.socket)
    finally:
        d.stop()
