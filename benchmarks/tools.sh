#!/usr/bin/env bash
# Installs the command-line tools the benchmark compares against, if missing.
#
# ripgrep (rg) and b3sum are the only ones not in a base system; wc, grep,
# sha256sum and openssl usually are. Order of preference for each tool:
#   1. already on PATH
#   2. already built into the cache dir ($PRAVAH_BENCH_TOOLS, default
#      ~/.cache/pravah/bench-tools/bin)
#   3. the Debian package, when running as root with apt-get available
#   4. `cargo install --locked` into the cache dir (slow: compiles from source)
# Set BENCH_TOOLS_CARGO=1 to skip apt and build the newest releases with cargo.
#
# Prints every action it takes; prints the directory to add to PATH last.
set -euo pipefail

CACHE="${PRAVAH_BENCH_TOOLS:-$HOME/.cache/pravah/bench-tools}"
BIN="$CACHE/bin"
export PATH="$BIN:$PATH"

say() { echo "[tools] $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    # $1 = Debian package name
    [[ "${BENCH_TOOLS_CARGO:-0}" == 1 ]] && return 1
    have apt-get || return 1
    [[ "$(id -u)" == 0 ]] || return 1
    if [[ ! -e "$CACHE/.apt-updated" ]]; then
        say "apt-get update"
        apt-get update -qq >/dev/null || return 1
        mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
    fi
    say "apt-get install -y $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

cargo_install() {
    # $1 = crate name
    have cargo || { say "cargo not found; cannot build $1"; return 1; }
    say "cargo install $1 --locked --root $CACHE (compiles from source)"
    cargo install "$1" --locked --root "$CACHE" >&2
}

ensure() {
    # $1 = command, $2 = Debian package, $3 = crate (empty: not on crates.io)
    local cmd="$1" deb="$2" crate="$3"
    if have "$cmd"; then
        say "$cmd: $(command -v "$cmd")"
        return 0
    fi
    apt_install "$deb" || { [[ -n "$crate" ]] && cargo_install "$crate"; } || true
    if have "$cmd"; then
        say "$cmd: installed at $(command -v "$cmd")"
    else
        say "$cmd: NOT available (its rows will be skipped)"
    fi
}

mkdir -p "$BIN"
ensure rg ripgrep ripgrep
ensure b3sum b3sum b3sum
ensure sha256sum coreutils ""
ensure wc coreutils ""
ensure grep grep ""
ensure openssl openssl ""
echo "$BIN"
