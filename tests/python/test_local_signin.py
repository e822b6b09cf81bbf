"""`scripts/local-signin.sh`, the step of `make run` that signs the desktop
app in to the local server: on a fresh data dir it makes a user and saves a
working token in the app's config; a later run keeps that token; a revoked
token is replaced; an app signed in to another server is left alone.

VIDSYNC_SERVER_BIN and VIDSYNC_BIN name the binaries (the Makefile sets them).
"""

import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

SERVER = os.environ.get("VIDSYNC_SERVER_BIN")
CLIENT = os.environ.get("VIDSYNC_BIN")
SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "local-signin.sh"


@pytest.fixture()
def world():
    assert SERVER and CLIENT, "set VIDSYNC_SERVER_BIN and VIDSYNC_BIN"
    with tempfile.TemporaryDirectory(prefix="vidsync-signin-") as root:
        root = pathlib.Path(root)
        data = root / "data"
        env = {**os.environ, "RUST_LOG": "warn", "VIDSYNC_CONFIG_DIR": str(root / "app-config")}
        proc = subprocess.Popen(
            [SERVER, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
        )
        try:
            line = proc.stdout.readline().strip()
            prefix = "vidsync-server listening on "
            assert line.startswith(prefix), f"unexpected first line {line!r}"
            url = line[len(prefix):]
            yield root, data, env, url
        finally:
            proc.kill()
            proc.wait()


def signin(data, env, url):
    out = subprocess.run(
        [str(SCRIPT), url, str(data), SERVER, CLIENT, "alice"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def config(env):
    return json.loads((pathlib.Path(env["VIDSYNC_CONFIG_DIR"]) / "config.json").read_text())


def projects_status(url, token):
    req = urllib.request.Request(f"{url}/api/projects", headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_fresh_data_dir_then_idempotent_then_revoked(world):
    _root, data, env, url = world
    out = signin(data, env, url)
    assert "made user alice" in out
    cfg = config(env)
    assert cfg["server"] == url
    token = cfg["token"]
    assert token and projects_status(url, token) == 200

    # Again: the same token, no new user or token.
    out = signin(data, env, url)
    assert "already signed in" in out
    assert config(env)["token"] == token

    # The token revoked (or the data dir made afresh): a new one that works.
    subprocess.run([SERVER, "user", "revoke", "alice", "--data-dir", str(data)],
                   check=True, capture_output=True, env=env)
    assert projects_status(url, token) == 401
    out = signin(data, env, url)
    assert "made user alice" in out
    fresh = config(env)["token"]
    assert fresh != token and projects_status(url, fresh) == 200


def test_an_app_signed_in_elsewhere_is_left_alone(world):
    _root, data, env, url = world
    other = {"server": "https://sync.example.org", "token": "vst_elsewhere", "client_id": "c_test"}
    cfg_dir = pathlib.Path(env["VIDSYNC_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "config.json").write_text(json.dumps(other))
    out = signin(data, env, url)
    assert "signed in to https://sync.example.org" in out
    assert config(env) == other


def test_no_server_answering_is_an_error_and_saves_nothing(world):
    root, data, env, _url = world
    out = subprocess.run(
        [str(SCRIPT), "http://127.0.0.1:9", str(data), SERVER, CLIENT, "alice"],
        capture_output=True, text=True, env={**env, "LOCAL_SIGNIN_WAIT_S": "1"}, timeout=60,
    )
    assert out.returncode != 0
    assert "no answer" in out.stderr
    assert not (pathlib.Path(env["VIDSYNC_CONFIG_DIR"]) / "config.json").exists()
