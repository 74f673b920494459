#!/usr/bin/env bash
# Builds the release client into dist/ and prints its transfer size (gzip), checked against the
# 250 KiB budget. Usage: scripts/build-client.sh [PUBLIC_URL]   (default ./, relative paths)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
trunk build --release --offline --public-url "${1:-./}"

budget=$((250 * 1024))
total=0
while IFS= read -r file; do
  size=$(gzip -9 -c "$file" | wc -c)
  printf '%8d bytes gzip  %s\n' "$size" "${file#dist/}"
  total=$((total + size))
done < <(find dist -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' \) | sort)
printf '%8d bytes gzip  total (budget %d)\n' "$total" "$budget"
if [ "$total" -gt "$budget" ]; then
  echo "client transfer size is over the budget" >&2
  exit 1
fi
