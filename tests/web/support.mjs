// What the browser tests share: a real node, Debian's chromium driven by playwright-core, a
// signed-in page per user, and writes straight over the protocol. Screenshots go to
// $KAIWA_WEB_OUTPUT (default: ./output).

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const binary = process.env.KAIWA_BINARY ?? "../../build/release/apps/kaiwa";
export const output = process.env.KAIWA_WEB_OUTPUT ?? "output";
mkdirSync(output, { recursive: true });

/**
 * Starts a node (`args`: more flags); resolves with {proc, port, adminPort, clusterPort} once it
 * prints its ports (clusterPort 0: no --cluster).
 */
export function startNode(dir, port = 0, { secret, args = [] } = {}) {
  return new Promise((resolve, reject) => {
    // A secret travels in the environment, never on the command line.
    const env = secret ? { ...process.env, KAIWA_SECRET: secret } : process.env;
    const proc = spawn(binary, [
      "start", "--listen", `127.0.0.1:${port}`, "--admin", "127.0.0.1:0", "--data-dir", dir, ...args,
    ], { env });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 20_000);
    const onData = (d) => {
      out += d;
      const m = out.match(/listening public=[^:]+:(\d+) admin=[^:]+:(\d+)(?: cluster=[^:]+:(\d+))?\n/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), adminPort: Number(m[2]), clusterPort: Number(m[3] ?? 0) });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => reject(new Error(`node exited ${code}: ${out}`)));
  });
}

/** Stops a node: SIGTERM (a clean stop) unless told otherwise (SIGKILL: a crash). */
export function stopNode(node, signal = "SIGTERM") {
  return new Promise((resolve) => {
    node.proc.removeAllListeners("exit");
    node.proc.on("exit", resolve);
    node.proc.kill(signal);
  });
}

/** Polls `check` (async, truthy when done) every 50 ms until it holds; fails after `timeoutMs`. */
export async function until(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // the polling interval, not a synchronization
  }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // Chromium's own network chatter is refused on this machine's closed network.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A new browser context (a user of their own) at `url`, signed in as `name`. */
export async function signIn(browser, url, name, viewport = { width: 1100, height: 760 }) {
  const context = await browser.newContext({ viewport });
  return signInPage(await context.newPage(), url, name);
}

/** `page` (of a context set up by the caller) at `url`, signed in as `name`. */
export async function signInPage(page, url, name) {
  page.setDefaultTimeout(15_000);
  await page.goto(url);
  await page.locator("#signin-user").fill(name);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#status[data-state=online]").waitFor();
  return page;
}

/**
 * Registers a test file's hooks: before its tests, a node on a fresh data dir (named from
 * `prefix`) and a browser; after them, both closed and the dir removed. Returns the live state,
 * {dataDir, node, url, browser}, filled in by the hooks, and `signIn(name, viewport)` at that
 * node; a test that restarts the node puts the new one in `node`.
 */
export function nodeAndBrowser(prefix) {
  const s = { dataDir: mkdtempSync(join(tmpdir(), prefix)) };
  s.signIn = (name, viewport) => signIn(s.browser, s.url, name, viewport);
  before(async () => {
    s.node = await startNode(s.dataDir);
    s.url = `http://127.0.0.1:${s.node.port}/`;
    s.browser = await launchBrowser();
  });
  after(async () => {
    await s.browser?.close();
    if (s.node) await stopNode(s.node);
    rmSync(s.dataDir, { recursive: true, force: true });
  });
  return s;
}

export async function joinRoom(page, room) {
  await page.getByRole("textbox", { name: "Join a room" }).fill(room);
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await page.locator("#room-title", { hasText: room }).waitFor();
}

/** Creates the private room `room` with `topic` from the sidebar's form and waits until it is shown. */
export async function createPrivateRoom(page, room, topic) {
  await page.getByText("Create a room").click();
  await page.locator("#create-room").fill(room);
  await page.getByLabel("Private").check();
  await page.locator("#create-topic").fill(topic);
  await page.getByRole("button", { name: "Create" }).click();
  await page.locator("#room-title", { hasText: room }).waitFor();
}

/** Invites `user` into the room shown. */
export async function invite(page, user) {
  await page.getByRole("textbox", { name: "A user to invite or remove" }).fill(user);
  await page.getByRole("button", { name: "Invite", exact: true }).click();
}

export async function say(page, text) {
  await page.getByRole("textbox", { name: "Message", exact: true }).fill(text);
  await page.getByRole("textbox", { name: "Message", exact: true }).press("Enter");
}

/**
 * `user` sends each {room, text} of `messages` over a WebSocket of its own (opened from `page`,
 * which only lends its origin); resolves with their seqs once every one is acked.
 */
export function writeAs(page, user, messages) {
  return page.evaluate(
    async ({ user, messages }) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      await new Promise((r) => (ws.onopen = r));
      const seqs = [];
      let acked = 0;
      const done = new Promise((resolve, reject) => {
        ws.onmessage = (m) => {
          const msg = JSON.parse(m.data);
          if (msg.op === "error") reject(new Error(msg.message));
          if (msg.op !== "ack") return;
          seqs[msg.id - 1] = msg.seq;
          if (++acked === messages.length) resolve();
        };
      });
      ws.send(JSON.stringify({ op: "hello", id: "hello", user }));
      messages.forEach(({ room, text }, i) => ws.send(JSON.stringify({ op: "send", id: i + 1, room, text })));
      await done;
      ws.close();
      return seqs;
    },
    { user, messages },
  );
}

/** One request of `user` over a WebSocket of its own (opened from `page`); resolves with the reply. */
export function requestAs(page, user, request) {
  return page.evaluate(
    async ({ user, request }) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      await new Promise((r) => (ws.onopen = r));
      const reply = new Promise((resolve) => {
        ws.onmessage = (m) => {
          const msg = JSON.parse(m.data);
          if (msg.id === "r") resolve(msg);
        };
      });
      ws.send(JSON.stringify({ op: "hello", id: "hello", user }));
      ws.send(JSON.stringify({ ...request, id: "r" }));
      const msg = await reply;
      ws.close();
      return msg;
    },
    { user, request },
  );
}

export const texts = (page) =>
  page.locator("#messages .message:not(.notice):not(.pending) .text").allTextContents();
export const shot = (page, name) => page.screenshot({ path: join(output, `${name}.png`), fullPage: true });
