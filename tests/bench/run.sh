#!/usr/bin/env bash
# Builds what the benchmark needs and runs it. Usage: tests/bench/run.sh [--quick]
# Takes about 10 minutes (3 with --quick); uses cores 0 and 1 and 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$CAHAT_ROOT"
cargo build --release --locked -p real-server -p loadgen
if [ ! -d tests/bench/baseline/node_modules/ws ]; then
  (cd tests/bench/baseline && npm install --no-audit --no-fund)
fi
ulimit -n 20000
exec python3 tests/bench/bench.py "$@"
