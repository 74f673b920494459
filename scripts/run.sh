#!/usr/bin/env bash
# Sets up and runs the chat on this machine, then prints the URL to open.
# Usage: scripts/run.sh [PORT]   (default 8080)
#
# Today this builds the release client and serves it; the room server (real-server) is not
# built yet, so the page shows the client shell only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
port="${1:-8080}"
bash scripts/setup.sh --build-only
bash scripts/build-client.sh
echo
echo "CAHAT client: http://127.0.0.1:$port/   (Ctrl+C stops it)"
exec node tests/e2e/serve-static.mjs dist "$port" /
