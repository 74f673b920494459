#!/usr/bin/env bash
# Sets up (idempotently) and runs every check and test: the README's test command, and what CI runs.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
step() { printf '\n== %s\n' "$*"; }

bash scripts/setup.sh

step "GitHub workflows (actionlint; any finding fails)"
"$CAHAT_VENV/bin/actionlint" -shellcheck shellcheck .github/workflows/*.yml

step "module cycles (no two files of a crate import each other)"
python3 scripts/module-cycles.py protocol/src client/src real-server/src mock-backend/src mock-worker/src

step "format"
cargo fmt --all --check

step "clippy (native, and the client and the demo rooms' worker for wasm32)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p client -p mock-worker --target wasm32-unknown-unknown --locked -- -D warnings

step "MongoDB-compatible test server"
if [ -z "${CAHAT_MONGODB_URI:-}" ]; then
  # SecantusDB (a test server only, never linked into our code), in memory, on a free port.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$CAHAT_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: \
    > "$CAHAT_CACHE/secantus.log" 2>&1 &
  secantus_pid=$!
  trap 'kill "$secantus_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.2
  done
  export CAHAT_MONGODB_URI="mongodb://127.0.0.1:$port"
fi
echo "MongoDB tests use $CAHAT_MONGODB_URI"

step "rust tests"
cargo test --workspace --locked

step "client release build"
bash scripts/build-client.sh

step "browser tests"
# The live-room tests start real room servers: the binary cargo test has just built.
export CAHAT_SERVER_BIN="$CARGO_TARGET_DIR/debug/real-server"
npm run --silent e2e
