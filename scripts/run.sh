#!/usr/bin/env bash
# Sets up and runs the chat on this machine: one room server (embedded SQLite store under
# ./data) that also serves the web client, then prints the URL to open. Ctrl+C stops it.
# Usage: scripts/run.sh [PORT]   (default 4000, the port legacy CAHAT clients expect)
# The room is also usable by any WebSocket client (the legacy CAHAT client among them) at
# ws://127.0.0.1:PORT/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
port="${1:-4000}"
bash scripts/setup.sh --build-only
bash scripts/build-client.sh
cargo build --release --locked -p real-server
echo
echo "Open http://127.0.0.1:$port/?room=ws://127.0.0.1:$port/ (the web client, in this room)"
exec "$CARGO_TARGET_DIR/release/real-server" --port "$port" --name General \
  --data-dir "$CAHAT_ROOT/data" --client-dir "$CAHAT_ROOT/dist"
