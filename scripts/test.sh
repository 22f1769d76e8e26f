#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, conformance on
# every transport, property, simulation, stress, doc tests, KBUS programs
# under the preload library), and a build of the benchmarks and examples.
# Needs the Rust toolchain, a C compiler (cc) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

for tool in cargo cc python3; do
    command -v "$tool" >/dev/null || {
        echo "scripts/test.sh needs $tool on PATH (the KBUS tests compile C programs and run a Python script)" >&2
        exit 1
    }
done

step "cargo fmt --check (and the fuzz workspace)"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (workspace: the busbar binary and libbusbar_kbus.so the tests run)"
cargo build --workspace --locked

step "cargo test (workspace)"
cargo test --workspace --locked

step "benchmarks and examples build"
cargo build --workspace --benches --examples --locked

step "demo runs"
cargo run --quiet -p busbar --example demo --locked >/dev/null

echo
echo "all checks passed"
