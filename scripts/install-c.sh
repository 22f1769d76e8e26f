#!/usr/bin/env bash
# Installs busbar's C API: PREFIX/include/busbar.h, PREFIX/lib/libbusbar.so
# (soname libbusbar.so.0) and libbusbar.a, PREFIX/lib/pkgconfig/busbar.pc.
#
#   scripts/install-c.sh [PREFIX]          (default /usr/local)
#   BUSBAR_PROFILE=debug scripts/install-c.sh PREFIX   (install a debug build)
#
# Builds the library first (cargo build --release -p busbar-c), unless
# BUSBAR_NO_BUILD=1 (the tests, which run after a build). Then
#   cc app.c $(pkg-config --cflags --libs busbar)
# works with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a
# system one.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-/usr/local}"
profile="${BUSBAR_PROFILE:-release}"
if [ -z "${BUSBAR_NO_BUILD:-}" ]; then
    if [ "$profile" = release ]; then
        cargo build --release -p busbar-c --locked
    else
        cargo build -p busbar-c --locked
    fi
fi
target="${CARGO_TARGET_DIR:-target}/$profile"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 crates/busbar-c/include/busbar.h "$prefix/include/busbar.h"
install -m 0755 "$target/libbusbar_c.so" "$prefix/lib/libbusbar.so.0"
ln -sf libbusbar.so.0 "$prefix/lib/libbusbar.so"
install -m 0644 "$target/libbusbar_c.a" "$prefix/lib/libbusbar.a"
cat > "$prefix/lib/pkgconfig/busbar.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: busbar
Description: A message bus for Linux with kernel-grade guarantees (C API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lbusbar
Libs.private: -lpthread -ldl -lm
PC
echo "installed busbar $version ($profile) in $prefix"
