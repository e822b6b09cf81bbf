"""Presence (PROTOCOL.md v2) seen by python-socketio, a client this project
did not write: the subscribe ack lists who is there, `project:presence`
reaches the room when a second client (named by `client_id` in its auth)
subscribes and when it goes away.

VIDSYNC_SERVER_BIN names the server binary (the Makefile sets it).
"""

import asyncio
import os
import subprocess
import tempfile

import aiohttp
import pytest
import socketio

BIN = os.environ.get("VIDSYNC_SERVER_BIN")
DEADLINE = 20.0


@pytest.fixture(scope="module")
def server():
    assert BIN, "set VIDSYNC_SERVER_BIN"
    with tempfile.TemporaryDirectory(prefix="vidsync-py-presence-") as data:
        env = {**os.environ, "RUST_LOG": "warn"}
        token = subprocess.run(
            [BIN, "user", "add", "alice", "--data-dir", data],
            check=True, capture_output=True, text=True, env=env,
        ).stdout.strip()
        proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
        )
        try:
            line = proc.stdout.readline().strip()
            prefix = "vidsync-server listening on "
            assert line.startswith(prefix), f"unexpected first line {line!r}"
            yield line[len(prefix):], token
        finally:
            proc.kill()
            proc.wait()


def who(present):
    return [(p["user"], p["client_id"]) for p in present]


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_presence_with_python_socketio(server, transport):
    url, token = server

    async def run():
        headers = {"authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{url}/api/projects", json={"name": "presence"}) as r:
                assert r.status == 201, await r.text()
                project_id = (await r.json())["id"]

        lists = asyncio.Queue()
        first = socketio.AsyncClient(reconnection=False)

        @first.on("project:presence")
        async def on_presence(body):
            await lists.put(body)

        await first.connect(url, auth={"token": token, "client_id": "py-first"},
                            transports=[transport])
        second = socketio.AsyncClient(reconnection=False)
        try:
            ack = await first.call("subscribe:project", project_id, timeout=DEADLINE)
            assert ack["ok"] is True, ack
            assert who(ack["present"]) == [("alice", "py-first")]
            body = await asyncio.wait_for(lists.get(), DEADLINE)
            assert body["project_id"] == project_id
            assert who(body["present"]) == [("alice", "py-first")]

            await second.connect(url, auth={"token": token, "client_id": "py-second"},
                                 transports=[transport])
            ack = await second.call("subscribe:project", project_id, timeout=DEADLINE)
            both = [("alice", "py-first"), ("alice", "py-second")]
            assert who(ack["present"]) == both
            body = await asyncio.wait_for(lists.get(), DEADLINE)
            assert who(body["present"]) == both

            await second.disconnect()
            body = await asyncio.wait_for(lists.get(), DEADLINE)
            assert who(body["present"]) == [("alice", "py-first")]
        finally:
            await second.disconnect()
            await first.disconnect()

    asyncio.run(run())
