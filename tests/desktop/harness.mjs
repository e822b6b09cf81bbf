// Shared by the desktop end-to-end test and the desktop benchmark: a real
// server process, the `vidsync` CLI, and the app under WebDriver.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const SERVER = process.env.VIDSYNC_SERVER_BIN;
export const CLI = process.env.VIDSYNC_BIN;
export const APP = process.env.VIDSYNC_DESKTOP_BIN;
const SHOTS = process.env.SCREENSHOT_DIR || join(tmpdir(), "vidsync-desktop-shots");
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const quiet = { ...process.env, RUST_LOG: "warn" };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it gives something truthy, or throws after `ms`. */
export async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

export class World {
  constructor() {
    for (const [k, v] of Object.entries({ SERVER, CLI, APP })) if (!v) throw new Error(`set the binary path for ${k}`);
    this.root = mkdtempSync(join(tmpdir(), "vidsync-desktop-"));
    this.dataDir = join(this.root, "data");
    this.home = join(this.root, "home");
    this.children = [];
    mkdirSync(this.home, { recursive: true });
    mkdirSync(SHOTS, { recursive: true });
  }

  /** Spawns in a process group of its own, so close() ends it with all its children. */
  spawn(cmd, args, opts) {
    const child = spawn(cmd, args, { ...opts, detached: true });
    this.children.push(child);
    return child;
  }

  /** Starts the server on `listen`; resolves to its URL. */
  startServer(listen = "127.0.0.1:0") {
    this.server = this.spawn(SERVER, ["serve", "--listen", listen, "--data-dir", this.dataDir, "--rate-limit", "0"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: quiet,
    });
    const lines = createInterface({ input: this.server.stdout });
    return until("server start", () => new Promise((r) => lines.once("line", (l) => r(l.replace("vidsync-server listening on ", "")))));
  }

  token(name) {
    return execFileSync(SERVER, ["user", "add", name, "--data-dir", this.dataDir], { env: quiet }).toString().trim();
  }

  cli(configDir, ...args) {
    return execFileSync(CLI, ["--config-dir", configDir, ...args], { env: quiet }).toString().trim();
  }

  /** Starts tauri-driver and opens the app with `configDir` (and `env` on top of
   * the test's); returns the WebDriver session. */
  async openApp(configDir, env = {}) {
    const port = 4444 + Math.floor(Math.random() * 500);
    this.driverUrl = `http://127.0.0.1:${port}`;
    this.driver = this.spawn("tauri-driver", ["--port", String(port), "--native-port", String(port + 600)], {
      // Not inherited: WebKitWebDriver would keep the test's output open.
      stdio: process.env.TEST_LOG ? "inherit" : "ignore",
      // HOME: "start at login" writes its autostart entry (~/.config/autostart)
      // under the test's root, never in the real home.
      env: { ...process.env, VIDSYNC_CONFIG_DIR: configDir, HOME: this.home, ...env },
    });
    await until("tauri-driver", () => fetch(`${this.driverUrl}/status`).then((r) => r.ok));
    const s = await this.wd("POST", "/session", { capabilities: { alwaysMatch: { "tauri:options": { application: APP } } } });
    this.session = s.sessionId;
    // The page says when its controls are wired and the engine answered.
    await until("the page ready", async () => (await this.script("return document.body.dataset.ready")) === "true");
  }

  async wd(method, path, body) {
    const res = await fetch(this.driverUrl + path, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`);
    return json.value;
  }

  async find(css) {
    return (await this.wd("POST", `/session/${this.session}/element`, { using: "css selector", value: css }))[ELEMENT];
  }
  async text(css) {
    return this.wd("GET", `/session/${this.session}/element/${await this.find(css)}/text`);
  }
  async type(css, s) {
    return this.wd("POST", `/session/${this.session}/element/${await this.find(css)}/value`, { text: s });
  }
  async click(css) {
    return this.wd("POST", `/session/${this.session}/element/${await this.find(css)}/click`, {});
  }
  async script(js) {
    return this.wd("POST", `/session/${this.session}/execute/sync`, { script: js, args: [] });
  }
  /** Resizes the window and waits until the page has laid out at that size. */
  async resize(width, height) {
    await this.wd("POST", `/session/${this.session}/window/rect`, { width, height });
    return this.wd("POST", `/session/${this.session}/execute/async`, {
      script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(document.documentElement.clientWidth)));",
      args: [],
    });
  }

  /** Screenshots `name` at 800×600 and 1280×900 (`name-800x600`, `name-1280x900`). */
  async shots(name) {
    for (const [w, h] of [[800, 600], [1280, 900]]) {
      await this.resize(w, h);
      await this.shot(`${name}-${w}x${h}`);
    }
  }

  async shot(name) {
    // Two animation frames: what the DOM says has been painted.
    await this.wd("POST", `/session/${this.session}/execute/async`, {
      script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
      args: [],
    });
    const b64 = await this.wd("GET", `/session/${this.session}/screenshot`);
    const file = join(SHOTS, `${name}.png`);
    writeFileSync(file, Buffer.from(b64, "base64"));
    console.log(`screenshot: ${file}`);
  }

  /** Links a new folder through the UI and waits until it is up to date and live. */
  async shareThroughUi(folder) {
    await this.type("#add-path", folder);
    await this.click("#add-folder");
    let badge;
    await until("the project in the list, up to date", async () => {
      badge = await this.text("#projects [data-testid=badge]");
      return badge === "up to date";
    }).catch(async (e) => {
      await this.shot("share-timeout").catch(() => {});
      throw new Error(`${e.message} (the badge said: ${JSON.stringify(badge)})`);
    });
    await until("live", async () => (await this.text("#connection")) === "live");
  }

  /** Ends the app, the driver, the server and the clients; safe to call twice. */
  async close() {
    if (this.session) await this.wd("DELETE", `/session/${this.session}`).catch(() => {});
    this.session = undefined;
    const children = this.children.splice(0);
    for (const c of children) {
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
