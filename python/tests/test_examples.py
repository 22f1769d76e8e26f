"""The examples in python/examples (which python/README.md shows verbatim)
run against a real daemon and print what the README says they print."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
README = os.path.join(EXAMPLES, "..", "README.md")


def start(daemon, name):
    return subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, name)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BUSBAR_SOCKET": daemon.socket},
    )


def run(daemon, name):
    p = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BUSBAR_SOCKET": daemon.socket},
    )
    return p


def stop(p):
    p.kill()
    out, err = p.communicate()
    return out


def test_replier_requester_listener(daemon):
    listener = start(daemon, "listener.py")
    replier = start(daemon, "replier.py")
    try:
        assert listener.stdout.readline() == "listening to $.clock.*\n"
        assert replier.stdout.readline() == "serving $.clock.time\n"
        got = run(daemon, "requester.py")
        assert got.returncode == 0, got.stderr
        assert re.fullmatch(r"the time is \d\d:\d\d:\d\d\n", got.stdout)
        assert listener.stdout.readline().startswith("request $.clock.time b'what time is it?' from endpoint ")
        assert listener.stdout.readline().startswith("reply $.clock.time b'")
        # With the replier gone, the requester says so.
        stop(replier)
        got = run(daemon, "requester.py")
        assert got.returncode == 1
        assert "nobody serves $.clock.time" in got.stderr
    finally:
        stop(listener)
        stop(replier)


def test_asyncio_echo(daemon):
    got = run(daemon, "asyncio_echo.py")
    assert (got.returncode, got.stdout) == (0, "50 replies, the first: HELLO 0\n"), got.stderr


def test_replier_dies(daemon):
    got = run(daemon, "replier_dies.py")
    assert got.returncode == 0, got.stderr
    assert got.stdout == "$.KBUS.Replier.Ignored synthetic: True for our request: True\n"


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".py")))
def test_the_readme_shows_each_example_verbatim(name):
    with open(README) as f:
        readme = f.read()
    with open(os.path.join(EXAMPLES, name)) as f:
        example = f.read()
    assert f"```python\n{example}```" in readme, f"python/README.md does not show examples/{name} as it is"
