#!/usr/bin/env bash
# The project's test command: installs the official SDKs the conformance suites drive
# (tests/setup.sh), then runs every test of the workspace. Extra arguments go to cargo test.
# Exits non-zero when anything fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash tests/setup.sh
cargo test --workspace --no-fail-fast "$@"
