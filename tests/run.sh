#!/usr/bin/env bash
# The project's test command: installs the official SDKs the conformance suites drive
# (tests/setup.sh), then runs every test of the workspace. Extra arguments go to cargo test.
# Exits non-zero when anything fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash tests/setup.sh
cargo test --workspace --no-fail-fast "$@"

# The scale benchmark as a smoke test (10,000 devices, debug build): every row must come out.
# The figures in the emulator README come from `--devices 1000000` on a release build.
cargo build -q -p iothub-emulator --bin iothub-emulator --example scale
cargo run -q -p iothub-emulator --example scale -- --devices 10000 --python-devices 2000 \
    --c2d-messages 5000 --python-c2d-messages 500

# The registry round trip through import/export jobs and Azurite as a smoke test (5,000
# devices, debug build): the re-exported registry must equal the first line by line. The
# figures in the emulator README come from `--devices 1000000` on a release build.
cargo build -q -p iothub-conformance --bin local-hub --example jobs_roundtrip
cargo run -q -p iothub-conformance --example jobs_roundtrip -- --devices 5000 --python-devices 500
