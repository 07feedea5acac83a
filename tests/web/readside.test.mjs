// The web client on the read side (docs/read-side.md), in a real browser against a real node:
// the room list from `rooms` (unread counts that survive a reload, previews, private rooms,
// paging), an `invited` push, search with highlighted hits that open their room at the message,
// and the public room directory. Screenshots go to $KAIWA_WEB_OUTPUT (default: ./output).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createPrivateRoom, invite, joinRoom, nodeAndBrowser, requestAs, shot, signIn as signInAt, startNode,
  stopNode, writeAs,
} from "./support.mjs";

const suite = nodeAndBrowser("kaiwa-web-read-");
const { signIn } = suite;
const listed = (page, room) => page.locator(`#room-list button[data-room="${room}"]`);

/**
 * Waits until the node's answer to `user`'s `request` satisfies `ok`: the projections lag the
 * log by a little, and a page loaded before they caught up would not show what the test wrote.
 */
async function untilAnswer(page, user, request, ok, what) {
  let reply;
  for (let i = 0; i < 100; i++) {
    reply = await requestAs(page, user, request);
    if (ok(reply)) return;
    await page.waitForTimeout(50);
  }
  assert.fail(`${what}: ${JSON.stringify(reply)}`);
}

const unreadIs = (page, user, room, unread) =>
  untilAnswer(page, user, { op: "rooms", limit: 200 }, (r) => r.rooms?.find((x) => x.room === room)?.unread === unread,
    `${user}'s unread count in ${room} is ${unread}`);

/** Searches from the search box until a hit shows: the index lags the log by a little. */
async function searchUntilHit(page, q) {
  let note = "";
  for (let i = 0; i < 100; i++) {
    await page.getByRole("searchbox", { name: "Search messages" }).fill(q);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    // Answered: hits, or a note that is no longer "Searching…" (none found, or an error).
    await page.waitForFunction(() => {
      const note = document.querySelector("#search-note");
      return document.querySelector("#search-results li") || (!note.hidden && !note.textContent.startsWith("Searching"));
    });
    if (await page.locator("#search-results .hit").count()) return;
    note = await page.locator("#search-note").textContent();
    await page.waitForTimeout(50);
  }
  assert.fail(`no hit for ${q}: ${note}`);
}

test("the read side in the browser: room list, invitations, search, directory", async (t) => {
  const bob = await signIn("bob");
  const alice = await signIn("alice");

  await t.test("unread badges come from the server and survive a reload", async () => {
    await joinRoom(bob, "tea");
    await joinRoom(bob, "lobby");
    await writeAs(bob, "carol", [1, 2, 3].map((i) => ({ room: "tea", text: `tea ${i}` })));
    await listed(bob, "tea").locator(".badge", { hasText: "3" }).waitFor();
    await unreadIs(bob, "bob", "tea", 3);
    await bob.reload();
    await bob.locator("#status[data-state=online]").waitFor();
    // A fresh page knows nothing: the count and the preview are the node's.
    await listed(bob, "tea").locator(".badge", { hasText: "3" }).waitFor();
    await listed(bob, "tea").locator(".preview", { hasText: "carol: tea 3" }).waitFor();
    assert.equal(await bob.locator("#rooms-note").isVisible(), false, "the room list must not be the fallback");
    await shot(bob, "5-rooms-unread-after-reload");
    // Opening the room reads it; the node keeps the marker, so a reload shows no badge.
    await listed(bob, "tea").click();
    await bob.locator("#messages .message .text", { hasText: "tea 3" }).waitFor();
    assert.equal(await listed(bob, "tea").locator(".badge").count(), 0);
    await unreadIs(bob, "bob", "tea", 0);
    await listed(bob, "lobby").click();
    await bob.locator("#room-title", { hasText: "lobby" }).waitFor();
    await bob.reload();
    await listed(bob, "tea").locator(".preview", { hasText: "carol: tea 3" }).waitFor();
    assert.equal(await listed(bob, "tea").locator(".badge").count(), 0);
  });

  await t.test("an invitation puts the room in the list at once, marked, private", async () => {
    await createPrivateRoom(alice, "plans", "secret plans");
    await invite(alice, "bob");
    const plans = listed(bob, "plans");
    await plans.locator(".tag", { hasText: "invited by alice" }).waitFor();
    await plans.locator(".lock").waitFor();
    // Most recently active first: the invitation is at the top.
    assert.equal(await bob.locator("#room-list button").first().getAttribute("data-room"), "plans");
    await shot(bob, "6-invited");
    await plans.click();
    await bob.locator("#room-topic", { hasText: "secret plans" }).waitFor();
    await bob.locator(".message.notice", { hasText: "alice added bob" }).waitFor();
    assert.equal(await plans.locator(".tag").count(), 0);
  });

  await t.test("a Japanese query shows a highlighted hit; opening it shows the message in its room", async () => {
    // A public room bob never opened: the hit's room loads around the message, not its newest page.
    const fillers = Array.from({ length: 40 }, (_, i) => ({ room: "kitchen", text: `filler ${i + 1}` }));
    await writeAs(bob, "carol", [{ room: "kitchen", text: "明日の会議は15時です" }, ...fillers]);
    await searchUntilHit(bob, "会議");
    const hit = bob.locator("#search-results .hit").first();
    assert.deepEqual(await hit.locator("mark").allTextContents(), ["会議"]);
    assert.equal(await hit.locator(".text").textContent(), "明日の会議は15時です");
    assert.equal(await hit.locator(".hit-room").textContent(), "kitchen");
    assert.equal(await hit.locator(".from").textContent(), "carol");
    await shot(bob, "7-search-hit");
    await hit.click();
    await bob.locator("#room-title", { hasText: "kitchen" }).waitFor();
    const opened = bob.locator("#messages .message.hit");
    await opened.locator(".text", { hasText: "明日の会議は15時です" }).waitFor();
    await assertInView(bob, opened);
    await shot(bob, "8-search-hit-opened");
    // The newest messages were not loaded with the hit: they page in below it.
    assert.equal(await bob.locator("#messages .message .text", { hasText: /^filler 40$/ }).count(), 0);
    // Scrolling to the bottom would page them in too: the click is dispatched where the button
    // is, without scrolling, so that it is the button that does it.
    await bob.getByRole("button", { name: "Show newer messages" }).dispatchEvent("click");
    await bob.locator("#messages .message .text", { hasText: /^filler 40$/ }).waitFor();
    assert.equal(await bob.locator("#messages .gap").count(), 0);
    // Only in the room shown: tea has no such message, kitchen has.
    await listed(bob, "tea").click();
    await bob.locator("#room-title", { hasText: "tea" }).waitFor();
    await bob.getByLabel("only in tea").check();
    await bob.getByRole("button", { name: "Search", exact: true }).click();
    await bob.locator("#search-note", { hasText: "No messages found." }).waitFor();
    assert.equal(await bob.locator("#search-results .hit").count(), 0);
    await listed(bob, "kitchen").click();
    await bob.getByLabel("only in kitchen").check();
    await bob.getByRole("button", { name: "Search", exact: true }).click();
    await bob.locator('#search-results .hit[data-room="kitchen"]').waitFor();
    await bob.getByLabel("only in kitchen").uncheck();
  });

  await t.test("the directory lists public rooms, finds them by prefix, and joins one", async () => {
    await writeAs(bob, "carol", [{ room: "garden", text: "the roses are out" }]);
    await untilAnswer(bob, "bob", { op: "directory", q: "garden" }, (r) => r.rooms?.length === 1, "garden is listed");
    await bob.getByRole("button", { name: "Browse public rooms" }).click();
    const list = bob.locator("#directory-list");
    await list.locator('li[data-room="garden"]').waitFor();
    await list.locator('li[data-room="tea"]').waitFor();
    assert.equal(await list.locator('li[data-room="plans"]').count(), 0, "a private room is never listed");
    await bob.getByRole("searchbox", { name: "Room name starts with" }).fill("ga");
    await bob.waitForFunction(() =>
      [...document.querySelectorAll("#directory-list li")].every((li) => li.dataset.room.startsWith("ga")),
    );
    await list.locator('li[data-room="garden"]').waitFor();
    await shot(bob, "9-directory");
    await list.getByRole("button", { name: "Join garden" }).click();
    await bob.locator("#room-title", { hasText: "garden" }).waitFor();
    await bob.locator("#messages .message .text", { hasText: "the roses are out" }).waitFor();
    await listed(bob, "garden").waitFor();
  });

  await t.test("a long room list pages in as it is scrolled", async () => {
    const rooms = Array.from({ length: 60 }, (_, i) => ({ room: `r${String(i).padStart(2, "0")}`, text: "hi" }));
    await writeAs(bob, "dana", rooms);
    await untilAnswer(bob, "dana", { op: "rooms", limit: 200 }, (r) => r.rooms?.length === 60, "dana has 60 rooms");
    const dana = await signIn("dana");
    // The first page: the 50 most recently active (which 50 depends on the rooms' clocks, as
    // the rooms append in parallel), and a More button below them, out of view.
    await dana.locator("#rooms-more").waitFor({ state: "attached" });
    await dana.waitForFunction(() => !document.querySelector("#rooms-more").hidden);
    assert.equal(await dana.locator("#room-list button").count(), 50);
    await dana.locator("#rooms-more").scrollIntoViewIfNeeded();
    await dana.waitForFunction(() => document.querySelectorAll("#room-list button").length === 60);
    for (const { room } of rooms) assert.equal(await listed(dana, room).count(), 1, room);
    assert.equal(await dana.locator("#rooms-more").isVisible(), false);
  });
});

test("with the read side off, the client says so, offers a retry, and lists the rooms it knows", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kaiwa-web-off-"));
  let off;
  try {
    off = await startNode(dir, 0, { args: ["--projections", "off"] });
    const erin = await signInAt(suite.browser, `http://127.0.0.1:${off.port}/`, "erin");
    await erin.locator("#rooms-note", { hasText: "The room list is not available" }).getByRole("button", { name: "Retry" }).waitFor();
    await joinRoom(erin, "porch");
    await listed(erin, "porch").waitFor();
    await erin.getByRole("searchbox", { name: "Search messages" }).fill("会議");
    await erin.getByRole("button", { name: "Search", exact: true }).click();
    await erin.locator("#search-note", { hasText: "Search is not available" }).getByRole("button", { name: "Retry" }).waitFor();
    await erin.getByRole("button", { name: "Browse public rooms" }).click();
    await erin.locator("#directory-note", { hasText: "The room directory is not available" }).getByRole("button", { name: "Retry" }).waitFor();
    await shot(erin, "10-read-side-off");
    // A retry asks again (and is told the same): the note stays, the page keeps working.
    await erin.locator("#search-note").getByRole("button", { name: "Retry" }).click();
    await erin.locator("#search-note", { hasText: "Search is not available" }).waitFor();
    await erin.getByRole("button", { name: "Close" }).click();
    await erin.locator("#room-title", { hasText: "porch" }).waitFor();
    // The list is the rooms this browser joined: a reload keeps porch.
    await erin.reload();
    await listed(erin, "porch").waitFor();
  } finally {
    if (off) await stopNode(off);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The element is inside the visible part of the message list. */
async function assertInView(page, locator) {
  const box = await locator.boundingBox();
  const list = await page.locator("#messages").boundingBox();
  assert.ok(box && box.y >= list.y && box.y + box.height <= list.y + list.height, "the message is scrolled into view");
}
