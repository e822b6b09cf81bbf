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

.PHONY: all deps build run test bench clean-data

all: build

deps:
	@./scripts/deps.sh

build: deps
	$(CARGO) build --locked --workspace

run: deps
	$(CARGO) build --locked --release -p vidsync-server -p vidsync-client
	@echo
	@echo "Vidsync server on http://$(LISTEN), data in $(DATA_DIR)"
	@echo "Make a token (in another terminal):"
	@echo "  $(SERVER_RELEASE) user add YOUR_NAME --data-dir $(DATA_DIR)"
	@echo "Then sync a folder with the client:"
	@echo "  $(CLIENT_RELEASE) login --server http://$(LISTEN) --token TOKEN"
	@echo "  $(CLIENT_RELEASE) share ~/some/folder && $(CLIENT_RELEASE) run"
	@echo "(No desktop app yet: it is the next piece of work.)"
	@echo
	$(SERVER_RELEASE) serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test: deps
	$(CARGO) build --locked -p vidsync-server -p vidsync-client
	VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) VIDSYNC_BIN=$(CLIENT_DEBUG) $(CARGO) test --locked --workspace -- --test-threads=4
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error && VIDSYNC_SERVER_BIN=$(SERVER_DEBUG) npm test

bench: deps
	$(CARGO) build --locked --release -p vidsync-server -p vidsync-client -p vidsync-e2e
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	VIDSYNC_SERVER_BIN=$(SERVER_RELEASE) VIDSYNC_BIN=$(CLIENT_RELEASE) $(CARGO_TARGET_DIR)/release/vidsync-bench $(BENCH_ARGS)

clean-data:
	rm -rf $(DATA_DIR)
