#!/usr/bin/env bash
# Sets up and runs the chat on this machine: two room servers, "General" (port 4000, which also
# serves the web client) and "Random" (port 4001), each with its own embedded SQLite store under
# ./data, then prints the link that opens the client in both rooms. Ctrl+C stops both.
# Usage: scripts/run.sh [PORT]   (default 4000, the port legacy CAHAT clients expect; Random
# takes PORT+1)
#
# Each room is also usable by any WebSocket client (the legacy CAHAT client among them) at
# ws://127.0.0.1:PORT/ and ws://127.0.0.1:PORT+1/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
port="${1:-4000}"
second=$((port + 1))
bash scripts/setup.sh --build-only
bash scripts/build-client.sh
cargo build --release --locked -p real-server
server="$CARGO_TARGET_DIR/release/real-server"

"$server" --port "$second" --name Random --data-dir "$CAHAT_ROOT/data/random" &
random_pid=$!
trap 'kill "$random_pid" 2>/dev/null || true' EXIT INT TERM
"$server" --port "$port" --name General --data-dir "$CAHAT_ROOT/data" \
  --client-dir "$CAHAT_ROOT/dist" &
general_pid=$!
trap 'kill "$random_pid" "$general_pid" 2>/dev/null || true; wait' EXIT INT TERM
sleep 1
echo
echo "Open http://127.0.0.1:$port/?room=ws://127.0.0.1:$port/&room=ws://127.0.0.1:$second/"
echo "(the web client in both rooms; Ctrl+C stops the servers)"
wait -n
