// The server driven by the official JavaScript socket.io-client (v4, the
// Socket.IO v5 protocol) and Node's fetch, as third-party clients do.
// VIDSYNC_SERVER_BIN names the server binary (the Makefile sets it).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createHash } from "node:crypto";
import { io } from "socket.io-client";
import { blake3 } from "@noble/hashes/blake3";

const BIN = process.env.VIDSYNC_SERVER_BIN;
const DEADLINE_MS = 15000;
let dataDir, server, url;

function withDeadline(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), DEADLINE_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function startServer() {
  server = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.TEST_LOG ? "debug" : "warn" },
  });
  const lines = createInterface({ input: server.stdout });
  return withDeadline(
    new Promise((resolve) => {
      lines.once("line", (line) => {
        url = line.replace("vidsync-server listening on ", "");
        resolve();
      });
    }),
    "server start",
  );
}

function addUser(name) {
  return execFileSync(BIN, ["user", "add", name, "--data-dir", dataDir], {
    env: { ...process.env, RUST_LOG: "warn" },
  })
    .toString()
    .trim();
}

async function api(token, method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

function connect(token, transports) {
  return io(url, { auth: { token }, transports, reconnection: false, forceNew: true });
}

function once(socket, event) {
  return withDeadline(new Promise((resolve) => socket.once(event, (...args) => resolve(args))), event);
}

let alice, bob, projectId;

before(async () => {
  assert.ok(BIN, "set VIDSYNC_SERVER_BIN");
  dataDir = mkdtempSync(join(tmpdir(), "vidsync-js-"));
  alice = addUser("alice");
  bob = addUser("bob");
  await startServer();
  const created = await api(alice, "POST", "/api/projects", { name: "js" });
  assert.equal(created.status, 201);
  projectId = created.body.id;
});

after(() => {
  if (server && server.exitCode === null) server.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

test("a wrong token gets connect_error and no socket", async () => {
  const socket = connect("vst_wrong", ["websocket"]);
  const [err] = await once(socket, "connect_error");
  assert.match(err.message, /unauthorized/);
  assert.equal(socket.connected, false);
  socket.close();
});

for (const transports of [["websocket"], ["polling"]]) {
  test(`subscribe, ack and live events over ${transports[0]}`, async () => {
    const socket = connect(alice, transports);
    await once(socket, "connect");
    // Listening before subscribing: the replay may come in the same polling
    // payload as the ack (and, since presence, it often does).
    const seen = [];
    socket.on("project:event", (ev) => seen.push(ev));
    const ack = await withDeadline(
      socket.emitWithAck("subscribe:project", { project_id: projectId, since_seq: 0 }),
      "subscribe ack",
    );
    assert.equal(ack.ok, true);
    assert.equal(typeof ack.head_seq, "number");
    const head = ack.head_seq;
    const hash = createHash("sha256").update("x").digest("hex"); // any 64 lowercase hex
    const res = await api(alice, "POST", `/api/projects/${projectId}/files/update`, {
      client_id: "js",
      changes: [{ path: `dir/${transports[0]}.txt`, op: "create", hash, size: 1, mtime: null, change_id: null }],
    });
    assert.equal(res.status, 200);
    await withDeadline(
      (async () => {
        while (!seen.some((e) => e.seq === head + 1)) await new Promise((r) => setTimeout(r, 10));
      })(),
      "live event",
    );
    const ev = seen.find((e) => e.seq === head + 1);
    assert.equal(ev.project_id, projectId);
    assert.equal(ev.change.path, `dir/${transports[0]}.txt`);
    assert.deepEqual(ev.origin, { client_id: "js", user: "alice" });
    // Every earlier event came first, once each, in order.
    assert.deepEqual(seen.map((e) => e.seq), Array.from({ length: head + 1 }, (_, i) => i + 1));
    socket.close();
  });
}

// PROTOCOL.md v2, "Changes over the socket": the ack says what the HTTP
// route would (events, head_seq; or the error object), a retry of the same
// change ids appends nothing, and a peer hears the events.
for (const transports of [["websocket"], ["polling"]]) {
  test(`files:update with its ack over ${transports[0]}`, async () => {
    const peer = connect(alice, ["websocket"]);
    await once(peer, "connect");
    const sub = await withDeadline(
      peer.emitWithAck("subscribe:project", { project_id: projectId }), "subscribe ack");
    assert.equal(sub.ok, true);
    const heard = [];
    peer.on("project:event", (ev) => heard.push(ev.seq));
    const socket = connect(alice, transports);
    await once(socket, "connect");
    const hash = createHash("sha256").update("u").digest("hex");
    const batch = {
      project_id: projectId,
      client_id: "js-up",
      changes: ["a", "b"].map((n) => (
        { path: `up/${transports[0]}/${n}`, op: "create", hash, size: 1, mtime: null,
          change_id: `${transports[0]}-${n}` })),
    };
    const ack = await withDeadline(socket.emitWithAck("files:update", batch), "files:update ack");
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const seqs = ack.events.map((e) => e.seq);
    assert.deepEqual(seqs, [ack.head_seq - 1, ack.head_seq]);
    assert.equal(ack.events[1].change.path, `up/${transports[0]}/b`);
    assert.deepEqual(ack.events[0].origin, { client_id: "js-up", user: "alice" });
    const again = await withDeadline(socket.emitWithAck("files:update", batch), "retry ack");
    assert.deepEqual(again, ack);
    await withDeadline(
      (async () => {
        while (heard.length < 2) await new Promise((r) => setTimeout(r, 10));
      })(),
      "the peer hears both events",
    );
    assert.deepEqual(heard, seqs);
    // A stale base_hash: the HTTP route's 409 body, as the ack's error.
    const stale = { ...batch, changes: [{ ...batch.changes[0], op: "update", change_id: null, base_hash: null }] };
    const refused = await withDeadline(socket.emitWithAck("files:update", stale), "conflict ack");
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "conflict");
    assert.equal(refused.error.conflicts[0].current.seq, seqs[0]);
    const viaHttp = await api(alice, "POST", `/api/projects/${projectId}/files/update`,
      { client_id: stale.client_id, changes: stale.changes });
    assert.equal(viaHttp.status, 409);
    assert.deepEqual(refused.error, viaHttp.body.error);
    // A non-member may not.
    const outsider = connect(bob, transports);
    await once(outsider, "connect");
    const forbidden = await withDeadline(outsider.emitWithAck("files:update", batch), "ack");
    assert.equal(forbidden.ok, false);
    assert.equal(forbidden.error.code, "forbidden");
    outsider.close();
    socket.close();
    peer.close();
  });
}

test("a bare project id subscribes; a non-member is refused in the ack", async () => {
  const socket = connect(bob, ["websocket"]);
  await once(socket, "connect");
  const ack = await withDeadline(socket.emitWithAck("subscribe:project", projectId), "ack");
  assert.equal(ack.ok, false);
  assert.equal(ack.error.code, "forbidden");
  const mine = connect(alice, ["websocket"]);
  await once(mine, "connect");
  const ok = await withDeadline(mine.emitWithAck("subscribe:project", projectId), "ack");
  assert.equal(ok.ok, true);
  socket.close();
  mine.close();
});

for (const transports of [["websocket"], ["polling"]]) {
  test(`500 sockets subscribing in their connect handler over ${transports[0]}: none lost`, async () => {
    // Emitted in the connect handler: the server must have its handlers in
    // place before it acknowledges the connect (issue 8, item 3).
    const total = 500;
    const waves = 5;
    let lost = 0;
    for (let w = 0; w < waves; w++) {
      const results = await Promise.all(
        Array.from({ length: total / waves }, () => new Promise((resolve) => {
          const socket = connect(alice, transports);
          socket.on("connect", () => {
            socket.timeout(10000).emit("subscribe:project", projectId, (err, ack) => {
              socket.close();
              resolve(!err && ack && ack.ok === true);
            });
          });
          socket.on("connect_error", () => {
            socket.close();
            resolve(false);
          });
        })),
      );
      lost += results.filter((ok) => !ok).length;
    }
    assert.equal(lost, 0, `${lost} of ${total} subscribes emitted on connect got no ok ack`);
  });
}

// A long replay in order, on each transport and on the default one (polling,
// then an upgrade to websocket in the middle of the replay): the server holds
// a polling socket back per poll (issue 8, item 7), which must neither lose,
// repeat nor stall events, also across the upgrade.
for (const transports of [["websocket"], ["polling"], ["polling", "websocket"]]) {
  test(`a replay of 2000 events in order over ${transports.join("+")}`, async () => {
    const count = 2000;
    const created = await api(alice, "POST", "/api/projects", { name: `replay ${transports}` });
    assert.equal(created.status, 201);
    const hash = createHash("sha256").update("r").digest("hex");
    const changes = Array.from({ length: count }, (_, i) => (
      { path: `r/${i}.txt`, op: "create", hash, size: 1, mtime: null, change_id: null }));
    const posted = await api(alice, "POST", `/api/projects/${created.body.id}/files/update`,
      { client_id: "js", changes });
    assert.equal(posted.status, 200);
    const socket = connect(alice, transports);
    const seqs = [];
    const all = new Promise((resolve) => socket.on("project:event", (ev) => {
      seqs.push(ev.seq);
      if (seqs.length === count) resolve();
    }));
    socket.on("connect", () => {
      socket.emit("subscribe:project", { project_id: created.body.id, since_seq: 0 });
    });
    try {
      await withDeadline(all, `${count} replayed events (got ${seqs.length})`);
    } finally {
      socket.close();
    }
    assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => i + 1));
  });
}

// A v1 client moves whole files: a whole PUT, a GET (whole and ranged) of
// what it put, before and after the server cut it into chunks.
test("a v1 client uploads and downloads whole files", async () => {
  const bytes = new Uint8Array(3 * 1024 * 1024);
  let x = 0x2545f491;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  const hash = Buffer.from(blake3(bytes)).toString("hex");
  const blob = `${url}/api/projects/${projectId}/blobs/${hash}`;
  const auth = { authorization: `Bearer ${alice}` };
  const put = await fetch(blob, { method: "PUT", headers: auth, body: bytes });
  assert.equal(put.status, 201);
  const res = await api(alice, "POST", `/api/projects/${projectId}/files/update`, {
    client_id: "js",
    changes: [{ path: "whole/v1.bin", op: "create", hash, size: bytes.length, mtime: null, change_id: null }],
  });
  assert.equal(res.status, 200);
  const check = async (when) => {
    const whole = new Uint8Array(await (await fetch(blob, { headers: auth })).arrayBuffer());
    assert.ok(Buffer.from(whole).equals(Buffer.from(bytes)), `whole GET differs ${when}`);
    const ranged = await fetch(blob, { headers: { ...auth, range: "bytes=1000000-1999999" } });
    assert.equal(ranged.status, 206);
    const part = new Uint8Array(await ranged.arrayBuffer());
    assert.ok(Buffer.from(part).equals(Buffer.from(bytes.subarray(1000000, 2000000))), `ranged GET differs ${when}`);
  };
  await check("before the cut");
  // The server cuts a whole PUT into chunks after answering; then the
  // same routes serve it from the chunks.
  await withDeadline(
    (async () => {
      while ((await api(alice, "GET", `/api/projects/${projectId}/manifests/${hash}`)).status !== 200) {
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    "the whole PUT cut into chunks",
  );
  await check("after the cut");
  const again = await fetch(blob, { method: "PUT", headers: auth, body: bytes });
  assert.equal(again.status, 200, "the same content again is already there");
});

test("SIGTERM closes the transport normally (clients may reconnect)", async () => {
  const socket = connect(alice, ["websocket"]);
  await once(socket, "connect");
  const closed = once(socket, "disconnect");
  const exited = withDeadline(new Promise((r) => server.once("exit", (code) => r(code))), "server exit");
  server.kill("SIGTERM");
  const [reason] = await closed;
  assert.equal(reason, "transport close");
  assert.equal(await exited, 0);
});

