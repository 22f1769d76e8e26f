#!/usr/bin/env bash
# The Python package's checks and tests, as `scripts/test.sh` runs them:
# rustfmt and clippy on its own Cargo workspace (python/), a wheel built
# with maturin, installed into a fresh virtual environment, and its pytest
# suite run against that installed package, on both transports (in-process,
# and a `busbar daemon` process: target/debug/busbar, or $BUSBAR_BIN); then
# the type stubs checked against the module (mypy.stubtest) and the package
# and its examples type-checked (mypy --strict).
#
# Everything lives under target/: target/pyvenv-test (the fresh
# environment), target/python (cargo's build directory for the native
# module), target/wheels (the wheel), target/mypy-cache.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# A virtual environment at $1 (Debian's python3 needs python3-venv for it).
make_venv() {
    python3 -m venv "$1" 2>/dev/null && return
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "installing python3-venv (to make virtual environments)"
        apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
        rm -rf "$1"
        python3 -m venv "$1" && return
    fi
    echo "scripts/test-python.sh: \`python3 -m venv\` failed: install your system's venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
}
pip_install() {
    "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}"
}

export CARGO_TARGET_DIR="$PWD/target/python"

step "python: cargo fmt --check and clippy (python/ workspace)"
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo clippy --manifest-path python/Cargo.toml --all-targets --locked -- -D warnings

step "python: build the wheel as \`pip install ./python\` does (PEP 517: pip fetches maturin)"
venv=target/pyvenv-test
rm -rf "$venv" target/wheels
make_venv "$venv"
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w target/wheels ./python
wheel=$(ls target/wheels/busbar-*.whl)

step "python: install $wheel into a fresh virtual environment, run pytest"
pip_install "$venv" "$wheel" pytest mypy
[ -x "${BUSBAR_BIN:-target/debug/busbar}" ] || cargo build --quiet -p busbar-cli --locked --target-dir target
BUSBAR_BIN="$(realpath "${BUSBAR_BIN:-target/debug/busbar}")" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests

step "python: the type stubs match the installed module (mypy.stubtest), and the package type-checks (mypy --strict)"
export MYPY_CACHE_DIR="$PWD/target/mypy-cache"
"$venv/bin/python" -m mypy.stubtest --ignore-disjoint-bases busbar
"$venv/bin/python" -m mypy --strict -p busbar
"$venv/bin/python" -m mypy --strict python/examples/*.py
