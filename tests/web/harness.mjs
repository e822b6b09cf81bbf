// Shared by the page tests and the page benchmark: the server, a CLI,
// a forwarding test double, and headless Chromium over WebDriver.

import { after } from "node:test";
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const SERVER = process.env.VIDSYNC_SERVER_BIN;
export const CLI = process.env.VIDSYNC_BIN;
const SHOTS = process.env.SCREENSHOT_DIR ?? join(tmpdir(), "vidsync-web-shots");
export const quiet = { ...process.env, RUST_LOG: process.env.TEST_LOG ? "debug" : "warn" };
export const children = [];
export const roots = [];
/** Ends every process started here and removes the temp dirs. */
export function cleanUp() {
  for (const c of children) {
    try {
      process.kill(-c.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const r of roots) rmSync(r, { recursive: true, force: true });
}
if (process.env.NODE_TEST_CONTEXT) after(cleanUp);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export async function until(what, check, ms = 20000) {
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

export function spawnGroup(cmd, args, opts) {
  const c = spawn(cmd, args, { ...opts, detached: true });
  children.push(c);
  return c;
}

export async function startServer(dataDir, extra = []) {
  const s = spawnGroup(SERVER, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--rate-limit", "0", ...extra], {
    stdio: ["ignore", "pipe", "inherit"],
    env: quiet,
  });
  const lines = createInterface({ input: s.stdout });
  return until("server start", () => new Promise((r) => lines.once("line", (l) => r(l.replace("vidsync-server listening on ", "")))));
}

export const cli = (dir, ...args) => execFileSync(CLI, ["--config-dir", dir, ...args], { env: quiet }).toString().trim();

/** A test double in front of the server: forwards everything (websocket
 * upgrades too), and when `tamper` is on, flips a byte of blob downloads. */
export function proxy(target) {
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

export class Browser {
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

