#!/usr/bin/env bash
# Installs busbar under PREFIX (default /usr/local):
#
#   PREFIX/bin/busbar                         the command and daemon
#   PREFIX/lib/libbusbar_kbus.so              for `busbar kbus` (KBUS programs)
#   PREFIX/lib/systemd/system/busbar.{socket,service}   the system bus
#   PREFIX/lib/systemd/user/busbar.{socket,service}     each user's bus
#   PREFIX/share/man/man1/busbar*.1           manual pages
#   PREFIX/share/bash-completion/completions/busbar, zsh site-functions/_busbar,
#   fish vendor_completions.d/busbar.fish     shell completions
#   PREFIX/bin/busbar-zenoh                   with BUSBAR_ZENOH=1: the bridge
#                                             across machines (docs/bridging.md;
#                                             builds zenoh: minutes)
#
#   scripts/install.sh [PREFIX]
#   DESTDIR=/tmp/pkg scripts/install.sh /usr   (staged, for packaging)
#   BUSBAR_PROFILE=debug BUSBAR_NO_BUILD=1 scripts/install.sh PREFIX
#
# Builds first (cargo build --release), unless BUSBAR_NO_BUILD=1. The unit
# files name PREFIX/bin/busbar. After installing units into a system
# location: `systemctl daemon-reload && systemctl enable --now busbar.socket`
# (or `systemctl --user ...` for the user units). scripts/install-c.sh
# installs the C library.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-/usr/local}"
dest="${DESTDIR:-}"
profile="${BUSBAR_PROFILE:-release}"
if [ -z "${BUSBAR_NO_BUILD:-}" ]; then
    if [ "$profile" = release ]; then
        cargo build --release -p busbar-cli -p busbar-kbus --locked
    else
        cargo build -p busbar-cli -p busbar-kbus --locked
    fi
fi
target="${CARGO_TARGET_DIR:-target}/$profile"
# The bridge has its own workspace; scripts/test-zenoh.sh builds it in target/zenoh.
zenoh_target="${CARGO_TARGET_DIR:-target}/zenoh"
if [ -n "${BUSBAR_ZENOH:-}" ] && [ -z "${BUSBAR_NO_BUILD:-}" ]; then
    if [ "$profile" = release ]; then
        CARGO_TARGET_DIR="$zenoh_target" cargo build --release --manifest-path bridges/zenoh/Cargo.toml --locked
    else
        CARGO_TARGET_DIR="$zenoh_target" cargo build --manifest-path bridges/zenoh/Cargo.toml --locked
    fi
fi
root="$dest$prefix"

install -d "$root/bin" "$root/lib" "$root/lib/systemd/system" "$root/lib/systemd/user" \
    "$root/share/man/man1" "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
install -m 0755 "$target/busbar" "$root/bin/busbar"
install -m 0755 "$target/libbusbar_kbus.so" "$root/lib/libbusbar_kbus.so"
for kind in system user; do
    for unit in busbar.socket busbar.service; do
        sed "s|@bindir@|$prefix/bin|g" "dist/systemd/$kind/$unit" > "$root/lib/systemd/$kind/$unit"
        chmod 0644 "$root/lib/systemd/$kind/$unit"
    done
done
"$target/busbar" man "$root/share/man/man1" > /dev/null
"$target/busbar" completions bash > "$root/share/bash-completion/completions/busbar"
"$target/busbar" completions zsh > "$root/share/zsh/site-functions/_busbar"
"$target/busbar" completions fish > "$root/share/fish/vendor_completions.d/busbar.fish"
if [ -n "${BUSBAR_ZENOH:-}" ]; then
    install -m 0755 "$zenoh_target/$profile/busbar-zenoh" "$root/bin/busbar-zenoh"
    echo "installed busbar-zenoh in $root/bin"
fi
echo "installed busbar in $root: bin/busbar, lib/libbusbar_kbus.so, lib/systemd/{system,user}, share/man/man1, completions"
