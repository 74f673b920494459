#!/usr/bin/env bash
# Restarts a room's nodes one after another, each only once the one before is healthy again:
#   deploy/rolling-restart.sh http://10.0.0.1:4000 http://10.0.0.2:4000 http://10.0.0.3:4000
# with RESTART set to the command that restarts the node at host $1 (default: ssh HOST sudo
# systemctl restart cahat-room). A node told to stop (SIGTERM) closes its clients with 1001;
# they reconnect through HAProxy to a live node and resume where they were, so nobody loses a
# message. The next node waits until this one answers /healthz again.
set -euo pipefail
restart=${RESTART:-'ssh "$1" sudo systemctl restart cahat-room'}
for node in "$@"; do
  host=${node#*://}
  host=${host%%:*}
  echo "restarting $node"
  bash -c "$restart" _ "$host"
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$node/healthz"; then
      echo "$node is healthy"
      continue 2
    fi
    sleep 1
  done
  echo "$node is not healthy after 60 s: stopping here" >&2
  exit 1
done
