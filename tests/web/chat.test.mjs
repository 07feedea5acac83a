// The web client in a real browser: Debian's chromium, headless, driven by playwright-core,
// against a real node. Two browser contexts are two users chatting; the node restarts in the
// middle. Screenshots go to $KAIWA_WEB_OUTPUT (default: ./output).

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  binary, createPrivateRoom, invite, joinRoom, nodeAndBrowser, say, shot, startNode, stopNode, texts,
  writeAs,
} from "./support.mjs";

const suite = nodeAndBrowser("kaiwa-web-");
const { signIn } = suite;

test("the node serves the client itself, with content types and revalidation", async () => {
  const res = await fetch(suite.url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/html/);
  assert.equal(res.headers.get("cache-control"), "no-cache");
  const js = await fetch(`${suite.url}app.js`);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  const again = await fetch(`${suite.url}app.js`, { headers: { "if-none-match": js.headers.get("etag") } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${suite.url}nope.js`)).status, 404);
});

test("two users chat: messages, Japanese, IME, typing, receipts, presence, edit, delete, rooms, history, a node restart", async (t) => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");
  await joinRoom(alice, "tea");
  await joinRoom(bob, "tea");

  await t.test("a message reaches the other user", async () => {
    await say(alice, "hello bob");
    await bob.locator(".message .text", { hasText: "hello bob" }).waitFor();
  });

  await t.test("Japanese text goes both ways", async () => {
    await say(bob, "こんにちは、アリスさん。お茶はいかが？");
    await alice.locator(".message .text", { hasText: "お茶はいかが" }).waitFor();
  });

  await t.test("Enter that confirms an IME composition does not send", async () => {
    const box = alice.getByRole("textbox", { name: "Message", exact: true });
    await box.fill("にほんご");
    await box.dispatchEvent("compositionstart");
    await box.press("Enter");
    assert.match(await box.inputValue(), /^にほんご/, "composing: Enter must not send");
    await box.dispatchEvent("compositionend");
    await box.press("Enter");
    await bob.locator(".message .text", { hasText: "にほんご" }).waitFor();
  });

  await t.test("typing, presence and read receipts", async () => {
    await bob.getByRole("textbox", { name: "Message", exact: true }).pressSequentially("one sec", { delay: 20 });
    await alice.locator("#typing", { hasText: "bob is typing" }).waitFor();
    await alice.locator("#online", { hasText: "online: alice, bob" }).waitFor();
    await alice.locator(".seen", { hasText: "seen by bob" }).waitFor();
    await bob.getByRole("textbox", { name: "Message", exact: true }).fill("");
    await shot(alice, "1-chat-alice");
  });

  await t.test("edit and delete your own messages", async () => {
    await say(alice, "typo mesage");
    const mine = alice.locator(".message.mine", { hasText: "typo mesage" });
    await mine.hover();
    await mine.getByRole("button", { name: /^edit/ }).click();
    const edit = alice.getByLabel("edit the message");
    await edit.fill("fixed message");
    await edit.press("Enter");
    await bob.locator(".message", { hasText: "fixed message" }).getByText("(edited)").waitFor();
    const fixed = alice.locator(".message.mine", { hasText: "fixed message" });
    await fixed.hover();
    await fixed.getByRole("button", { name: /^delete/ }).click();
    await bob.locator(".message .text.deleted").waitFor();
    assert.equal(await bob.locator(".message .text", { hasText: "fixed message" }).count(), 0);
    // bob's messages have no edit or delete buttons for alice
    assert.equal(await alice.locator(".message:not(.mine) .actions").count(), 0);
  });

  await t.test("a private room, an invite, and an unread count", async () => {
    await createPrivateRoom(alice, "plans", "secret plans");
    await invite(alice, "bob");
    await alice.locator(".message.notice", { hasText: "alice added bob" }).waitFor();
    await joinRoom(bob, "plans");
    await bob.locator("#room-topic", { hasText: "secret plans" }).waitFor();
    // bob goes back to tea; alice writes in plans: bob's list counts it.
    await bob.locator("#room-list button[data-room=tea]").click();
    await say(alice, "plan A");
    await bob.locator("#room-list button[data-room=plans] .badge", { hasText: "1" }).waitFor();
    await bob.locator("#room-list button[data-room=plans]").click();
    await bob.locator(".message .text", { hasText: "plan A" }).waitFor();
    assert.equal(await bob.locator("#room-list button[data-room=plans] .badge").count(), 0);
  });

  await t.test("scrolling up pages older history in", async () => {
    // 120 messages written straight over the protocol, then the room opened in bob's page.
    await writeAs(alice, "carol", Array.from({ length: 120 }, (_, i) => ({ room: "long", text: `old ${i + 1}` })));
    await joinRoom(bob, "long");
    await bob.locator(".message .text", { hasText: "old 120" }).waitFor();
    assert.equal(await bob.locator(".message .text", { hasText: /^old 1$/ }).count(), 0);
    for (let i = 0; i < 5 && !(await bob.locator(".message .text", { hasText: /^old 1$/ }).count()); i++) {
      const shown = await bob.locator("#messages .message").count();
      await bob.locator("#messages").evaluate((el) => (el.scrollTop = 0));
      await bob.waitForFunction((n) => document.querySelectorAll("#messages .message").length > n, shown);
    }
    const all = await texts(bob);
    const olds = all.filter((x) => x.startsWith("old "));
    assert.deepEqual(olds, Array.from({ length: 120 }, (_, i) => `old ${i + 1}`));
    await bob.locator("#room-list button[data-room=tea]").click();
    await bob.locator("#room-title", { hasText: "tea" }).waitFor();
  });

  await t.test("the node restarts: both reconnect, resume, and nothing is lost or doubled", async () => {
    await alice.locator("#room-list button[data-room=tea]").click();
    await alice.locator("#room-title", { hasText: "tea" }).waitFor();
    const before = await texts(bob);
    await stopNode(suite.node);
    await alice.locator("#status[data-state=connecting]").waitFor();
    await shot(alice, "2-reconnecting");
    // Written while the node is down: held, then sent once it is back.
    await say(alice, "sent while you were away");
    suite.node = await startNode(suite.dataDir, new URL(suite.url).port);
    await alice.locator("#status[data-state=online]").waitFor({ timeout: 30_000 });
    await bob.locator("#status[data-state=online]").waitFor({ timeout: 30_000 });
    await bob.locator(".message .text", { hasText: "sent while you were away" }).waitFor();
    await say(bob, "おかえりなさい");
    await alice.locator(".message .text", { hasText: "おかえりなさい" }).waitFor();
    await bob.locator(".message:not(.pending) .text", { hasText: "おかえりなさい" }).waitFor();
    const after = await texts(bob);
    assert.deepEqual(after, [...before, "sent while you were away", "おかえりなさい"]);
    assert.deepEqual(await texts(alice), after);
    await shot(bob, "3-after-restart-bob");
  });

  await t.test("at a phone's width the room list folds behind a button", async () => {
    const phone = await signIn("dave", { width: 375, height: 720 });
    await joinRoom(phone, "tea");
    await phone.locator(".message .text", { hasText: "おかえりなさい" }).waitFor();
    assert.equal(await phone.locator("#sidebar").isVisible(), false);
    await phone.getByRole("button", { name: "Rooms" }).click();
    assert.equal(await phone.locator("#sidebar").isVisible(), true);
    await shot(phone, "4-phone-rooms");
  });
});

test("a node with a secret takes tokens, and says why it refuses a bad one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kaiwa-web-secret-"));
  const secure = await startNode(dir, 0, { secret: "s3cret" });
  try {
    const token = execFileSync(binary, ["token", "--user", "erin"], {
      env: { ...process.env, KAIWA_SECRET: "s3cret" },
    }).toString().trim();
    const page = await (await suite.browser.newContext()).newPage();
    await page.goto(`http://127.0.0.1:${secure.port}/`);
    await page.locator("#signin-token").fill("v1.bad.token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#signin-error", { hasText: /token/i }).waitFor();
    await page.locator("#signin-token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#whoami", { hasText: "erin" }).waitFor();
  } finally {
    await stopNode(secure);
    rmSync(dir, { recursive: true, force: true });
  }
});
