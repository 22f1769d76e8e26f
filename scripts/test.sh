#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, conformance on
# every transport, property, simulation, stress, doc tests, KBUS programs
# under the preload library, the Python package built, installed into a
# fresh virtual environment and tested, the Zenoh bridge built and tested
# in its own workspace), and a build of the benchmarks and examples.
# Needs the Rust toolchain, cc, c++, make, pkg-config, valgrind and python3
# (as root on Debian, the missing ones are installed with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# The C API and KBUS tests compile C programs (cc, c++, pkg-config), run
# them under valgrind, and run a Python script.
missing=()
for tool in cc c++ make pkg-config valgrind python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing the test tools that are missing: ${missing[*]}"
    declare -A package=([cc]=gcc [c++]=g++ [make]=make [pkg-config]=pkg-config [valgrind]=valgrind [python3]=python3)
    packages=()
    for t in "${missing[@]}"; do packages+=("${package[$t]}"); done
    apt-get install -y -qq "${packages[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${packages[@]}" >/dev/null; }
fi
for tool in cargo cc c++ make pkg-config valgrind python3; do
    command -v "$tool" >/dev/null || {
        echo "scripts/test.sh needs $tool on PATH (install it: the C API and KBUS tests compile and run C programs, under valgrind, and a Python script)" >&2
        exit 1
    }
done

step "cargo fmt --check (and the fuzz workspace)"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo build (workspace: the busbar binary, libbusbar_kbus.so and libbusbar_c.so the tests run)"
cargo build --workspace --locked

step "cargo test (workspace, every feature: the async API's tests need busbar's tokio feature)"
cargo test --workspace --all-features --locked

step "the Python package (its own workspace; scripts/test-python.sh)"
bash scripts/test-python.sh

step "the Zenoh bridge (its own workspace; scripts/test-zenoh.sh)"
bash scripts/test-zenoh.sh

step "benchmarks and examples build"
cargo build --workspace --benches --examples --all-features --locked

step "demo runs"
cargo run --quiet -p busbar --example demo --locked >/dev/null

echo
echo "all checks passed"
