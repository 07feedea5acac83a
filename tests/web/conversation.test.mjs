// Reading a conversation in the web client: groups of one author's messages, day separators, the
// newest messages by the composer, typing and "seen by", the owner's member controls, errors that
// stay with their room, a message the node refuses, emoji in colour, and a one-line header at a
// phone's width. Screenshots go to $KAIWA_WEB_OUTPUT (default: ./output).

import { test } from "node:test";
import assert from "node:assert/strict";
import { invite, joinRoom, nodeAndBrowser, requestAs, say, shot, signInPage, until, writeAs } from "./support.mjs";

const suite = nodeAndBrowser("kaiwa-web-conv-");
const DAY_MS = 86_400_000;

/** Each message item shown (notices left out): grouped or not, and its author and time if shown. */
const rows = (page) =>
  page.locator("#messages .message:not(.notice)").evaluateAll((items) =>
    items.map((li) => ({
      text: li.querySelector(".text").textContent,
      grouped: li.classList.contains("grouped"),
      from: li.querySelector(".from")?.textContent ?? null,
      time: !!li.querySelector("time"),
    })),
  );

/** Waits until none of this page's messages is pending. */
const confirmed = (page) => page.waitForFunction(() => !document.querySelector("#messages .pending"));

test("reading a conversation", async (t) => {
  const alice = await suite.signIn("alice");
  const bob = await suite.signIn("bob");
  await joinRoom(alice, "porch"); // alice's join creates it: she is its owner
  await joinRoom(bob, "porch");

  await t.test("a short conversation sits at the bottom, next to the composer", async () => {
    await say(alice, "morning");
    await bob.locator(".message .text", { hasText: "morning" }).waitFor();
    for (const page of [alice, bob]) {
      // The list's last item (the newest message, or "seen by" under it) ends at its padding.
      const gap = await page.evaluate(() => {
        const list = document.getElementById("messages");
        return list.getBoundingClientRect().bottom - list.lastElementChild.getBoundingClientRect().bottom;
      });
      assert.ok(gap < 20, `${gap}px between the newest message and the composer`);
    }
  });

  await t.test("one author's consecutive messages are one group: the name and time once", async () => {
    await say(alice, "the tea is ready");
    await say(alice, "🍵 green, or 🫖 black?");
    await bob.locator(".message .text", { hasText: "black?" }).waitFor();
    await say(bob, "green please 😀");
    await alice.locator(".message .text", { hasText: "green please" }).waitFor();
    await confirmed(alice);
    await confirmed(bob);
    const head = { grouped: false, time: true };
    const next = { grouped: true, from: null, time: false };
    for (const page of [alice, bob])
      assert.deepEqual(await rows(page), [
        { text: "morning", ...head, from: "alice" },
        { text: "the tea is ready", ...next },
        { text: "🍵 green, or 🫖 black?", ...next },
        { text: "green please 😀", ...head, from: "bob" },
      ]);
    assert.deepEqual(await bob.locator("#messages .day").allTextContents(), ["Today"]);
  });

  await t.test("emoji render in colour", async () => {
    // The message's own font stack draws the emoji on a canvas in black: only a colour emoji
    // font puts colour there (a missing glyph or a monochrome font stays grey).
    const coloured = await bob.evaluate(() => {
      const text = [...document.querySelectorAll("#messages .text")].find((el) => el.textContent.includes("🍵"));
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 64;
      const ctx = canvas.getContext("2d");
      ctx.font = `48px ${getComputedStyle(text).fontFamily}`;
      ctx.textBaseline = "top";
      ctx.fillStyle = "#000";
      ctx.fillText("🍵", 4, 4);
      const px = ctx.getImageData(0, 0, 64, 64).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4)
        if (px[i + 3] > 128 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) n++;
      return n;
    });
    assert.ok(coloured > 100, `${coloured} coloured pixels in a 48 px emoji`);
    await shot(bob, "13-grouped-emoji");
  });

  await t.test("typing stops showing once that user's message arrives", async () => {
    const box = bob.getByRole("textbox", { name: "Message", exact: true });
    await box.pressSequentially("brb", { delay: 20 });
    await alice.locator("#typing", { hasText: "bob is typing" }).waitFor();
    await box.press("Enter");
    await alice.locator(".message .text", { hasText: /^brb$/ }).waitFor();
    // The same event cleared it: no waiting for the indicator's 4 s expiry.
    assert.equal(await alice.locator("#typing").textContent(), "");
  });

  await t.test('"seen by" under a message never names its author', async () => {
    const seq = Number(await alice.locator("#messages .message[data-seq]").last().getAttribute("data-seq"));
    // bob read his own message (his receipt reached alice before the read marker reached the
    // read side); then carol reads it too.
    await until("bob's read marker", async () => {
      const { rooms } = await requestAs(alice, "bob", { op: "rooms" });
      return rooms.find((r) => r.room === "porch")?.read >= seq;
    });
    await requestAs(alice, "carol", { op: "read", room: "porch", seq });
    await alice.locator(".seen", { hasText: "carol" }).waitFor();
    assert.equal(await alice.locator(".seen").textContent(), "seen by carol");
    // The author sees who read it.
    await bob.locator(".seen", { hasText: "seen by alice, carol" }).waitFor();
  });

  await t.test("only the owner has the member controls, and they work", async () => {
    await alice.locator("#owner").waitFor();
    assert.equal(await bob.locator("#owner").isVisible(), false);
    await invite(alice, "dave");
    await bob.locator(".message.notice", { hasText: "alice added dave" }).waitFor();
    await alice.getByRole("textbox", { name: "A user to invite or remove" }).fill("dave");
    await alice.getByRole("button", { name: "Remove", exact: true }).click();
    await bob.locator(".message.notice", { hasText: "alice removed dave" }).waitFor();
    await alice.getByRole("textbox", { name: "A new topic" }).fill("tea at five 🍵");
    await alice.getByRole("button", { name: "Set topic" }).click();
    await bob.locator("#room-topic", { hasText: "tea at five 🍵" }).waitFor();
    await bob.locator(".message.notice", { hasText: "alice set the topic: tea at five" }).waitFor();
    await alice.locator("#room-topic", { hasText: "tea at five 🍵" }).waitFor();
    await shot(alice, "14-owner-controls");
    // A room whose `created` is beyond the newest page: its owner is still known.
    await writeAs(bob, "bob", Array.from({ length: 60 }, (_, i) => ({ room: "bobs-den", text: `note ${i + 1}` })));
    await joinRoom(bob, "bobs-den");
    await bob.locator(".message .text", { hasText: "note 60" }).waitFor();
    await bob.locator("#owner").waitFor();
    await joinRoom(alice, "bobs-den");
    await alice.locator(".message .text", { hasText: "note 60" }).waitFor();
    assert.equal(await alice.locator("#owner").isVisible(), false);
    await shot(alice, "15-not-owner");
  });

  await t.test("a failed invitation's error stays with its room", async () => {
    await alice.locator("#room-list button[data-room=porch]").click();
    await alice.locator("#room-title", { hasText: "porch" }).waitFor();
    await invite(alice, "bob"); // not a member of a public room yet: this one works
    await alice.locator(".message.notice", { hasText: "alice added bob" }).waitFor();
    await invite(alice, "bob"); // now he is: bad_request
    await alice.locator("#room-error", { hasText: "already a member" }).waitFor();
    await alice.locator("#room-list button[data-room=bobs-den]").click();
    await alice.locator("#room-title", { hasText: "bobs-den" }).waitFor();
    assert.equal(await alice.locator("#room-error").textContent(), "");
  });

  await t.test("a message the node refuses stays, marked, with Retry and Discard", async () => {
    await say(alice, "x".repeat(16_385)); // over 16 KiB of text
    const failed = alice.locator(".message.failed");
    await failed.locator(".send-state", { hasText: "not sent" }).waitFor();
    await failed.getByRole("button", { name: "Retry" }).waitFor();
    await shot(alice, "16-send-failed");
    await failed.getByRole("button", { name: "Discard" }).click();
    assert.equal(await alice.locator(".message.failed").count(), 0);
  });

  await t.test("days are separated; a group never spans two days", async () => {
    await writeAs(alice, "erin", ["old a", "old b", "new c"].map((text) => ({ room: "days", text })));
    // erin's browser sees the room's first three events (created, old a, old b) a day older.
    const context = await suite.browser.newContext({ viewport: { width: 1100, height: 760 } });
    await context.routeWebSocket(/\/ws$/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((frame) => {
        const msg = JSON.parse(frame);
        if (msg.op === "history" && msg.room === "days") for (const e of msg.events) if (e.seq <= 3) e.ts -= DAY_MS;
        ws.send(JSON.stringify(msg));
      });
    });
    const erin = await signInPage(await context.newPage(), suite.url, "erin");
    await joinRoom(erin, "days");
    await erin.locator(".message .text", { hasText: "new c" }).waitFor();
    assert.deepEqual(await erin.locator("#messages .day").allTextContents(), ["Yesterday", "Today"]);
    assert.deepEqual(
      (await rows(erin)).map((r) => [r.text, r.grouped]),
      [
        ["old a", false],
        ["old b", true],
        ["new c", false],
      ],
    );
    await shot(erin, "17-days");
  });

  await t.test("at a phone's width the header is one line", async () => {
    const context = await suite.browser.newContext({ viewport: { width: 375, height: 720 } });
    const phone = await signInPage(await context.newPage(), suite.url, "a-rather-long-name-on-a-phone");
    await joinRoom(phone, "porch");
    const header = await phone.evaluate(() => {
      const top = document.querySelector("header.top");
      const shown = [...top.children].filter((el) => el.getClientRects().length);
      const centres = shown.map((el) => {
        const r = el.getBoundingClientRect();
        return (r.top + r.bottom) / 2;
      });
      return {
        height: top.getBoundingClientRect().height,
        tallest: Math.max(...shown.map((el) => el.getBoundingClientRect().height)),
        spread: Math.max(...centres) - Math.min(...centres),
        overflow: top.scrollWidth - top.clientWidth,
      };
    });
    assert.ok(header.tallest < 40, `an item of the header is ${header.tallest}px tall: its text wrapped`);
    assert.ok(header.spread < 3, `the header's items are not on one line (${header.spread}px apart)`);
    assert.ok(header.overflow <= 0, `the header overflows by ${header.overflow}px`);
    assert.ok(header.height < 60, `the header is ${header.height}px tall`);
    await shot(phone, "18-phone-header");
  });
});
