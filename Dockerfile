# vidsync-server in a container. Build: docker build -t vidsync-server .
# Run: docker compose up -d (compose.yaml), or
#   docker run -d -p 127.0.0.1:5000:5000 -v vidsync-data:/data vidsync-server

# ---- build ----------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# `cargo build -p` still reads every workspace member's Cargo.toml (the Tauri
# crate src-tauri included, though it is not compiled), so the whole source
# goes in; .dockerignore keeps target/, node_modules and data out.
COPY . .
# The registry and target/ are BuildKit caches, so the binary is copied out
# in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build -p vidsync-server --release --locked \
    && install -D -m 0755 target/release/vidsync-server /out/vidsync-server

# ---- run ------------------------------------------------------------------
FROM debian:bookworm-slim
# curl is for HEALTHCHECK only: the server has no health subcommand.
# Versions are not pinned: Debian's archive drops a package's old version
# when a security update replaces it, so a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 vidsync \
    && useradd --system --uid 10001 --gid vidsync --home-dir /data \
       --no-create-home --shell /usr/sbin/nologin vidsync \
    && install -d -o vidsync -g vidsync -m 0750 /data
COPY --from=builder /out/vidsync-server /usr/local/bin/vidsync-server
# Numeric, so a runtime (or Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5000
# Migrations and the stored-content check run before the port opens, hence
# the start period. A port other than 5000 in CMD needs this line changed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:5000/health"]
ENTRYPOINT ["vidsync-server"]
CMD ["serve", "--listen", "0.0.0.0:5000", "--data-dir", "/data"]
