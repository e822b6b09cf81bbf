#!/usr/bin/env bash
# Installs what `make test` / `make run` need and is missing on a Debian 12
# machine: the system packages the Rust crates link against. Idempotent and
# quiet when everything is there.
set -euo pipefail

need=()
# Tauri 2 on Debian 12 (webkit2gtk 4.1, gtk3, libsoup 3, librsvg, tray),
# and what the desktop end-to-end test runs in (Xvfb, WebKitWebDriver).
for pkg in pkg-config libssl-dev gcc make curl \
           libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev librsvg2-dev \
           libayatana-appindicator3-dev libxdo-dev xvfb xauth webkit2gtk-driver \
           chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Node.js runs the interop tests with the official socket.io-client.
if ! command -v npm >/dev/null 2>&1; then
  echo "deps: installing nodejs npm"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Python runs the interop tests with python-socketio, from a venv the Makefile makes.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "deps: installing python3 python3-venv"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "deps: cargo is in $HOME/.cargo/bin but not on PATH; the Makefile adds it" >&2
  else
    echo "deps: no Rust toolchain found. Install Rust 1.94 or newer (rustup), then run make again." >&2
    exit 1
  fi
fi

# The browser page's WebAssembly (web/wasm): the target, and the
# wasm-bindgen CLI of exactly the version web/wasm/Cargo.toml pins.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "deps: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
wbg_version=0.2.130
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg_version\b" \
   && ! "$HOME/.cargo/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $wbg_version\b"; then
  echo "deps: installing wasm-bindgen-cli $wbg_version"
  # Not --locked: its lock file names a webpki-roots the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wbg_version" --quiet
fi

# tauri-driver bridges WebDriver to the app's WebKitWebDriver.
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "deps: installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked --quiet
fi
