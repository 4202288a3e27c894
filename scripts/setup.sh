#!/usr/bin/env bash
# Set up a fresh Debian bookworm machine (as root) for building and testing
# usermode: the system packages, then .venv with usermode installed editable.
# Idempotent and non-interactive: a second run changes nothing and is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# ---- system packages ----
pkgs=(gcc libc6-dev busybox-static e2fsprogs uml-utilities user-mode-linux debootstrap)
# `python3 -m venv` needs ensurepip, which Debian ships separately
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    pkgs+=(python3-venv)
fi
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing packages: ${missing[*]} (run this script as root to install them)" >&2
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # update the package lists once, and only if they are absent or a
    # package is not found in them
    if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 ||
        ! apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/tmp/usermode-apt.log 2>&1; then
        apt-get update -qq </dev/null >/tmp/usermode-apt.log 2>&1 || { cat /tmp/usermode-apt.log >&2; exit 1; }
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >>/tmp/usermode-apt.log 2>&1 ||
            { cat /tmp/usermode-apt.log >&2; exit 1; }
    fi
fi

# ---- the virtual environment ----
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
# reinstall only when pyproject.toml changed (or the entry point is missing)
stamp=.venv/.usermode-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/usermode ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] ||
    ! .venv/bin/python -c 'import usermode, pytest, elftools' >/dev/null 2>&1; then
    say "installing usermode into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' </dev/null
    echo "$want" >"$stamp"
fi
# byte-compile once: the environment may forbid writing .pyc files at run time
# (PYTHONDONTWRITEBYTECODE), and compiling every module costs each boot ~0.3 s
.venv/bin/python -m compileall -q usermode >/dev/null
say "ok"
