# Vidsync: `make run` starts the server (and, later, the desktop app);
# `make test` installs what is missing and runs every test; `make bench`
# prints the performance figures.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# One target directory across clones and runs: builds are slow on 2 cores.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/vidsync/target
CARGO ?= cargo
DATA_DIR ?= ./data
LISTEN ?= 127.0.0.1:5000

SERVER_DEBUG := $(CARGO_TARGET_DIR)/debug/vidsync-server
SERVER_RELEASE := $(CARGO_TARGET_DIR)/release/vidsync-server
CLIENT_DEBUG := $(CARGO_TARGET_DIR)/debug/vidsync
CLIENT_RELEASE := $(CARGO_TARGET_DIR)/release/vidsync
DESKTOP_DEBUG := $(CARGO_TARGET_DIR)/debug/vidsync-desktop
DESKTOP_RELEASE := $(CARGO_TARGET_DIR)/release/vidsync-desktop
SCREENSHOT_DIR ?= $(CARGO_TARGET_DIR)/desktop-screenshots
# python-socketio interop tests run from this venv (remade when requirements.txt changes).
PY_VENV := $(CARGO_TARGET_DIR)/python-venv
PY_REQ := tests/python/requirements.txt
# Tauri's CLI (prebuilt, from npm) for its deb bundler; the .debs land in DEB_DIR.
TAURI_CLI := packaging/desktop/node_modules/.bin/tauri
TAURI_DEB_CONFIG := packaging/desktop/tauri.deb.json
DEB_DIR ?= $(CARGO_TARGET_DIR)/debian

.PHONY: all deps ui web bindings build run test test-python test-package package bench clean-data

all: build

# The desktop app's page; Tauri embeds ui/dist when the app is compiled.
ui: deps
	# npm ci trips over rollup's optional platform packages (npm 11); install keeps to the lock.
	cd ui && npm install --no-audit --no-fund --loglevel=error && npm run build


deps:
	@./scripts/deps.sh

# The browser page the server serves at / (web/): the protocol crate's
# hashing and path rules compiled to WebAssembly (web/wasm, wasm-bindgen),
# then the page bundled into web/dist, which the server embeds.
WASM_OUT := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/release/vidsync_wasm.wasm
web: deps
	$(CARGO) build --locked --release -p vidsync-wasm --target wasm32-unknown-unknown
	wasm-bindgen --target web --out-dir web/src/wasm $(WASM_OUT)
	cd web && npm install --no-audit --no-fund --loglevel=error && npm run build

# Rewrites ui/src/generated (the page's copies of the Rust types, by ts-rs);
# `make test` fails while they are stale.
bindings: ui
	VIDSYNC_WRITE_BINDINGS=1 $(CARGO) test --locked -p vidsync-desktop --lib bindings

build: ui web
	$(CARGO) build --locked --workspace

# Starts the server, signs the app (and the CLI) in to it on first use
# (scripts/local-signin.sh: a user named $(RUN_USER) and its token), then the app.
RUN_USER ?= $(shell id -un 2>/dev/null || echo me)
run: ui web
	$(CARGO) build --locked --release -p vidsync-server -p vidsync-client -p vidsync-desktop
	@echo
	@echo "Vidsync server on http://$(LISTEN), data in $(DATA_DIR)"
	@$(SERVER_RELEASE) serve --listen $(LISTEN) --data-dir $(DATA_DIR) & srv=$$!; \
	  trap 'kill $$srv 2>/dev/null; wait $$srv' EXIT INT TERM; \
	  scripts/local-signin.sh http://$(LISTEN) $(DATA_DIR) $(SERVER_RELEASE) $(CLIENT_RELEASE) $(RUN_USER) || exit 1; \
	  echo "The CLI shares the app's sign-in and folders: $(CLIENT_RELEASE) share ~/some/folder (the app syncs it from its next start; the app and '$(CLIENT_RELEASE) run' never sync one config dir at once)"; \
	  if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	    $(DESKTOP_RELEASE); \
	  else \
	    echo "(no display: the server only; run the desktop app where a display exists)"; \
	    wait $$srv; \
	  fi

test: ui web
	cd ui && npm test
	# ui/src/generated matches the Rust types (else: make bindings).
	$(CARGO) test --locked -p vidsync-desktop --lib bindings
	$(CARGO) build --locked -p vidsync-server -p vidsync-client -p vidsync-desktop
	VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) VIDSYNC_BIN=$(CLIENT_DEBUG) $(CARGO) test --locked --workspace -- --test-threads=4
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error && VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) npm test
	$(MAKE) --no-print-directory test-python
	$(MAKE) --no-print-directory test-package
	cd tests/web && npm ci --no-audit --no-fund --loglevel=error && \
	  VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) VIDSYNC_BIN=$(CLIENT_DEBUG) SCREENSHOT_DIR=$(SCREENSHOT_DIR) timeout 300 npm test
	cd tests/desktop && npm ci --no-audit --no-fund --loglevel=error
	VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) VIDSYNC_BIN=$(CLIENT_DEBUG) VIDSYNC_DESKTOP_BIN=$(DESKTOP_DEBUG) \
	  SCREENSHOT_DIR=$(SCREENSHOT_DIR) timeout 300 xvfb-run -a -s "-screen 0 1280x900x24" \
	  node --test tests/desktop/e2e.test.mjs

$(PY_VENV)/.installed: $(PY_REQ) | deps
	python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install -q --disable-pip-version-check -r $(PY_REQ)
	touch $@

# Needs the debug server binary (the test recipe builds it first).
test-python: $(PY_VENV)/.installed
	VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) VIDSYNC_BIN=$(CLIENT_DEBUG) $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  --ignore=tests/python/test_package.py tests/python

$(TAURI_CLI): packaging/desktop/package.json packaging/desktop/package-lock.json | deps
	cd packaging/desktop && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The .debs built from the debug binaries (the test recipe builds them
# first): release builds of the desktop app take too long for `make test`.
# Same packaging as `make package`; installs, runs and purges them (root).
test-package: $(PY_VENV)/.installed $(TAURI_CLI)
	rm -rf $(DEB_DIR)/debug $(CARGO_TARGET_DIR)/debug/bundle/deb
	DEB_COMPRESSION=gzip scripts/package-server-deb.sh $(SERVER_DEBUG) $(DEB_DIR)/debug
	$(TAURI_CLI) bundle --debug --bundles deb --ci --config $(TAURI_DEB_CONFIG)
	# The bundler's staging tree is the size of the debug binary (~0.5 GB).
	find $(CARGO_TARGET_DIR)/debug/bundle/deb -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
	VIDSYNC_SERVER_DEB=$$(ls $(DEB_DIR)/debug/vidsync-server_*.deb) \
	VIDSYNC_DESKTOP_DEB=$$(ls $(CARGO_TARGET_DIR)/debug/bundle/deb/*.deb) \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python/test_package.py

# Release .debs of the server (dpkg-deb) and the desktop app (Tauri's bundler)
# in DEB_DIR.
package: ui web $(TAURI_CLI)
	$(CARGO) build --locked --release -p vidsync-server
	rm -rf $(DEB_DIR)/release && mkdir -p $(DEB_DIR)/release
	scripts/package-server-deb.sh $(SERVER_RELEASE) $(DEB_DIR)/release
	$(TAURI_CLI) build --bundles deb --ci --config $(TAURI_DEB_CONFIG) -- --locked
	cp $(CARGO_TARGET_DIR)/release/bundle/deb/*.deb $(DEB_DIR)/release/
	@ls -l $(DEB_DIR)/release

bench: ui web
	$(CARGO) build --locked --release -p vidsync-server -p vidsync-client -p vidsync-e2e -p vidsync-desktop
	# The Node socket.io reference the fan-out is compared against.
	cd tests/bench-ref && npm ci --no-audit --no-fund --loglevel=error
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	VIDSYNC_SERVER_BIN=$(SERVER_RELEASE) VIDSYNC_BIN=$(CLIENT_RELEASE) $(CARGO_TARGET_DIR)/release/vidsync-bench $(BENCH_ARGS)
	cd tests/web && npm ci --no-audit --no-fund --loglevel=error && VIDSYNC_SERVER_BIN=$(SERVER_RELEASE) node bench.mjs
	cd tests/desktop && npm ci --no-audit --no-fund --loglevel=error
	VIDSYNC_SERVER_BIN=$(SERVER_RELEASE) VIDSYNC_BIN=$(CLIENT_RELEASE) VIDSYNC_DESKTOP_BIN=$(DESKTOP_RELEASE) \
	  SCREENSHOT_DIR=$(SCREENSHOT_DIR) timeout 600 xvfb-run -a -s "-screen 0 1280x900x24" node tests/desktop/bench.mjs

clean-data:
	rm -rf $(DATA_DIR)
