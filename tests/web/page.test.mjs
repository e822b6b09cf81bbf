// The browser page end to end: vidsync-server (real process, real SQLite),
// a `vidsync run` CLI client on a real folder, and the page in headless
// Chromium driven over WebDriver (Debian's chromium + chromium-driver).
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, SCREENSHOT_DIR.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const SERVER = process.env.VIDSYNC_SERVER_BIN;
const CLI = process.env.VIDSYNC_BIN;
const SHOTS = process.env.SCREENSHOT_DIR ?? join(tmpdir(), "vidsync-web-shots");
const quiet = { ...process.env, RUST_LOG: process.env.TEST_LOG ? "debug" : "warn" };
const children = [];
const roots = [];
after(() => {
  for (const c of children) {
    try {
      process.kill(-c.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
}

function spawnGroup(cmd, args, opts) {
  const c = spawn(cmd, args, { ...opts, detached: true });
  children.push(c);
  return c;
}

async function startServer(dataDir) {
  const s = spawnGroup(SERVER, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--rate-limit", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: quiet,
  });
  const lines = createInterface({ input: s.stdout });
  return until("server start", () => new Promise((r) => lines.once("line", (l) => r(l.replace("vidsync-server listening on ", "")))));
}

const cli = (dir, ...args) => execFileSync(CLI, ["--config-dir", dir, ...args], { env: quiet }).toString().trim();

/** A test double in front of the server: forwards everything (websocket
 * upgrades too), and when `tamper` is on, flips a byte of blob downloads. */
function proxy(target) {
  const t = new URL(target);
  const state = { tamper: false };
  const srv = createServer((req, res) => {
    const up = httpRequest({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      const isBlob = req.method === "GET" && /\/blobs\/[0-9a-f]{64}$/.test(req.url ?? "");
      if (!(state.tamper && isBlob && r.statusCode === 200)) {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        return;
      }
      const parts = [];
      r.on("data", (d) => parts.push(d));
      r.on("end", () => {
        const body = Buffer.concat(parts);
        if (body.length > 0) body[0] ^= 0xff;
        res.writeHead(200, { ...r.headers, "content-length": String(body.length) });
        res.end(body);
      });
    });
    req.pipe(up);
    up.on("error", () => res.destroy());
  });
  srv.on("upgrade", (req, sock, head) => {
    const up = netConnect(Number(t.port), t.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`, ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), "", ""];
      up.write(lines.join("\r\n"));
      up.write(head);
      sock.pipe(up).pipe(sock);
    });
    up.on("error", () => sock.destroy());
    sock.on("error", () => up.destroy());
  });
  return new Promise((r) => srv.listen(0, "127.0.0.1", () => r({ url: `http://127.0.0.1:${srv.address().port}`, state, close: () => srv.close() })));
}

class Browser {
  async open(width, height) {
    const port = 9515 + Math.floor(Math.random() * 400);
    this.base = `http://127.0.0.1:${port}`;
    spawnGroup("chromedriver", [`--port=${port}`], { stdio: "ignore" });
    await until("chromedriver", () => fetch(`${this.base}/status`).then((r) => r.ok));
    const s = await this.wd("POST", "/session", {
      capabilities: {
        alwaysMatch: {
          browserName: "chrome",
          "goog:chromeOptions": {
            binary: "/usr/bin/chromium",
            args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", `--window-size=${width},${height}`, "--no-first-run", "--disable-background-networking", "--disable-component-update"],
          },
        },
      },
    });
    this.session = s.sessionId;
  }
  async wd(method, path, body) {
    const res = await fetch(this.base + path, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value).slice(0, 300)}`);
    return json.value;
  }
  s(path) {
    return `/session/${this.session}${path}`;
  }
  go(url) {
    return this.wd("POST", this.s("/url"), { url });
  }
  script(js, ...args) {
    return this.wd("POST", this.s("/execute/sync"), { script: js, args });
  }
  async find(css) {
    const e = await this.wd("POST", this.s("/element"), { using: "css selector", value: css });
    return Object.values(e)[0];
  }
  async text(css) {
    return this.script(`const e = document.querySelector(arguments[0]); return e ? e.innerText : null;`, css);
  }
  async click(css) {
    return this.wd("POST", this.s(`/element/${await this.find(css)}/click`), {});
  }
  async type(css, text) {
    return this.wd("POST", this.s(`/element/${await this.find(css)}/value`), { text });
  }
  async shot(name) {
    mkdirSync(SHOTS, { recursive: true });
    const b64 = await this.wd("GET", this.s("/screenshot"));
    const file = join(SHOTS, `web-${name}.png`);
    writeFileSync(file, Buffer.from(b64, "base64"));
    console.log(`screenshot: ${file}`);
  }
  async close() {
    if (this.session) await this.wd("DELETE", this.s("")).catch(() => {});
  }
}

test("the page: sign in, live feed and tree, the past, verified downloads, drag and drop, refusals", async () => {
  const root = mkdtempSync(join(tmpdir(), "vidsync-web-"));
  roots.push(root);
  const dataDir = join(root, "data");
  const url = await startServer(dataDir);
  const tokenOf = (name) => execFileSync(SERVER, ["user", "add", name, "--data-dir", dataDir], { env: quiet }).toString().trim();
  const alice = tokenOf("alice");
  const bob = tokenOf("bob");
  // A CLI client shares a folder and runs.
  const cfg = join(root, "cli");
  const folder = join(root, "site");
  mkdirSync(folder);
  writeFileSync(join(folder, "readme.txt"), "first line\n");
  cli(cfg, "login", "--server", url, "--token", alice);
  cli(cfg, "set", "--debounce-ms", "100");
  const projectId = cli(cfg, "share", folder, "--name", "site");
  spawnGroup(CLI, ["--config-dir", cfg, "run"], { stdio: "ignore", env: quiet });
  const headers = { authorization: `Bearer ${alice}` };
  const head = async () => (await (await fetch(`${url}/api/projects/${projectId}/events?since_seq=0&limit=1`, { headers })).json()).head_seq;
  await until("readme on the server", async () => (await head()) >= 1);

  const px = await proxy(url);
  const b = new Browser();
  await b.open(1280, 900);
  try {
    await b.go(px.url + "/");
    await until("the sign-in form", async () => (await b.script("return document.body.dataset.ready")) === "true");
    assert.equal(await b.script("return location.href.includes('vst_')"), false);

    // A wrong token: a clear message, still signed out.
    await b.type("#token", "vst_wrong");
    await b.click("#sign-in-form button");
    await until("the refusal", async () => (await b.text("#message"))?.includes("refused this token"));
    assert.equal(await b.script("return sessionStorage.getItem('vidsync-token')"), null);
    await b.shot("1-refused");

    await b.type("#token", alice);
    await b.click("#sign-in-form button");
    await until("the project list", async () => (await b.text("#projects"))?.includes("site"));
    assert.equal(await b.script("return localStorage.length"), 0, "the token is never in localStorage");
    await b.shot("2-projects");

    await b.click(`#projects a`);
    await until("the tree", async () => (await b.text("#tree"))?.includes("readme.txt"));
    await until("live", async () => (await b.text("#connection")) === "live");
    const before = await head();

    // A CLI client writes a file: the feed and the tree show it within 2 s.
    writeFileSync(join(folder, "docs-new.txt"), "hello from the CLI\n");
    await until("the event on the server", async () => (await head()) > before);
    const seen = Date.now();
    await until("the feed", async () => (await b.text("#feed"))?.includes("docs-new.txt"), 2000);
    await until("the tree", async () => (await b.text("#tree"))?.includes("docs-new.txt"), 2000 - (Date.now() - seen));
    await b.shot("3-live");

    // The slider: the tree as it was before that file.
    await b.script(`const s = document.getElementById('seq'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));`, String(before));
    await until("the old tree", async () => {
      const t = await b.text("#tree");
      return t.includes("readme.txt") && !t.includes("docs-new.txt");
    });
    assert.ok((await b.text("#tree-at")).includes(`seq ${before}`));
    await b.shot("4-past");
    await b.script(`const s = document.getElementById('seq'); s.value = s.max; s.dispatchEvent(new Event('change'));`);
    await until("live tree again", async () => (await b.text("#tree"))?.includes("docs-new.txt"));

    // A file's versions; a download checked in the browser.
    await b.click(`#tree button[data-path="readme.txt"]`);
    await until("versions", async () => (await b.text("#versions"))?.includes("seq 1"));
    await b.click(`#versions li button.view`);
    await until("verified", async () => (await b.text("#file-status"))?.startsWith("Verified"));
    assert.equal((await b.text("#file-text")).trim(), "first line");
    // The same, from a server that tampers with the bytes: refused, visibly.
    px.state.tamper = true;
    await b.click(`#versions li button.view`);
    await until("the refusal", async () => (await b.text("#file-status"))?.includes("Refused"));
    px.state.tamper = false;
    await b.shot("5-tampered");

    // Drag and drop into the root folder: reaches the CLI client's folder byte-identical.
    const dropped = "dropped from the page\n".repeat(100);
    await b.script(
      `const dt = new DataTransfer();
       dt.items.add(new File([arguments[0]], "dropped.txt", { type: "text/plain" }));
       document.getElementById('tree').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));`,
      dropped,
    );
    await until("the dropped file in the CLI's folder", async () => existsSync(join(folder, "dropped.txt")) && readFileSync(join(folder, "dropped.txt"), "utf8") === dropped);
    await until("the dropped file in the tree", async () => (await b.text("#tree"))?.includes("dropped.txt"));
    // A bad name is refused with the protocol's own reason; nothing is posted.
    const n = await head();
    await b.script(
      `const dt = new DataTransfer();
       dt.items.add(new File(["x"], "bad\\u0007name.txt"));
       document.getElementById('tree').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));`,
    );
    await until("the bad name refused", async () => (await b.text("#message"))?.includes("Cannot upload"));
    assert.equal(await head(), n);
    await b.shot("6-dropped");

    // 360 px wide: everything still there.
    await b.wd("POST", b.s("/window/rect"), { width: 360, height: 800 });
    const width = await b.script("return document.documentElement.clientWidth");
    assert.ok(width <= 360, `width ${width}`);
    const overflow = await b.script("return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1");
    assert.equal(overflow, false, "no sideways scrolling at 360 px");
    await b.shot("7-phone");
    await b.wd("POST", b.s("/window/rect"), { width: 1280, height: 900 });

    // Bob: no projects; alice's project by its link: a clear message.
    await b.click("#sign-out");
    await until("signed out", async () => (await b.script("return document.getElementById('sign-in').hidden")) === false);
    await b.type("#token", bob);
    await b.click("#sign-in-form button");
    await until("bob's empty list", async () => (await b.script("return document.getElementById('projects-empty').hidden")) === false);
    await b.go(`${px.url}/#p=${projectId}`);
    await until("not a member", async () => (await b.text("#message"))?.includes("not a member"));
    await b.shot("8-not-member");

    // No request left for anywhere but the server.
    const foreign = await b.script(
      "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin) && !n.startsWith(location.origin.replace('http', 'ws')))",
    );
    assert.deepEqual(foreign, []);
  } finally {
    await b.close();
    px.close();
  }
});

test("a socket with a foreign Origin is refused; one with none, or the server's own, is accepted", async () => {
  const root = mkdtempSync(join(tmpdir(), "vidsync-web-origin-"));
  roots.push(root);
  const dataDir = join(root, "data");
  const url = await startServer(dataDir);
  const token = execFileSync(SERVER, ["user", "add", "carol", "--data-dir", dataDir], { env: quiet }).toString().trim();
  const attempt = (extraHeaders) =>
    new Promise((resolve) => {
      const s = io(url, { auth: { token }, transports: ["polling"], extraHeaders, reconnection: false, timeout: 5000 });
      s.on("connect", () => {
        s.disconnect();
        resolve("connected");
      });
      s.on("connect_error", (e) => {
        s.disconnect();
        resolve(`refused: ${e.message}`);
      });
    });
  assert.equal(await attempt({}), "connected");
  assert.equal(await attempt({ origin: url }), "connected");
  assert.match(await attempt({ origin: "http://evil.example" }), /^refused/);
  // The page itself is served with a policy that keeps it to this server.
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
});
