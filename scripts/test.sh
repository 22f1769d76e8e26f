#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, conformance on
# every transport, property, simulation, stress, doc tests), and a build of
# the benchmarks and examples. Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check (and the fuzz workspace)"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

step "benchmarks and examples build"
cargo build --workspace --benches --examples --locked

step "demo runs"
cargo run --quiet -p busbar --example demo --locked >/dev/null

echo
echo "all checks passed"
