// What a user sees when an operator archives, unarchives and deletes a room (the admin API,
// docs/operations.md "Rooms and users"): a read-only room, a room gone from the list and never
// joined again by the client, and a room deleted and made again while the user was away.

import assert from "node:assert/strict";
import { test } from "node:test";
import { joinRoom, nodeAndBrowser, say, shot, signInPage, texts, until, writeAs } from "./support.mjs";

const suite = nodeAndBrowser("kaiwa-web-operator-");

/** An admin request as the CLI sends it (apps/admin_client.cpp); resolves with its JSON. */
async function admin(method, path) {
  const res = await fetch(`http://127.0.0.1:${suite.node.adminPort}/admin/v1/${path}`, {
    method,
    headers: { "Kaiwa-Admin": "1" },
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/**
 * A signed-in page whose WebSockets go through a route that records every frame each way
 * (`sent`, `received`), holds back the sends `hold` picks (`held`: functions that let one go),
 * and connects a new socket to the node only once `gate` resolves; `sockets` are the page's
 * sockets, newest last (closing one makes the client reconnect).
 */
async function recordedPage(name) {
  const rec = { sent: [], received: [], held: [], sockets: [], hold: () => false, gate: Promise.resolve() };
  const context = await suite.browser.newContext({ viewport: { width: 1100, height: 760 } });
  await context.routeWebSocket(/\/ws$/, async (ws) => {
    rec.sockets.push(ws);
    let server = null;
    const early = [];
    ws.onMessage((frame) => {
      const msg = JSON.parse(frame);
      rec.sent.push(msg);
      if (rec.hold(msg)) return rec.held.push(() => server.send(frame));
      if (server) server.send(frame);
      else early.push(frame);
    });
    await rec.gate;
    server = ws.connectToServer();
    server.onMessage((frame) => {
      rec.received.push(JSON.parse(frame));
      ws.send(frame);
    });
    for (const frame of early) server.send(frame);
  });
  rec.page = await signInPage(await context.newPage(), suite.url, name);
  return rec;
}

/** A page of its own for the other users' writes: the recorded page's route sees only its user. */
async function writer() {
  const page = await suite.browser.newPage();
  await page.goto(suite.url);
  return page;
}

const roomNames = (page) => page.locator("#room-list .room-name").allTextContents();
const about = (frames, room) => frames.filter((m) => m.room === room);

test("an operator archives, unarchives and deletes a room", async (t) => {
  const alice = await recordedPage("alice");
  const page = alice.page;
  await joinRoom(page, "square");
  await joinRoom(page, "town");
  await say(page, "before the archive");
  await writeAs(await writer(), "bob", [{ room: "town", text: "hello from bob" }]);
  await until("both messages", async () => (await texts(page)).includes("hello from bob"));
  // alice's next send stays on its way until the test lets it go.
  alice.hold = (m) => m.op === "send" && m.text.startsWith("held");

  await t.test("archived: a banner, the composer and edit/delete disabled; a pending send fails", async () => {
    await say(page, "held while archiving");
    await page.locator(".message.pending", { hasText: "held while archiving" }).waitFor();
    const archived = await admin("POST", "rooms/town/archive");
    assert.equal(archived.status, 200);
    assert.equal(archived.body.archived, true);
    await page.locator("#room-archived").waitFor();
    assert.equal(await page.locator("#room-archived").textContent(), "This room is archived: it is read-only.");
    assert.equal(await page.getByRole("textbox", { name: "Message", exact: true }).isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true);
    const edit = page.locator('button[aria-label^="edit message"]');
    assert.equal(await edit.isDisabled(), true);
    assert.equal(await page.locator('button[aria-label^="delete message"]').isDisabled(), true);
    assert.deepEqual(await page.locator("#room-list .tag.archived").allTextContents(), ["archived"]);
    // The send written before the archive reaches the node now: `archived`, failed, not retried.
    alice.held.shift()();
    const failed = page.locator(".message.failed", { hasText: "held while archiving" });
    await failed.waitFor();
    assert.match(await failed.textContent(), /not sent: the room is archived/);
    assert.equal(await failed.getByRole("button", { name: "Retry" }).isDisabled(), true);
    await page.locator(".message.mine:not(.pending)", { hasText: "before the archive" }).hover();
    await shot(page, "19-room-archived");
  });

  await t.test("unarchived: writable again", async () => {
    const unarchived = await admin("POST", "rooms/town/unarchive");
    assert.equal(unarchived.body.archived, false);
    await page.locator("#room-archived").waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("textbox", { name: "Message", exact: true }).isEnabled(), true);
    assert.equal(await page.locator('button[aria-label^="edit message"]').isEnabled(), true);
    await say(page, "after the archive");
    await until("the message confirmed", async () => (await texts(page)).includes("after the archive"));
  });

  await t.test("deleted: the room leaves the list, its view closes, it is never joined again", async () => {
    await say(page, "held at the deletion");
    await page.locator(".message.pending", { hasText: "held at the deletion" }).waitFor();
    const from = alice.sent.length;
    const deleted = await admin("DELETE", "rooms/town");
    assert.equal(deleted.status, 200);
    const error = page.locator("#room-error");
    await error.filter({ hasText: "was deleted" }).waitFor();
    // Named: the one on its way, and the one that failed earlier (its Retry and Discard go with
    // the view).
    assert.equal(
      await error.textContent(),
      "room town was deleted by an operator; not sent: “held while archiving”, “held at the deletion”",
    );
    assert.deepEqual(await roomNames(page), ["square"]);
    assert.equal(await page.locator("#room-title").textContent(), "Pick or join a room");
    assert.equal(await page.locator("#composer").isHidden(), true);
    assert.equal(await page.locator("#messages li").count(), 0);
    await shot(page, "20-room-deleted");
    assert.deepEqual(
      about(alice.received, "town").slice(-2).map((m) => [m.op, m.reason]),
      [
        ["deleted", undefined],
        ["left", "deleted"],
      ],
    );

    // A reconnect resumes every joined room and sends the outbox: town is in neither.
    const sockets = alice.sockets.length;
    alice.sockets.at(-1).close({ code: 4010, reason: "test reconnect" });
    await until("a new connection", () => alice.sockets.length > sockets);
    await page.locator("#status[data-state=online]").waitFor();
    await page.getByRole("button", { name: /^square/ }).click();
    await page.locator("#room-title", { hasText: "square" }).waitFor();
    await say(page, "in square after the deletion");
    await until("the message confirmed", async () => (await texts(page)).includes("in square after the deletion"));
    // Frames leave in order: whatever the client sent before this message is recorded by now.
    assert.ok(about(alice.sent.slice(from), "square").some((m) => m.op === "join" && m.since !== undefined));
    assert.deepEqual(about(alice.sent.slice(from), "town"), []);
    assert.deepEqual(await roomNames(page), ["square"]);
    assert.equal((await admin("GET", "rooms/town")).status, 404, "nothing made the room again");
    // The send that failed on the archive was never sent again.
    assert.equal(alice.sent.filter((m) => m.op === "send" && m.text === "held while archiving").length, 1);
  });
});

test("a room deleted and made again while the user was away starts over", async () => {
  const carol = await recordedPage("carol");
  const page = carol.page;
  await joinRoom(page, "plaza");
  const others = await writer();
  await writeAs(others, "bob", ["old one", "old two", "old three"].map((text) => ({ room: "plaza", text })));
  await until("the old messages", async () => (await texts(page)).includes("old three"));
  // carol's connection drops, and her next one waits while plaza is deleted and made again.
  let open;
  carol.gate = new Promise((resolve) => (open = resolve));
  const sockets = carol.sockets.length;
  carol.sockets.at(-1).close({ code: 4010, reason: "test reconnect" });
  await until("a new connection", () => carol.sockets.length > sockets);
  assert.equal((await admin("DELETE", "rooms/plaza")).status, 200);
  await writeAs(others, "dave", [{ room: "plaza", text: "a fresh start" }]);
  open();
  await until("the new room", async () => (await texts(page)).includes("a fresh start"));
  const join = carol.sent.findLast((m) => m.op === "join" && m.room === "plaza");
  assert.ok(join.since >= 4, "resumed with the old room's seq");
  assert.deepEqual(await texts(page), ["a fresh start"]);
  assert.deepEqual(await roomNames(page), ["plaza"]);
});
