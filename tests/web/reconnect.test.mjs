// A room whose node dies, in a two-node cluster: the browser stays connected to the node that
// lives, the room answers `unavailable` until its node is back, and the client keeps trying
// (backoff with jitter) until the room resumes; a message written meanwhile is shown pending all
// along, then as the message; a join made while the room is away is made again once it is back.
// Screenshots go to $KAIWA_WEB_OUTPUT (default: ./output).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { joinRoom, launchBrowser, say, shot, signIn, startNode, stopNode, texts, until, writeAs } from "./support.mjs";

const SHARDS = 16;
const dir = mkdtempSync(join(tmpdir(), "kaiwa-web-cluster-"));
const nodes = {}; // id -> node
let browser;

/** Node `id` on its data dir; n2 (again, after a crash) joins n1. */
function startMember(id) {
  const args = ["--node-id", id, "--cluster", "127.0.0.1:0", "--shards", String(SHARDS)];
  if (id !== "n1") args.push("--join", `127.0.0.1:${nodes.n1.clusterPort}`);
  return startNode(join(dir, id), 0, { args });
}

const admin = async (path) => (await fetch(`http://127.0.0.1:${nodes.n1.adminPort}${path}`)).json();

/** n1 sees both members up, no move queued or under way, and the shards spread evenly. */
async function settled() {
  const c = await admin("/admin/v1/cluster");
  const shards = c.members.map((m) => m.shards);
  return (
    c.members.length === 2 &&
    c.members.every((m) => m.state === "up") &&
    !c.moving &&
    c.moves_queued === 0 &&
    Math.max(...shards) - Math.min(...shards) <= 1
  );
}

/** The shard of `room`: FNV-1a (32-bit) of its UTF-8 bytes, as core/shard.hpp. */
function shardOf(room) {
  let h = 2166136261;
  for (const b of new TextEncoder().encode(room)) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h % SHARDS;
}

/** A room name whose shard `id` owns. */
async function roomOn(id, prefix) {
  const { owners } = await admin("/admin/v1/shards");
  for (let k = 0; k < 1000; k++) if (owners[shardOf(`${prefix}${k}`)].owner === id) return `${prefix}${k}`;
  throw new Error(`no room on ${id}`);
}

before(async () => {
  nodes.n1 = await startMember("n1");
  nodes.n2 = await startMember("n2");
  browser = await launchBrowser();
  await until("the cluster to settle", settled);
});

after(async () => {
  await browser?.close();
  for (const node of Object.values(nodes)) await stopNode(node);
  rmSync(dir, { recursive: true, force: true });
});

test("a room whose node crashed is retried until the node is back; a message written meanwhile is pending until then", async () => {
  const room = await roomOn("n2", "porch-");
  const alice = await signIn(browser, `http://127.0.0.1:${nodes.n1.port}/`, "alice");
  await joinRoom(alice, room);
  await say(alice, "before the crash");
  await alice.locator(".message:not(.pending) .text", { hasText: "before the crash" }).waitFor();

  await stopNode(nodes.n2, "SIGKILL");
  // n1 closes the sessions whose subscriptions were on n2 (4010); the client reconnects to n1,
  // and the room answers `unavailable` (or `timeout`) until n2 is back: it keeps trying.
  await alice.locator("#room-link[data-state=retrying]").waitFor({ timeout: 20_000 });
  await alice.locator("#status[data-state=online]").waitFor();
  await say(alice, "written while its node is down");
  const pending = alice.locator(".message.pending", { hasText: "written while its node is down" });
  await pending.waitFor();
  assert.match(await pending.locator(".send-state").textContent(), /waiting to send/);
  // More tries, each after a longer wait: the room is retried, not given up on.
  await alice.waitForFunction(() => Number(document.querySelector("#room-link").dataset.attempt) >= 3, null, {
    timeout: 20_000,
  });
  assert.equal(await pending.count(), 1, "the pending message stays while its room is away");
  await shot(alice, "11-room-reconnecting");
  // carol opens the room while it is away: that fails, and her client joins it once it is back.
  const carol = await signIn(browser, `http://127.0.0.1:${nodes.n1.port}/`, "carol");
  await carol.getByRole("textbox", { name: "Join a room" }).fill(room);
  await carol.getByRole("button", { name: "Join", exact: true }).click();
  await carol.locator("#room-error", { hasText: room }).waitFor();

  nodes.n2 = await startMember("n2");
  // Back within the backoff's cap (10 s) once n1 sees n2 up again.
  await alice.locator("#room-link").waitFor({ state: "hidden", timeout: 40_000 });
  await alice.locator(".message:not(.pending) .text", { hasText: "written while its node is down" }).waitFor();
  assert.equal(await alice.locator(".message.pending").count(), 0);
  // carol's first join, retried, went through: the room's presence has her.
  await alice.locator("#online", { hasText: "carol" }).waitFor({ timeout: 30_000 });
  // Subscribed again: someone else's message arrives live, and counts in carol's list.
  await writeAs(alice, "bob", [{ room, text: "welcome back" }]);
  await alice.locator(".message .text", { hasText: "welcome back" }).waitFor();
  await carol.locator(`#room-list button[data-room="${room}"] .badge`).waitFor();
  await carol.locator(`#room-list button[data-room="${room}"]`).click();
  await carol.locator(".message .text", { hasText: "welcome back" }).waitFor();
  assert.deepEqual(await texts(alice), ["before the crash", "written while its node is down", "welcome back"]);
  assert.equal(await alice.locator("#room-error").textContent(), "");
  await shot(alice, "12-room-resumed");
});
