#!/usr/bin/env bash
# The Zenoh bridge's checks and tests, as `scripts/test.sh` runs them:
# rustfmt and clippy on its own Cargo workspace (bridges/zenoh/), then its
# tests: unit tests (key mapping, the envelope's checked parser, duplicate
# suppression) and buses joined by real busbar-zenoh processes (two and
# three daemons; announcements, requests, killed repliers and bridges,
# deadlines, bad input).
#
# zenoh is heavy (about 220 crates; 3 to 6 minutes to build on 2 cores), so
# it stays out of the main workspace. Its build directory is target/zenoh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

export CARGO_TARGET_DIR="$PWD/target/zenoh"
manifest=bridges/zenoh/Cargo.toml

step "zenoh bridge: cargo fmt --check and clippy (bridges/zenoh workspace)"
cargo fmt --manifest-path "$manifest" -- --check
# --all-targets checks the benchmark too (building it means zenoh in release).
cargo clippy --manifest-path "$manifest" --all-targets --locked -- -D warnings

step "zenoh bridge: tests"
cargo test --manifest-path "$manifest" --locked

