// The desktop app end to end: the real window (under Xvfb), driven over
// WebDriver (tauri-driver + WebKitWebDriver) against a real server, with a
// second client (the `vidsync` CLI) on the same project.
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, VIDSYNC_DESKTOP_BIN, SCREENSHOT_DIR.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const SERVER = process.env.VIDSYNC_SERVER_BIN;
const CLI = process.env.VIDSYNC_BIN;
const APP = process.env.VIDSYNC_DESKTOP_BIN;
const SHOTS = process.env.SCREENSHOT_DIR || join(tmpdir(), "vidsync-desktop-shots");
const DRIVER_PORT = 4444 + Math.floor(Math.random() * 500);
const DRIVER = `http://127.0.0.1:${DRIVER_PORT}`;
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const children = [];
const root = mkdtempSync(join(tmpdir(), "vidsync-desktop-"));
mkdirSync(SHOTS, { recursive: true });

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function cli(configDir, ...args) {
  return execFileSync(CLI, ["--config-dir", configDir, ...args], { env: { ...process.env, RUST_LOG: "warn" } })
    .toString()
    .trim();
}

let dataDir, serverUrl, server;
function startServer(listen) {
  server = spawn(SERVER, ["serve", "--listen", listen, "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  children.push(server);
  const lines = createInterface({ input: server.stdout });
  return until("server start", () => new Promise((r) => lines.once("line", (l) => r(l.replace("vidsync-server listening on ", "")))));
}

async function wd(method, path, body) {
  const res = await fetch(DRIVER + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`);
  return json.value;
}

let session;
const find = async (css) => (await wd("POST", `/session/${session}/element`, { using: "css selector", value: css }))[ELEMENT];
const text = async (css) => wd("GET", `/session/${session}/element/${await find(css)}/text`);
const type = async (css, s) => wd("POST", `/session/${session}/element/${await find(css)}/value`, { text: s });
const click = async (css) => wd("POST", `/session/${session}/element/${await find(css)}/click`, {});
async function shot(name) {
  const b64 = await wd("GET", `/session/${session}/screenshot`);
  const file = join(SHOTS, `${name}.png`);
  writeFileSync(file, Buffer.from(b64, "base64"));
  console.log(`screenshot: ${file}`);
}

test("link a folder in the window, see another client's change live, follow the server going away and back", async () => {
  for (const [k, v] of Object.entries({ SERVER, CLI, APP })) assert.ok(v, `set the binary path for ${k}`);
  dataDir = join(root, "data");
  serverUrl = await startServer("127.0.0.1:0");
  const port = serverUrl.split(":").pop();
  const token = (name) =>
    execFileSync(SERVER, ["user", "add", name, "--data-dir", dataDir], { env: { ...process.env, RUST_LOG: "warn" } }).toString().trim();
  const appDir = join(root, "app-config");
  const bobDir = join(root, "bob-config");
  cli(appDir, "login", "--server", serverUrl, "--token", token("alice"));
  cli(bobDir, "login", "--server", serverUrl, "--token", token("bob"));
  cli(appDir, "set", "--poll-interval-ms", "500");

  const driver = spawn("tauri-driver", ["--port", String(DRIVER_PORT), "--native-port", String(DRIVER_PORT + 600)], {
    stdio: "inherit",
    env: { ...process.env, VIDSYNC_CONFIG_DIR: appDir },
  });
  children.push(driver);
  await until("tauri-driver", () => fetch(`${DRIVER}/status`).then((r) => r.ok));
  session = (
    await wd("POST", "/session", { capabilities: { alwaysMatch: { "tauri:options": { application: APP } } } })
  ).sessionId;

  // The empty state tells what to do; then a folder is linked through the UI.
  await until("the page", async () => (await text("#projects-empty")).includes("Share a folder"));
  await shot("1-empty");
  const folder = join(root, "site");
  mkdirSync(folder);
  writeFileSync(join(folder, "readme.txt"), "hello from the app's folder\n");
  await type("#add-path", folder);
  await click("#add-folder");
  await until("the project in the list", async () => (await text("#projects [data-testid=badge]")) === "up to date");
  await until("live", async () => (await text("#connection")) === "live");

  // A second client joins and writes a file.
  const projectId = JSON.parse(cli(appDir, "status", "--json"))[0].project_id;
  const code = cli(appDir, "invite", projectId);
  const bobFolder = join(root, "bob-site");
  cli(bobDir, "join", code, bobFolder, "--mode", "send-receive");
  const bob = spawn(CLI, ["--config-dir", bobDir, "run"], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } });
  children.push(bob);
  await until("bob's copy", async () => {
    const { existsSync } = await import("node:fs");
    return existsSync(join(bobFolder, "readme.txt"));
  });
  writeFileSync(join(bobFolder, "from-bob.txt"), "bob was here\n");
  const written = Date.now();
  // The feed and the "Synced" badge show it within 3 s.
  await until("the event in the feed", async () => (await text("#feed")).includes("from-bob.txt"), 3000);
  await until("the synced badge", async () => (await text("#synced")).includes("Synced: from-bob.txt"), 3000 - (Date.now() - written));
  console.log(`feed and badge showed bob's change ${Date.now() - written} ms after the write`);
  await shot("2-live-feed");

  // The server goes away: offline. It comes back: live.
  server.kill("SIGTERM");
  await until("server exit", () => Promise.resolve(server.exitCode !== null));
  await until("offline", async () => (await text("#connection")) === "offline");
  await shot("3-offline");
  await startServer(`127.0.0.1:${port}`);
  await until("live again", async () => (await text("#connection")) === "live", 30000);
  await shot("4-live-again");

  await wd("DELETE", `/session/${session}`);
  bob.kill("SIGTERM");
  driver.kill("SIGTERM");
});
