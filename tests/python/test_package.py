"""The .deb packages (issue 12), installed on this machine as an operator
would: `dpkg -i`, the server's unit command run as the package's user,
`/health`, then `dpkg -r` and `dpkg --purge` leaving nothing of theirs.

VIDSYNC_SERVER_DEB and VIDSYNC_DESKTOP_DEB name the packages (`make test`
builds them from the debug binaries; `make package` builds release ones).
Needs root and dpkg (Debian); systemd does not run here, so the unit's
ExecStart line is run the way systemd would: as User=, with
EnvironmentFile= read. The packages must not be installed before the test.
"""

import grp
import json
import os
import pwd
import shlex
import signal
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

SERVER_DEB = os.environ.get("VIDSYNC_SERVER_DEB")
DESKTOP_DEB = os.environ.get("VIDSYNC_DESKTOP_DEB")
UNIT = Path("/usr/lib/systemd/system/vidsync-server.service")
DEADLINE = 60


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kw)


def installed(package):
    r = run("dpkg-query", "-W", "-f=${Status}", package)
    return r.returncode == 0 and "installed" in r.stdout.split()


def package_name(deb):
    return run("dpkg-deb", "-f", deb, "Package").stdout.strip()


def package_files(deb):
    """The paths a .deb installs (files and links, not directories)."""
    out = run("dpkg-deb", "-c", deb).stdout
    paths = []
    for line in out.splitlines():
        kind, name = line[0], line.split(None, 5)[5].split(" -> ")[0]
        if kind != "d":
            paths.append("/" + name.lstrip("./"))
    return paths


@pytest.fixture
def as_root():
    if os.geteuid() != 0 or not Path("/usr/bin/dpkg").exists():
        pytest.fail("the package test installs with dpkg: run it as root on Debian")


def unit_settings():
    """The [Service] keys of the installed unit (repeated keys: the last one)."""
    keys = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            keys[k] = v
    return keys


def environment_file(spec):
    """What systemd would read from `EnvironmentFile=` (`-` prefix: optional)."""
    path = Path(spec.lstrip("-"))
    env = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def as_user(user):
    """preexec_fn dropping to `user`, as systemd's User= does."""
    pw = pwd.getpwnam(user)

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return drop


def test_server_package_installs_serves_and_removes_cleanly(as_root):
    assert SERVER_DEB, "set VIDSYNC_SERVER_DEB (make test does)"
    name = package_name(SERVER_DEB)
    assert name == "vidsync-server"
    assert not installed(name), "vidsync-server is installed here already; remove it first"
    user_existed = True
    try:
        pwd.getpwnam("vidsync")
    except KeyError:
        user_existed = False
    data_existed = Path("/var/lib/vidsync").exists()

    r = run("dpkg", "-i", SERVER_DEB)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        # The layout: user, data dir, settings readable by the service only.
        pw = pwd.getpwnam("vidsync")
        assert pw.pw_shell == "/usr/sbin/nologin"
        data = os.stat("/var/lib/vidsync")
        assert (data.st_uid, stat.S_IMODE(data.st_mode)) == (pw.pw_uid, 0o750)
        env_file = os.stat("/etc/vidsync/server.env")
        assert stat.S_IMODE(env_file.st_mode) == 0o640
        assert grp.getgrgid(env_file.st_gid).gr_name == "vidsync"
        assert "user add" in r.stdout, r.stdout

        unit = unit_settings()
        assert unit["User"] == "vidsync"
        argv = shlex.split(unit["ExecStart"])
        assert argv[0] == "/usr/bin/vidsync-server" and "/var/lib/vidsync" in argv
        env = {"PATH": "/usr/bin:/bin", "RUST_LOG": "warn", **environment_file(unit["EnvironmentFile"])}
        drop = as_user(unit["User"])

        # What the operator runs first, as the README says.
        check = run("/usr/bin/vidsync-server", "check", "--data-dir", "/var/lib/vidsync",
                    env=env, preexec_fn=drop)
        assert check.returncode == 0, check.stdout + check.stderr
        token = run("/usr/bin/vidsync-server", "user", "add", "alice", "--data-dir",
                    "/var/lib/vidsync", env=env, preexec_fn=drop)
        assert token.returncode == 0, token.stderr
        token = token.stdout.strip()

        # The unit's command, on a free port instead of 5000 (which something
        # else on a shared machine may hold); everything else as installed.
        argv = [("127.0.0.1:0" if a == "127.0.0.1:5000" else a) for a in argv]
        proc = subprocess.Popen(argv, env=env, preexec_fn=drop, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline().strip()
            prefix = "vidsync-server listening on "
            assert line.startswith(prefix), f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
            url = line[len(prefix):]
            with urllib.request.urlopen(url + "/health", timeout=DEADLINE) as resp:
                assert resp.status == 200
                assert json.load(resp)["status"] == "ok"
            req = urllib.request.Request(url + "/api/projects",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=DEADLINE) as resp:
                assert json.load(resp) == {"projects": []}
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=DEADLINE) == 0
        db = os.stat("/var/lib/vidsync/vidsync.db")
        assert db.st_uid == pw.pw_uid, "the database is not the service user's"
        # What `user add` run as root would leave: check names the file.
        os.chown("/var/lib/vidsync/vidsync.db", 0, 0)
        check = run("/usr/bin/vidsync-server", "check", "--data-dir", "/var/lib/vidsync",
                    env=env, preexec_fn=drop)
        assert check.returncode != 0, check.stdout
        assert "not writable by this user: /var/lib/vidsync/vidsync.db" in check.stdout, check.stdout
        os.chown("/var/lib/vidsync/vidsync.db", pw.pw_uid, pw.pw_gid)

        # Remove: the program goes, the settings (a conffile) stay.
        r = run("dpkg", "-r", name)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not Path("/usr/bin/vidsync-server").exists()
        assert not UNIT.exists()
        assert Path("/etc/vidsync/server.env").exists()
        # Purge: the settings go too; the data is kept, and said so.
        r = run("dpkg", "--purge", name)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not Path("/etc/vidsync").exists()
        assert "data kept in /var/lib/vidsync" in r.stdout, r.stdout
        assert run("dpkg-query", "-W", name).returncode != 0
        leftovers = [p for p in package_files(SERVER_DEB) if os.path.lexists(p)]
        assert leftovers == [], leftovers
    finally:
        if installed(name) or run("dpkg-query", "-W", name).returncode == 0:
            run("dpkg", "--purge", name)
        if not data_existed:
            run("rm", "-rf", "/var/lib/vidsync")
        if not user_existed:
            run("userdel", "vidsync")


def test_desktop_package_installs_with_its_entry_and_icon_and_removes_cleanly(as_root):
    assert DESKTOP_DEB, "set VIDSYNC_DESKTOP_DEB (make test does)"
    name = package_name(DESKTOP_DEB)
    assert not installed(name), f"{name} is installed here already; remove it first"
    files = package_files(DESKTOP_DEB)
    r = run("dpkg", "-i", DESKTOP_DEB)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        entries = [Path(p) for p in files if p.startswith("/usr/share/applications/") and p.endswith(".desktop")]
        assert len(entries) == 1, files
        entry = dict(
            line.split("=", 1) for line in entries[0].read_text().splitlines() if "=" in line
        )
        assert entry["Type"] == "Application" and entry["Name"] == "Vidsync"
        exe = shlex.split(entry["Exec"])[0]
        exe = exe if exe.startswith("/") else "/usr/bin/" + exe
        assert os.access(exe, os.X_OK), exe
        icons = [p for p in files if p.startswith("/usr/share/icons/hicolor/")
                 and Path(p).stem == entry["Icon"]]
        assert icons and all(Path(p).exists() for p in icons), (entry["Icon"], files)
        # Every library it links is on this machine (Depends: did its job).
        ldd = run("ldd", exe)
        assert ldd.returncode == 0 and "not found" not in ldd.stdout, ldd.stdout
        if Path("/usr/bin/desktop-file-validate").exists():
            v = run("desktop-file-validate", str(entries[0]))
            assert v.returncode == 0, v.stdout + v.stderr
    finally:
        r = run("dpkg", "--purge", name)
    assert r.returncode == 0, r.stdout + r.stderr
    leftovers = [p for p in files if os.path.lexists(p)]
    assert leftovers == [], leftovers
