# Sourced by the other scripts: where builds, caches and tools live.
# Builds and caches go under ~/.cache/cahat so that a fresh clone (as CI makes) reuses them.
CAHAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CAHAT_CACHE="${CAHAT_CACHE:-$HOME/.cache/cahat}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CAHAT_CACHE/target}"
export npm_config_cache="${npm_config_cache:-$CAHAT_CACHE/npm}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$CAHAT_CACHE/pip}"
export CAHAT_VENV="${CAHAT_VENV:-$CAHAT_CACHE/venv}"
# Playwright must use Debian's Chromium; it may never download a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export PATH="$HOME/.cargo/bin:$CAHAT_ROOT/node_modules/.bin:$PATH"
# The wasm-bindgen version the client is built with (the CLI must be exactly this one).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$CAHAT_ROOT/Cargo.lock"
}
