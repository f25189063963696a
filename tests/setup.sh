#!/usr/bin/env bash
# Installs what the conformance suites need; safe to run again (it only reinstalls when a
# requirements or lock file changed):
#   <repo>/.venv              Python virtual environment with tests/python/requirements.txt
#   tests/node/node_modules   `npm ci` from tests/node/package-lock.json
# Needs python3 (with venv; installed through apt-get when missing and running as root),
# node and npm on PATH.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
requirements="$repo/tests/python/requirements.txt"
node_dir="$repo/tests/node"

die() { echo "tests/setup.sh: $*" >&2; exit 1; }
digest() { sha256sum "$1" | cut -d' ' -f1; }

command -v python3 >/dev/null || die "python3 is not installed"
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"

# --- Python -----------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "tests/setup.sh: installing python3-venv" >&2
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$venv"
        else
            die "'python3 -m venv' failed; install the python3-venv package"
        fi
    fi
fi
stamp="$venv/.conformance-requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(digest "$requirements")" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    "$venv/bin/python" -c "import azure.iot.hub, azure.iot.device" || die "azure-iot-hub or azure-iot-device does not import in $venv"
    digest "$requirements" > "$stamp"
fi

# --- Node -------------------------------------------------------------------------------
stamp="$node_dir/node_modules/.conformance-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(digest "$node_dir/package-lock.json")" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    digest "$node_dir/package-lock.json" > "$stamp"
fi
