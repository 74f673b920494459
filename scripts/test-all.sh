#!/usr/bin/env bash
# Sets up (idempotently) and runs every check and test: the README's test command, and what CI runs.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CAHAT_ROOT"
step() { printf '\n== %s\n' "$*"; }

bash scripts/setup.sh

step "format"
cargo fmt --all --check

step "clippy (native, and the client for wasm32)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p client --target wasm32-unknown-unknown --locked -- -D warnings

step "rust tests"
cargo test --workspace --locked

step "client release build"
bash scripts/build-client.sh

step "browser tests"
npm run --silent e2e
