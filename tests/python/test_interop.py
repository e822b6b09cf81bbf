"""The server driven by python-socketio (asyncio client over aiohttp), with
its default settings, as a third-party client would use it.

VIDSYNC_SERVER_BIN names the server binary (the Makefile sets it).
python-engineio refuses a polling payload of more than 16 packets by default
(Payload.max_decode_packets); a replay of any length must still arrive.
"""

import asyncio
import hashlib
import json
import os
import subprocess
import tempfile

import aiohttp
import pytest
import socketio

BIN = os.environ.get("VIDSYNC_SERVER_BIN")
DEADLINE = 60.0


@pytest.fixture(scope="module")
def server():
    assert BIN, "set VIDSYNC_SERVER_BIN"
    with tempfile.TemporaryDirectory(prefix="vidsync-py-") as data:
        env = {**os.environ, "RUST_LOG": "debug" if os.environ.get("TEST_LOG") else "warn"}
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


async def new_project_with_events(url, token, count):
    """Creates a project and appends `count` events; returns its id."""
    headers = {"authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{url}/api/projects", json={"name": f"py{count}"}) as r:
            assert r.status == 201, await r.text()
            project_id = (await r.json())["id"]
        hash_ = hashlib.sha256(b"x").hexdigest()
        changes = [
            {"path": f"f/{i}.txt", "op": "create", "hash": hash_, "size": 1,
             "mtime": None, "change_id": None}
            for i in range(count)
        ]
        async with http.post(
            f"{url}/api/projects/{project_id}/files/update",
            json={"client_id": "py", "changes": changes},
        ) as r:
            assert r.status == 200, await r.text()
    return project_id


async def replay(url, token, project_id, count, transport):
    """Subscribes with since_seq 0 from the connect handler; returns the seqs
    received once `count` arrived, and whether the client got disconnected."""
    client = socketio.AsyncClient(reconnection=False)
    seqs = []
    done = asyncio.Event()
    acks = []
    dropped = []

    @client.on("connect")
    async def on_connect():
        acks.append(await client.call(
            "subscribe:project", {"project_id": project_id, "since_seq": 0}, timeout=DEADLINE))

    @client.on("project:event")
    async def on_event(ev):
        seqs.append(ev["seq"])
        if len(seqs) >= count:
            done.set()

    @client.on("disconnect")
    async def on_disconnect(*_):
        dropped.append(True)
        done.set()

    transports = None if transport == "default" else [transport]
    await client.connect(url, auth={"token": token}, transports=transports)
    try:
        await asyncio.wait_for(done.wait(), DEADLINE)
        dropped_before_the_end = bool(dropped)
    finally:
        await client.disconnect()
    return acks, list(seqs), dropped_before_the_end


# "default": polling first, then the upgrade to websocket during the replay.
@pytest.mark.parametrize("transport", ["polling", "websocket", "default"])
@pytest.mark.parametrize("count", [100, 2000])
def test_replay_of_any_length_reaches_a_default_client(server, transport, count):
    url, token = server

    async def run():
        project_id = await new_project_with_events(url, token, count)
        return await replay(url, token, project_id, count, transport)

    acks, seqs, dropped = asyncio.run(run())
    assert not dropped, f"disconnected after {len(seqs)} of {count} events"
    assert acks and acks[0]["ok"] is True, acks
    assert seqs == list(range(1, count + 1))


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_files_update_over_the_socket(server, transport):
    """PROTOCOL.md v2, "Changes over the socket": the ack carries the events
    (or the error object), and a retry of the same change ids appends
    nothing."""
    url, token = server

    async def run():
        project_id = await new_project_with_events(url, token, 1)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, auth={"token": token}, transports=[transport])
        try:
            hash_ = hashlib.sha256(b"u").hexdigest()
            batch = {
                "project_id": project_id,
                "client_id": "py-up",
                "changes": [
                    {"path": f"up/{n}", "op": "create", "hash": hash_, "size": 1,
                     "mtime": None, "change_id": f"py-{n}"}
                    for n in ("a", "b")
                ],
            }
            first = await client.call("files:update", batch, timeout=DEADLINE)
            again = await client.call("files:update", batch, timeout=DEADLINE)
            bad = dict(batch, changes=[dict(batch["changes"][0], path="../out")])
            refused = await client.call("files:update", bad, timeout=DEADLINE)
            missing = await client.call("files:update", {"project_id": project_id},
                                        timeout=DEADLINE)
        finally:
            await client.disconnect()
        return first, again, refused, missing

    first, again, refused, missing = asyncio.run(run())
    assert first["ok"] is True, first
    assert [e["seq"] for e in first["events"]] == [2, 3]
    assert first["head_seq"] == 3
    assert first["events"][0]["origin"] == {"client_id": "py-up", "user": "alice"}
    assert again == first
    assert refused["ok"] is False and refused["error"]["code"] == "invalid_path", refused
    assert missing["ok"] is False and missing["error"]["code"] == "bad_request", missing


def test_a_wrong_token_is_refused(server):
    url, _ = server

    async def run():
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, auth={"token": "vst_wrong"}, transports=["polling"])

    asyncio.run(run())


async def bare_polling_replay(url, token, project_id, count):
    """A bare Engine.IO v4 polling client that subscribes with since_seq 0;
    returns the number of packets in each payload it got, and the seqs."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            assert r.status == 200, await r.text()
            poll = f"{base}&sid={json.loads((await r.text())[1:])['sid']}"

        async def post(packet):
            async with http.post(poll, data=packet.encode()) as r:
                assert r.status == 200, await r.text()

        await post("40" + json.dumps({"token": token}))
        sizes, seqs = [], []
        while len(seqs) < count:
            async with http.get(poll) as r:
                assert r.status == 200, await r.text()
                packets = (await r.text()).split("\x1e")
            sizes.append(len(packets))
            for packet in packets:
                if packet == "2":
                    await post("3")
                elif packet.startswith("40"):
                    request = {"project_id": project_id, "since_seq": 0}
                    await post("421" + json.dumps(["subscribe:project", request]))
                elif packet.startswith("42"):
                    name, event = json.loads(packet[2:])
                    if name == "project:presence":
                        continue  # v2: who is subscribed (this socket)
                    assert name == "project:event", packet
                    seqs.append(event["seq"])
        await post("1")
    return sizes, seqs


def test_a_polling_payload_holds_at_most_16_packets(server):
    """What python-engineio checks (max_decode_packets), seen on the wire."""
    url, token = server
    count = 3000

    async def run():
        project_id = await new_project_with_events(url, token, count)
        return await asyncio.wait_for(
            bare_polling_replay(url, token, project_id, count), DEADLINE)

    sizes, seqs = asyncio.run(run())
    print(f"{len(sizes)} payloads, largest {max(sizes)} packets")
    assert max(sizes) <= 16, f"a payload of {max(sizes)} packets"
    assert seqs == list(range(1, count + 1))
