// The browser page end to end: vidsync-server (real process, real SQLite),
// a `vidsync run` CLI client on a real folder, and the page in headless
// Chromium driven over WebDriver (Debian's chromium + chromium-driver).
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, SCREENSHOT_DIR.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import { SERVER, CLI, quiet, roots, until, spawnGroup, startServer, cli, proxy, Browser } from "./harness.mjs";

test("the page: sign in, live feed and tree, the past, verified downloads, drag and drop, refusals", async () => {
  const root = mkdtempSync(join(tmpdir(), "vidsync-web-"));
  roots.push(root);
  const dataDir = join(root, "data");
  // A 1 MiB blob limit, so that the server refuses one drop below.
  const url = await startServer(dataDir, ["--max-blob-bytes", String(1 << 20)]);
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
    // Presence: the running CLI client is listed.
    const cliId = JSON.parse(readFileSync(join(cfg, "config.json"), "utf8")).client_id;
    await until("the CLI client present", async () => (await b.text("#present"))?.includes(`alice (${cliId})`));
    const before = await head();

    // A CLI client writes a file: the feed and the tree show it within 2 s.
    writeFileSync(join(folder, "docs-new.txt"), "hello from the CLI\n");
    await until("the event on the server", async () => (await head()) > before);
    const seen = Date.now();
    await until("the feed", async () => (await b.text("#feed"))?.includes("docs-new.txt"), 2000);
    await until("the tree", async () => (await b.text("#tree"))?.includes("docs-new.txt"), 2000 - (Date.now() - seen));
    await b.shot("3-live");
    // A file in a new folder appears in it; deleted, the folder goes too.
    mkdirSync(join(folder, "sub/dir"), { recursive: true });
    writeFileSync(join(folder, "sub/dir/x.txt"), "x\n");
    await until("the new folder", async () => (await b.script(`return !!document.querySelector('#tree [data-dir="sub/dir/"] button[data-path="sub/dir/x.txt"]')`)) === true);
    rmSync(join(folder, "sub"), { recursive: true });
    await until("the folder gone", async () => (await b.script(`return document.querySelector('#tree [data-dir="sub/"]') === null && !document.getElementById('tree').innerText.includes('x.txt')`)) === true);

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
    // A file over the server's limit: refused before it is sent, with the
    // limit the server gave (GET /api/limits), nothing posted.
    await b.script(
      `const dt = new DataTransfer();
       dt.items.add(new File([new Uint8Array(2 << 20)], "too-big.bin"));
       document.getElementById('tree').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));`,
    );
    await until("the refusal with the server's limit", async () =>
      (await b.text("#message"))?.includes("Cannot upload too-big.bin: 2.0 MiB is over this server's limit of 1.0 MiB per file."),
    );
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
