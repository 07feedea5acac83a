// The browser client's UI. The protocol (requests, reconnects, resume) is in kaiwa.js; this file
// keeps what the user sees: the room list (the read side's `rooms`, paged, with unread counts,
// previews and invitations), a room's messages, typing, receipts, presence, search with
// highlighted hits, the public room directory, and rooms an operator archived or deleted.
//
// User text only ever reaches the page as text nodes (textContent), never as HTML.

import { KaiwaClient } from "/kaiwa.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50; // history events per page
const ROOM_PAGE = 50; // rooms per page of the room list
const DIRECTORY_PAGE = 30;
const SEARCH_PAGE = 20;
const ROOMS_RETRY_MS = 5000; // the room list asks again this long after `unavailable`,
const ROOMS_RETRIES = 12; // this many times in a row
const AROUND = 25; // events loaded on each side of a search hit
const FLASH_MS = 5000; // how long a message opened from a search hit stays marked
const EXCERPT = 120; // UTF-16 code units of a long hit's text shown around its first match
const GROUP_MS = 5 * 60_000; // a message this soon after its author's previous one joins its group

const ui = {
  client: null,
  me: null,
  current: null, // the room shown
  rooms: new Map(), // name -> room view state (see roomState)
  typingSentAt: 0,
  editing: false, // an edit box is open: redraws wait for it
  presenceTimer: null,
  roomsRender: 0, // a pending animation frame that redraws the room list
  // The paged lists. `gen` tells a reply to a superseded request (a new query, a sign-out) from
  // the current one; `next` is the server's opaque cursor for the following page.
  roomPages: { next: null, more: false, loading: false, gen: 0, retries: 0, retryTimer: null },
  directory: { next: null, more: false, loading: false, gen: 0 },
  search: { q: "", room: null, next: null, more: false, loading: false, gen: 0 },
};

function roomState(name) {
  if (!ui.rooms.has(name))
    ui.rooms.set(name, {
      name,
      messages: new Map(), // seq -> {seq, ts, from, text, deleted, edited} or a notice
      pending: new Map(), // cid -> {text, ts, failed}: written, not yet acked or echoed
      owner: null, // the creator (the `created` event's author); null: not known yet
      link: null, // {state, retryInMs, attempt, message}: not live (see onRoomLink); null: live
      error: "", // the last error about this room, shown while it is the room shown
      oldest: null, // lowest seq loaded
      more: true, // older history left
      head: 0, // highest seq known
      read: 0, // this user's read marker
      unread: 0,
      capped: false, // the server stopped counting: `unread` is a lower bound
      counted: 0, // `unread` covers the messages up to this seq (the server's count, then ours)
      topic: "",
      private: false,
      archived: false, // read-only (an operator archived it): nothing that writes is enabled
      last: null, // the newest message event, for the list's preview
      ts: 0, // last activity (ms): the list is sorted by it, newest first
      invitedBy: null, // set by an `invited` push until the room is opened
      loaded: false, // history was loaded: events are kept in `messages` from then on
      subscribing: null, // the join on its way
      gap: null, // {after, before}: events between were not loaded (a room opened at a hit)
      flash: null, // {seq, until}: the message opened from a search hit, marked for a moment
      receipts: new Map(), // user -> seq
      typing: new Map(), // user -> expiry ms
    });
  return ui.rooms.get(name);
}

// -- storage: the rooms this user joined in this browser ----------------------------------------

// Only a fallback: while `rooms` answers unavailable (its projection is rebuilding), the list is
// the rooms this browser knew.
const storageKey = () => `kaiwa.rooms.${ui.me}`;
const savedRooms = () => JSON.parse(localStorage.getItem(storageKey()) || "[]");
function saveRooms() {
  localStorage.setItem(storageKey(), JSON.stringify([...ui.rooms.keys()]));
  if (ui.current) localStorage.setItem(`${storageKey()}.current`, ui.current);
}

// -- sign in / out -----------------------------------------------------------------------------

function signIn(user, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new KaiwaClient({ url: `${scheme}://${location.host}/ws`, user, token });
  ui.client = client;
  client.addEventListener("state", (e) => showState(e.detail));
  client.addEventListener("welcome", (e) => onWelcome(e.detail));
  client.addEventListener("signedout", (e) => signOut(e.detail.reason));
  client.addEventListener("event", (e) => onEvent(e.detail));
  client.addEventListener("typing", (e) => onTyping(e.detail));
  client.addEventListener("receipt", (e) => onReceipt(e.detail));
  client.addEventListener("left", (e) => onLeft(e.detail));
  client.addEventListener("presence", (e) => showOnline(e.detail));
  client.addEventListener("invited", (e) => onInvited(e.detail));
  client.addEventListener("room", (e) => onRoomLink(e.detail));
  client.addEventListener("resume-failed", (e) => {
    onRoomLink({ room: e.detail.room, state: "live" });
    notice(e.detail.room, `could not resume: ${e.detail.message}`);
  });
  client.addEventListener("gap", (e) => fillGap(e.detail));
  client.addEventListener("deleted", (e) => onDeleted(e.detail));
  client.addEventListener("reset", (e) => onReset(e.detail));
  client.addEventListener("archived", (e) => onArchived(e.detail));
  client.connect();
  sessionStorage.setItem("kaiwa.signin", JSON.stringify({ user, token }));
}

function signOut(reason = "") {
  ui.client?.close();
  ui.client = null;
  ui.rooms.clear();
  ui.current = null;
  for (const list of [ui.roomPages, ui.directory, ui.search])
    Object.assign(list, { next: null, more: false, loading: false, gen: list.gen + 1 });
  clearTimeout(ui.roomPages.retryTimer);
  sessionStorage.removeItem("kaiwa.signin");
  $("chat-view").hidden = true;
  $("signin-view").hidden = false;
  $("signout").hidden = true;
  $("menu").hidden = true;
  $("whoami").textContent = "";
  $("signin-error").textContent = reason;
  $("room-list").replaceChildren();
  $("search-results").replaceChildren();
  showNote($("search-note"), "");
  $("search-here").closest("label").hidden = true;
  closeDirectory();
}

async function onWelcome({ user, node }) {
  const first = ui.me !== user;
  ui.me = user;
  $("whoami").textContent = `${user} @ ${node}`;
  $("signin-view").hidden = true;
  $("chat-view").hidden = false;
  $("signout").hidden = false;
  $("menu").hidden = false;
  if (!first) {
    // A reconnect: the client resumed every room itself (their events count as unread); the
    // first page again brings what a resume can't: invitations sent while we were away.
    loadRooms(false);
    return refreshCurrent();
  }
  $("chat-view").classList.add("show-rooms"); // on a phone: the room list until one is picked
  if (!(await loadRooms(false))) for (const name of savedRooms()) roomState(name);
  for (const st of ui.rooms.values()) subscribe(st).catch(() => {});
  const last = localStorage.getItem(`${storageKey()}.current`);
  if (last && ui.rooms.has(last)) await openRoom(last, true);
  renderRooms();
}

function showState({ state, retryInMs }) {
  // Every joined room waits for the connection; once it is back, each resumes (onRoomLink).
  if (state !== "online" && ui.client) {
    for (const st of ui.rooms.values()) if (ui.client.joined.has(st.name)) st.link = { state: "offline" };
    renderLink();
    scheduleRenderRooms();
  }
  const el = $("status");
  el.dataset.state = state;
  el.textContent =
    state === "online"
      ? `connected to ${ui.client?.node ?? ""}`
      : state === "connecting" && retryInMs
        ? `reconnecting in ${(retryInMs / 1000).toFixed(1)} s…`
        : state === "connecting"
          ? "connecting…"
          : "offline";
}

/**
 * A note under a list: `text`, and a Retry button when `retry` is given; "" hides it. For
 * `unavailable` (a projection rebuilding, a node out of reach) the server's message says why.
 */
function showNote(el, text, retry = null) {
  const nodes = [document.createTextNode(text)];
  if (retry) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "retry";
    b.textContent = "Retry";
    b.onclick = retry;
    nodes.push(" ", b);
  }
  el.replaceChildren(...nodes);
  el.hidden = !text;
}

function unavailableText(what, err) {
  if (err.code === "unavailable") return `${what} is not available right now: ${err.message.replace(/\.$/, "")}.`;
  if (err.code === "disconnected") return `${what}: not connected.`;
  return `${what}: ${err.message}`;
}

// -- the room list ---------------------------------------------------------------------------------

/**
 * Loads a page of the read side's room list: the first (`more` false; again after a reconnect)
 * or the one after the last loaded. Rooms already shown keep what this client knows newer than
 * the page (see mergeRoom). Resolves false when the list is not available.
 */
async function loadRooms(more) {
  const pages = ui.roomPages;
  if (more && (!pages.more || pages.loading)) return true;
  const gen = pages.gen;
  pages.loading = true;
  const fields = { limit: ROOM_PAGE };
  if (more) fields.before = pages.next;
  try {
    const reply = await ui.client.request("rooms", fields);
    if (gen !== pages.gen) return true;
    pages.retries = 0;
    // A page read before a deletion reached the read side may still list the room: subscribing
    // to it would make a new one.
    const rooms = reply.rooms.filter((r) => !ui.client.deleted.has(r.room));
    const added = rooms.filter((r) => !ui.rooms.has(r.room));
    for (const r of rooms) mergeRoom(r);
    // The room shown is being read: the count the page brought for it goes at once.
    if (ui.current && document.visibilityState === "visible") markRead(roomState(ui.current));
    // A refresh of the first page leaves the paging where the reader got to.
    if (more || !pages.next) {
      pages.next = reply.next ?? null;
      pages.more = !!reply.more && !!reply.next;
    }
    // A partial page's note stays until the first page is loaded again.
    if (reply.partial)
      showNote($("rooms-note"), "Some servers did not answer: the list may be missing rooms.", () => loadRooms(false));
    else if (!more) showNote($("rooms-note"), "");
    for (const r of added) subscribe(roomState(r.room)).catch(() => {});
    return true;
  } catch (err) {
    if (gen !== pages.gen) return true;
    showNote($("rooms-note"), `${unavailableText("The room list", err)} Showing the rooms this browser knows.`, () =>
      retryRooms(),
    );
    // A projection catching up after a restart answers `unavailable` for a moment: the list asks
    // again by itself every 5 s for a minute (a rebuild that takes longer has the Retry button).
    if (err.code === "unavailable" && pages.retries < ROOMS_RETRIES) {
      pages.retries += 1;
      clearTimeout(pages.retryTimer);
      pages.retryTimer = setTimeout(retryRooms, ROOMS_RETRY_MS);
    }
    return false;
  } finally {
    if (gen === pages.gen) pages.loading = false;
    scheduleRenderRooms();
  }
}

async function retryRooms() {
  if (await loadRooms(false)) for (const st of ui.rooms.values()) subscribe(st).catch(() => {});
}

/** One item of a `rooms` page into the room's state; what came live since wins. */
function mergeRoom(r) {
  const st = roomState(r.room);
  st.read = Math.max(st.read, r.read ?? 0);
  // The server's count covers up to its head; ours is newer when live events got past it.
  if ((r.head ?? 0) >= st.counted) {
    st.unread = r.unread ?? 0;
    st.capped = !!r.unread_capped;
    st.counted = r.head ?? 0;
  }
  st.head = Math.max(st.head, r.head ?? 0);
  if (r.topic !== undefined) st.topic = r.topic ?? "";
  st.private = !!r.private;
  if (r.last && (!st.last || r.last.seq >= st.last.seq)) st.last = r.last;
  st.ts = Math.max(st.ts, r.ts ?? 0);
}

/**
 * Subscribes to the room's live events (no history: that is loaded when the room is opened), so
 * its unread count and preview stay current. A room this user may not join leaves the list.
 */
function subscribe(st) {
  // Subscribed already (a room whose first join is being retried, null, is not).
  if (ui.client.joined.get(st.name) != null) return Promise.resolve();
  // One join per room at a time: the list and an open of the room may both ask.
  st.subscribing ??= ui.client
    .join(st.name)
    .then((reply) => {
      st.head = Math.max(st.head, reply.head);
    })
    .catch((e) => {
      if (["forbidden", "not_found"].includes(e.code)) {
        ui.rooms.delete(st.name);
        saveRooms();
        scheduleRenderRooms();
      }
      throw e;
    })
    .finally(() => {
      st.subscribing = null;
    });
  return st.subscribing;
}

/**
 * An invitation: the room goes to the top of the list at once, marked, and is subscribed. The
 * push is sent once the room list has the room, so the first page, loaded again, brings what the
 * push doesn't say (private, the last message, the unread count).
 */
function onInvited({ room, by, topic, seq }) {
  const st = roomState(room);
  st.invitedBy = by ?? "someone";
  if (typeof topic === "string") st.topic = topic;
  st.head = Math.max(st.head, seq ?? 0);
  st.ts = Math.max(st.ts, Date.now());
  $("announce-rooms").textContent = `${st.invitedBy} invited you to ${room}`;
  saveRooms();
  renderRooms();
  subscribe(st).catch(() => {});
  loadRooms(false);
}

/**
 * Joins `name` and loads its recent history (or the history around `at`, a search hit's seq) and,
 * when `show`, makes it the current room.
 */
async function openRoom(name, show, at = null) {
  const st = roomState(name);
  try {
    await subscribe(st);
    if (at !== null) {
      if (!st.messages.has(at)) await loadAround(st, at);
    } else if (!st.loaded || st.gap) {
      // The newest page (a room left at a search hit comes back to its newest messages). Live
      // events go to `messages` from now on; the page fetched is the one before them.
      forget(st);
      st.loaded = true;
      await loadOlder(st);
    }
    await loadOwner(st);
  } catch (e) {
    forget(st); // half loaded: the next open starts over
    // A room this user may not join leaves the list (subscribe drops forbidden and not_found; a
    // bad name is bad_request); one that is only out of reach now (the connection dropped, its
    // node is moving it) stays, and the reconnect resumes it.
    if (e.code === "bad_request" && !ui.client.joined.has(name)) {
      ui.rooms.delete(name);
      renderRooms();
    }
    if (show) notice(ui.current, `${name}: ${e.message}`);
    return;
  }
  saveRooms();
  if (show) {
    // Errors and a half-typed invitation belong to the room they were about.
    if (ui.current !== name) {
      if (ui.current) roomState(ui.current).error = "";
      $("member-user").value = "";
      $("topic-text").value = "";
    }
    ui.current = name;
    st.invitedBy = null;
    if (at !== null) flash(st, at);
    saveRooms();
    closeDirectory();
    $("chat-view").classList.remove("show-rooms");
    $("menu").setAttribute("aria-expanded", "false");
    refreshCurrent();
  }
  renderRooms();
}

async function refreshCurrent() {
  if (!ui.current) return;
  const st = roomState(ui.current);
  $("room-title").textContent = st.name;
  $("search-here-room").textContent = st.name;
  $("search-here").closest("label").hidden = false;
  $("composer").hidden = false;
  renderHeader(st);
  renderArchived();
  $("room-error").textContent = st.error ?? "";
  renderLink();
  renderMessages(!st.flash);
  if (st.flash) $("messages").querySelector(`[data-seq="${st.flash.seq}"]`)?.scrollIntoView({ block: "center" });
  markRead(st);
  pollPresence();
}

/**
 * The room shown is gone (an operator deleted it): the view goes back to "pick a room" and says
 * `text` until a room is opened.
 */
function closeRoom(text) {
  ui.current = null;
  localStorage.removeItem(`${storageKey()}.current`);
  $("room-title").textContent = "Pick or join a room";
  $("room-topic").textContent = "";
  $("online").textContent = "";
  $("typing").textContent = "";
  $("owner").hidden = true;
  $("composer").hidden = true;
  $("search-here").closest("label").hidden = true;
  $("messages").replaceChildren();
  renderLink();
  renderArchived();
  $("room-error").textContent = text;
}

/** An archived room shown: the banner, and the composer and the owner's forms disabled. */
function renderArchived() {
  const archived = !!ui.current && roomState(ui.current).archived;
  $("room-archived").hidden = !archived;
  for (const form of [$("composer"), $("members"), $("topic-form")])
    for (const el of form.elements) el.disabled = archived;
}

/** The topic, and the owner's controls: only the owner sees them (the room refuses anyone else). */
function renderHeader(st) {
  $("room-topic").textContent = st.topic;
  $("owner").hidden = st.owner !== ui.me;
}

/**
 * Learns who owns the room: the author of its first event, `created`, which the newest page
 * rarely holds. A room just created by our join may not have it stored yet: then its push says.
 */
async function loadOwner(st) {
  if (st.owner !== null) return;
  try {
    const reply = await ui.client.request("history", { room: st.name, after: 0, limit: 1 });
    const first = reply.events[0];
    if (first?.type === "created") st.owner ??= first.from;
  } catch {
    // Unknown for now (a reconnect, the room moving): asked again when the room is next opened.
  }
}

/**
 * A joined room's link changed (kaiwa.js: resuming, retrying after `unavailable`, live again);
 * "offline" comes from the connection's state. The room shown says so under its header.
 */
function onRoomLink({ room, state, retryInMs, attempt, message }) {
  const st = ui.rooms.get(room);
  if (!st) return;
  // A room back after `unavailable`: its node is back, and so may be the list's missing part.
  if (state === "live" && st.link?.attempt && !$("rooms-note").hidden && !ui.roomPages.loading) loadRooms(false);
  st.link = state === "live" ? null : { state, retryInMs, attempt, message };
  if (room === ui.current) {
    renderLink();
    // Pending messages say whether they wait for the room.
    if (st.pending.size) renderMessages(false);
  }
  scheduleRenderRooms();
}

function renderLink() {
  const el = $("room-link");
  const st = ui.current ? roomState(ui.current) : null;
  const link = st?.link;
  if (!link) {
    el.hidden = true;
    el.dataset.state = "live";
    el.replaceChildren();
    return;
  }
  el.hidden = false;
  el.dataset.state = link.state;
  el.dataset.attempt = link.attempt ?? 0;
  if (link.state === "offline")
    return el.replaceChildren("Not connected: this room resumes when the connection is back.");
  if (link.state === "resuming") return el.replaceChildren("Reconnecting to this room…");
  const now = document.createElement("button");
  now.type = "button";
  now.className = "retry";
  now.textContent = "Retry now";
  now.onclick = () => ui.client.retryNow(st.name);
  const why = (link.message ?? "").replace(/[.:]?\s*retry$/, "");
  el.replaceChildren(
    `Reconnecting to this room: ${why || "not available"}. Next try in ${(link.retryInMs / 1000).toFixed(1)} s.`,
    " ",
    now,
  );
}

/** Marks the message `seq` for a moment (it was opened from a search hit). */
function flash(st, seq) {
  const until = Date.now() + FLASH_MS;
  st.flash = { seq, until };
  setTimeout(() => {
    if (st.flash?.until !== until) return;
    st.flash = null;
    if (st.name === ui.current) $("messages").querySelector(".message.hit")?.classList.remove("hit");
  }, FLASH_MS);
}

/** Drops the room's loaded history (the list's part stays). */
function forget(st) {
  Object.assign(st, { loaded: false, messages: new Map(), oldest: null, more: true, gap: null });
}

/** Pages the history before the oldest loaded event. */
async function loadOlder(st) {
  if (!st.more) return;
  const before = st.oldest ?? st.head + 1;
  if (before <= 1) {
    st.more = false;
    return;
  }
  const reply = await ui.client.request("history", { room: st.name, before, limit: PAGE });
  for (const e of reply.events) apply(st, e);
  st.more = reply.more;
  if (reply.events.length) st.oldest = Math.min(st.oldest ?? Infinity, reply.events[0].seq);
  else st.more = false;
}

/**
 * Loads the events around `seq` (a search hit), replacing what was loaded: older ones page in
 * by scrolling up as usual, and the ones between this window and the newest are a gap that pages
 * in by scrolling down (loadNewer).
 */
async function loadAround(st, seq) {
  st.loaded = true;
  const [older, newer] = await Promise.all([
    ui.client.request("history", { room: st.name, before: seq + 1, limit: AROUND }),
    ui.client.request("history", { room: st.name, after: seq, limit: AROUND }),
  ]);
  const last = newer.events.length ? newer.events[newer.events.length - 1].seq : seq;
  // Live events that came while loading are newer than the window: kept when the window reaches
  // the newest event, else they fall in the gap and page in with it.
  const kept = newer.more ? [] : [...st.messages.values()].filter((m) => m.seq > last);
  st.messages = new Map(kept.map((m) => [m.seq, m]));
  for (const e of [...older.events, ...newer.events]) apply(st, e);
  st.oldest = older.events.length ? older.events[0].seq : seq;
  st.more = older.more;
  st.gap = newer.more ? { after: last, before: st.head + 1 } : null;
}

/** Pages in the next events of the gap after a search hit's window. */
async function loadNewer(st) {
  if (!st.gap || st.loadingNewer) return;
  st.loadingNewer = true;
  try {
    const { after, before } = st.gap;
    const reply = await ui.client.request("history", { room: st.name, after, before, limit: PAGE });
    for (const e of reply.events) apply(st, e);
    const reached = reply.events.length ? reply.events[reply.events.length - 1].seq : before - 1;
    st.gap = reply.more && reached < before - 1 ? { after: reached, before } : null;
  } finally {
    st.loadingNewer = false;
  }
  if (st.name === ui.current) {
    renderMessages(false, "top");
    markRead(st);
  }
}

/** Pages in the events a resume could not backfill (more than 1,000 were missed). */
async function fillGap({ room, after, before }) {
  const st = roomState(room);
  if (!st.loaded) return; // not shown yet: opening it loads the newest page
  while (after < before - 1) {
    const reply = await ui.client.request("history", { room, after, before, limit: 200 });
    for (const e of reply.events) apply(st, e);
    if (!reply.events.length) break;
    after = reply.events[reply.events.length - 1].seq;
  }
  if (room === ui.current) renderMessages(false);
}

/** Redraws the room list at the next frame: a busy stream of events redraws it once. */
function scheduleRenderRooms() {
  if (!ui.roomsRender) ui.roomsRender = requestAnimationFrame(renderRooms);
}

/** Most recently active first; rooms whose activity is unknown after, by name. */
function sortedRooms() {
  return [...ui.rooms.values()].sort((a, b) => b.ts - a.ts || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function preview(last) {
  if (!last) return "";
  const who = last.from === ui.me ? "you" : last.from;
  return `${who}: ${last.deleted ? "message deleted" : last.text ?? ""}`;
}

function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

/** A padlock drawn in SVG (fonts may have no emoji), named "private" for screen readers. */
function lockIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "lock");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "private");
  const title = document.createElementNS(ns, "title");
  title.textContent = "private room";
  const shackle = document.createElementNS(ns, "path");
  shackle.setAttribute("d", "M5 7V5a3 3 0 0 1 6 0v2");
  shackle.setAttribute("fill", "none");
  shackle.setAttribute("stroke", "currentColor");
  shackle.setAttribute("stroke-width", "1.6");
  const body = document.createElementNS(ns, "rect");
  Object.entries({ x: 3, y: 7, width: 10, height: 7, rx: 1.5, fill: "currentColor" }).forEach(([k, v]) =>
    body.setAttribute(k, v),
  );
  svg.append(title, shackle, body);
  return svg;
}

function renderRooms() {
  cancelAnimationFrame(ui.roomsRender);
  ui.roomsRender = 0;
  const list = $("room-list");
  list.replaceChildren(
    ...sortedRooms().map((st) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.room = st.name;
      b.className = st.invitedBy ? "room-item invited" : "room-item";
      b.setAttribute("aria-current", String(st.name === ui.current));
      const line = span("room-line", "");
      line.append(span("room-name", st.name));
      if (st.private) line.append(lockIcon());
      if (st.ts) {
        const when = document.createElement("time");
        when.className = "room-time";
        when.dateTime = new Date(st.ts).toISOString();
        when.textContent = shortTime(st.ts);
        line.append(when);
      }
      if (st.unread > 0 && st.name !== ui.current) {
        const count = `${st.unread}${st.capped ? "+" : ""}`;
        const badge = span("badge", count);
        badge.setAttribute("aria-label", `${count} unread`);
        line.append(badge);
      }
      b.append(line);
      // Under the name: the invitation (until the room is opened), then the last message.
      const sub = span("preview", "");
      if (st.invitedBy) sub.append(span("tag", `invited by ${st.invitedBy}`), " ");
      if (st.archived) sub.append(span("tag archived", "archived"), " ");
      sub.append(preview(st.last));
      if (sub.textContent) b.append(sub);
      b.onclick = () => openRoom(st.name, true);
      li.append(b);
      return li;
    }),
  );
  $("rooms-more").hidden = !ui.roomPages.more;
}

// -- the public room directory -----------------------------------------------------------------

function openDirectory() {
  $("room").hidden = true;
  $("directory").hidden = false;
  $("chat-view").classList.remove("show-rooms");
  $("menu").setAttribute("aria-expanded", "false");
  $("directory-q").focus();
  loadDirectory(false);
}

function closeDirectory() {
  if ($("directory").hidden) return;
  $("directory").hidden = true;
  $("room").hidden = false;
  // A reply still on its way is not drawn.
  Object.assign(ui.directory, { loading: false, gen: ui.directory.gen + 1 });
}

/** The first page for the filter typed (`more` false) or the next one. */
async function loadDirectory(more) {
  const dir = ui.directory;
  if (more && (!dir.more || dir.loading)) return;
  const gen = ++dir.gen;
  dir.loading = true;
  const q = $("directory-q").value.trim();
  const fields = { limit: DIRECTORY_PAGE };
  if (q) fields.q = q;
  if (more) fields.before = dir.next;
  const list = $("directory-list");
  try {
    const reply = await ui.client.request("directory", fields);
    if (gen !== dir.gen) return;
    if (!more) list.replaceChildren();
    list.append(...reply.rooms.map(directoryItem));
    dir.next = reply.next ?? null;
    dir.more = !!reply.more && !!reply.next;
    const empty = !list.children.length;
    showNote(
      $("directory-note"),
      reply.partial
        ? "Some servers did not answer: rooms may be missing."
        : empty
          ? q
            ? `No public room starts with “${q}”.`
            : "No public rooms yet."
          : "",
      reply.partial ? () => loadDirectory(false) : null,
    );
  } catch (err) {
    if (gen !== dir.gen) return;
    dir.more = false;
    showNote($("directory-note"), unavailableText("The room directory", err), () => loadDirectory(false));
  } finally {
    if (gen === dir.gen) {
      dir.loading = false;
      $("directory-more").hidden = !dir.more;
    }
  }
}

function directoryItem(r) {
  const li = document.createElement("li");
  li.dataset.room = r.room;
  const about = span("about", "");
  about.append(span("room-name", r.room));
  if (r.topic) about.append(span("topic", r.topic));
  const facts = [];
  if (r.ts) facts.push(`active ${shortTime(r.ts)}`);
  if (r.head) facts.push(`${r.head} events`);
  if (facts.length) about.append(span("facts", facts.join(" · ")));
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = ui.rooms.has(r.room) ? "Open" : "Join";
  b.setAttribute("aria-label", `${b.textContent} ${r.room}`);
  b.onclick = () => openRoom(r.room, true);
  li.append(about, b);
  return li;
}

// -- search --------------------------------------------------------------------------------------

/** The first page for the query typed (`more` false) or the next one. */
async function runSearch(more) {
  const s = ui.search;
  if (more && (!s.more || s.loading)) return;
  if (!more) {
    s.q = $("search-q").value.trim();
    s.room = ui.current && $("search-here").checked ? ui.current : null;
    s.next = null;
    s.more = false;
  }
  if (!s.q) return;
  const gen = ++s.gen;
  s.loading = true;
  const fields = { q: s.q, limit: SEARCH_PAGE };
  if (s.room) fields.room = s.room;
  if (more) fields.before = s.next;
  const out = $("search-results");
  if (!more) {
    out.replaceChildren();
    showNote($("search-note"), "Searching…");
  }
  try {
    const reply = await ui.client.request("search", fields);
    if (gen !== s.gen) return;
    out.append(...reply.hits.map(hitItem));
    s.next = reply.next ?? null;
    s.more = !!reply.more && !!reply.next;
    const notes = [];
    if (!out.children.length) notes.push("No messages found.");
    if (reply.partial) notes.push("Some servers did not answer: results may be missing.");
    showNote($("search-note"), notes.join(" "), reply.partial ? () => runSearch(false) : null);
  } catch (err) {
    if (gen !== s.gen) return;
    s.more = false;
    showNote($("search-note"), unavailableText("Search", err), () => runSearch(false));
  } finally {
    if (gen === s.gen) {
      s.loading = false;
      $("search-more").hidden = !s.more;
    }
  }
}

/** Validated highlight ranges: in order, within the text, not overlapping. */
function cleanRanges(ranges, length) {
  if (!Array.isArray(ranges)) return [];
  const out = [];
  const valid = ranges
    .filter((r) => Array.isArray(r) && Number.isInteger(r[0]) && Number.isInteger(r[1]))
    .map(([b, e]) => [Math.max(0, b), Math.min(length, e)])
    .filter(([b, e]) => b < e)
    .sort((x, y) => x[0] - y[0]);
  for (const [b, e] of valid) {
    const from = Math.max(b, out.length ? out[out.length - 1][1] : 0);
    if (from < e) out.push([from, e]);
  }
  return out;
}

/** Moves an index off the second half of a surrogate pair, so a cut never splits a character. */
function charBoundary(text, i) {
  const c = text.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff ? i - 1 : i;
}

/**
 * The hit's text as nodes: text nodes, and <mark> around each highlighted range (UTF-16 code
 * units, as JavaScript strings count). A long text is cut to an excerpt around the first match.
 */
function highlighted(text, ranges) {
  let spans = cleanRanges(ranges, text.length);
  let start = 0;
  let end = text.length;
  if (text.length > EXCERPT) {
    start = charBoundary(text, Math.max(0, (spans.length ? spans[0][0] : 0) - 30));
    end = Math.min(text.length, start + EXCERPT);
    end = end < text.length ? charBoundary(text, end) : end;
    spans = spans.map(([b, e]) => [Math.max(b, start), Math.min(e, end)]).filter(([b, e]) => b < e);
  }
  const nodes = [];
  if (start > 0) nodes.push(document.createTextNode("…"));
  let at = start;
  for (const [b, e] of spans) {
    if (b > at) nodes.push(document.createTextNode(text.slice(at, b)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(b, e);
    nodes.push(mark);
    at = e;
  }
  if (at < end) nodes.push(document.createTextNode(text.slice(at, end)));
  if (end < text.length) nodes.push(document.createTextNode("…"));
  return nodes;
}

function hitItem(h) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "hit";
  b.dataset.room = h.room;
  b.dataset.seq = h.seq;
  const meta = span("meta", "");
  meta.append(span("hit-room", h.room), span("from", h.from));
  const when = document.createElement("time");
  when.dateTime = new Date(h.ts).toISOString();
  when.textContent = shortTime(h.ts);
  meta.append(when);
  const text = span("text", "");
  text.append(...highlighted(String(h.text ?? ""), h.highlight));
  b.append(meta, text);
  b.onclick = () => openRoom(h.room, true, h.seq);
  li.append(b);
  return li;
}

// -- events --------------------------------------------------------------------------------------

/**
 * Applies one event of the room's log to its view state: what the room list shows always, the
 * messages once the room's history was loaded (a room only listed keeps no messages).
 */
function apply(st, e) {
  // History pages may stop short of the newest message: `last` moves only for one at the head.
  if (e.type === "message" && e.seq >= st.head && (!st.last || e.seq >= st.last.seq))
    st.last = { seq: e.seq, ts: e.ts, from: e.from, text: e.text || "", deleted: !!e.deleted };
  else if (e.type === "edit" && st.last?.seq === e.ref && !e.deleted) st.last = { ...st.last, text: e.text };
  else if (e.type === "delete" && st.last?.seq === e.ref) st.last = { ...st.last, deleted: true };
  st.head = Math.max(st.head, e.seq);
  st.ts = Math.max(st.ts, e.ts ?? 0);
  if (e.type === "created") {
    st.private = !!e.private;
    st.owner = e.from;
  }
  if (e.type === "created" || e.type === "topic") st.topic = e.topic || "";
  // Our own message, echoed or from history: its pending copy is done.
  if (e.type === "message" && e.cid && e.from === ui.me) st.pending.delete(e.cid);
  if (!st.loaded) return;
  switch (e.type) {
    case "message":
      // From history or a backfill, a message comes as it is now: edited, or deleted (no text).
      st.messages.set(e.seq, {
        seq: e.seq,
        ts: e.ts,
        from: e.from,
        text: e.text || "",
        deleted: !!e.deleted,
        edited: !!e.edited,
      });
      return;
    case "edit": {
      const m = st.messages.get(e.ref);
      if (m && !e.deleted) {
        // A redacted edit (its message was deleted later) has no text; the delete follows.
        m.text = e.text;
        m.edited = true;
      }
      return;
    }
    case "delete": {
      const m = st.messages.get(e.ref);
      if (m) m.deleted = true;
      return;
    }
    case "created":
      st.messages.set(e.seq, { seq: e.seq, ts: e.ts, notice: `${e.from} created the room` });
      return;
    case "topic":
      st.messages.set(e.seq, { seq: e.seq, ts: e.ts, notice: `${e.from} set the topic: ${e.topic}` });
      return;
    case "member_added":
      st.messages.set(e.seq, { seq: e.seq, ts: e.ts, notice: `${e.from} added ${e.user}` });
      return;
    case "member_removed":
      st.messages.set(e.seq, { seq: e.seq, ts: e.ts, notice: `${e.from} removed ${e.user}` });
      return;
    default:
      return;
  }
}

function onEvent(e) {
  if (!ui.rooms.has(e.room)) return;
  const st = roomState(e.room);
  // The server counts no deleted message as unread: a counted one deleted, when we know it.
  if (e.type === "delete" && e.ref > st.read && e.ref <= st.counted && st.unread > 0) {
    const m = st.messages.get(e.ref) ?? (st.last?.seq === e.ref ? st.last : null);
    if (m && m.from !== ui.me && !m.deleted) st.unread -= 1;
  }
  apply(st, e);
  if ((e.type === "created" || e.type === "topic") && e.room === ui.current) renderHeader(st);
  // Whoever was typing has sent it.
  if (e.type === "message" && st.typing.delete(e.from) && e.room === ui.current) renderTyping();
  const isNewMessage = e.type === "message" && e.from !== ui.me;
  if (e.room === ui.current && document.visibilityState === "visible") {
    if (!(e.type === "message" && appendMessage(st, e))) renderMessages(false);
    markRead(st);
    // The list is rebuilt at times, not only appended to: screen readers hear new messages here.
    if (isNewMessage) $("announce").textContent = `${e.from}: ${e.text}`;
  } else if (isNewMessage && e.seq > st.read && e.seq > st.counted) {
    st.unread += 1;
    st.counted = e.seq;
  }
  scheduleRenderRooms();
}

function onTyping({ room, user }) {
  if (user === ui.me) return;
  roomState(room).typing.set(user, Date.now() + 4000);
  if (room === ui.current) renderTyping();
  setTimeout(renderTyping, 4100);
}

function onReceipt({ room, user, seq }) {
  const st = roomState(room);
  st.receipts.set(user, Math.max(seq, st.receipts.get(user) ?? 0));
  if (room === ui.current) renderMessages(false);
}

function onLeft({ room, reason }) {
  if (reason === "deleted") return; // said by the `deleted` push before it
  notice(room, reason === "kicked" ? "you were removed from this room" : "you left this room");
}

/**
 * An operator deleted the room: it leaves the list (kaiwa.js neither resumes nor retries it), its
 * view closes, and its messages not sent yet are named in the notice instead of vanishing.
 */
function onDeleted({ room }) {
  const st = ui.rooms.get(room);
  if (!st) return;
  const unsent = [...st.pending.values()].map((p) => `“${p.text}”`);
  st.pending.clear();
  clearTimeout(st.readTimer);
  ui.rooms.delete(room);
  saveRooms();
  const text = `room ${room} was deleted by an operator${unsent.length ? `; not sent: ${unsent.join(", ")}` : ""}`;
  $("announce-rooms").textContent = text;
  if (room === ui.current) closeRoom(text);
  else showNote($("rooms-note"), text);
  renderRooms();
}

/**
 * A resume found a new room of that name (the old one was deleted while we were away): what was
 * kept of the old one goes, and the room shown loads the new one's newest page.
 */
async function onReset({ room, head }) {
  const st = ui.rooms.get(room);
  if (!st) return;
  forget(st);
  Object.assign(st, {
    head,
    counted: head,
    read: 0,
    unread: 0,
    capped: false,
    owner: null,
    topic: "",
    private: false,
    last: null,
    receipts: new Map(),
  });
  scheduleRenderRooms();
  if (room !== ui.current) return;
  st.loaded = true;
  try {
    await loadOlder(st);
    await loadOwner(st);
  } catch {
    forget(st); // opening it again loads it
  }
  if (room !== ui.current) return;
  renderHeader(st);
  renderMessages(true);
}

/** Archived or writable again (a push, or said by a join). */
function onArchived({ room, archived }) {
  const st = ui.rooms.get(room);
  if (!st || st.archived === archived) return;
  st.archived = archived;
  if (room === ui.current) {
    renderArchived();
    renderMessages(false);
  }
  scheduleRenderRooms();
}

/** An error about `room`: shown while it is the room shown, gone once another is opened. */
function notice(room, text) {
  const st = room ? ui.rooms.get(room) : null;
  if (st) st.error = text;
  if (room === ui.current) $("room-error").textContent = text;
}

/**
 * Marks what is shown as read: at once, then at most once a second while messages stream in. A
 * room opened at a search hit is read up to the end of what is loaded; its unread count stays
 * until the newer events are paged in.
 */
function markRead(st) {
  if (!st.gap) {
    st.counted = Math.max(st.counted, st.head);
    st.capped = false;
    if (st.unread) {
      st.unread = 0;
      scheduleRenderRooms();
    }
  }
  if (st.readTimer) return;
  const latest = st.gap ? st.gap.after : st.head;
  if (latest <= st.read) return;
  st.read = latest;
  ui.client.request("read", { room: st.name, seq: latest }).catch(() => {});
  st.readTimer = setTimeout(() => {
    st.readTimer = null;
    if (st.name === ui.current && document.visibilityState === "visible") markRead(st);
  }, 1000);
}

function showOnline({ room, users }) {
  if (room === ui.current) $("online").textContent = users.length ? `online: ${users.join(", ")}` : "";
}

/** Small rooms push their presence list when it changes; big ones are asked every 15 s. */
async function pollPresence() {
  clearTimeout(ui.presenceTimer);
  const room = ui.current;
  if (!room) return;
  try {
    showOnline(await ui.client.request("presence", { room }));
  } catch {
    // offline: the next poll after the reconnect
  }
  ui.presenceTimer = setTimeout(pollPresence, 15000);
}

// -- rendering -----------------------------------------------------------------------------------

function time(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** The time today, else the date: for the room list, the directory and search hits. */
function shortTime(ts) {
  const d = new Date(ts);
  return d.toDateString() === new Date().toDateString()
    ? time(ts)
    : d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();

/** `m` continues `prev`'s group: the same author, the same day, within GROUP_MS. */
const continues = (prev, m) =>
  !!prev && !prev.notice && !m.notice && prev.from === m.from && sameDay(prev.ts, m.ts) && m.ts - prev.ts < GROUP_MS;

/** "Today", "Yesterday", else the date: the separator above each day's first message. */
function dayItem(ts) {
  const li = document.createElement("li");
  li.className = "day";
  li.setAttribute("role", "separator");
  const yesterday = new Date();
  yesterday.setDate(yesterday.getDate() - 1);
  li.textContent = sameDay(ts, Date.now())
    ? "Today"
    : sameDay(ts, yesterday.getTime())
      ? "Yesterday"
      : new Date(ts).toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  return li;
}

function button(text, label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  b.onclick = onclick;
  return b;
}

/**
 * One message, after `prev` (the item above it, or null): the first of a group shows its author
 * and time, the ones that continue it only their text (the time in its tooltip). `m.pending`
 * ({failed}) marks a message written here and not yet acked.
 */
function messageItem(st, m, prev) {
  const li = document.createElement("li");
  if (m.notice) {
    li.dataset.seq = m.seq;
    li.className = "message notice";
    li.textContent = m.notice;
    return li;
  }
  const mine = m.from === ui.me;
  const grouped = continues(prev, m);
  li.className = `message${mine ? " mine" : ""}${grouped ? " grouped" : ""}`;
  if (st.flash?.seq === m.seq && Date.now() < st.flash.until) li.classList.add("hit");
  const meta = document.createElement("div");
  meta.className = "meta";
  if (!grouped) {
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = m.from;
    const when = document.createElement("time");
    when.dateTime = new Date(m.ts).toISOString();
    when.textContent = time(m.ts) + (m.edited ? " (edited)" : "");
    meta.append(from, when);
  }
  const text = document.createElement("div");
  text.className = m.deleted ? "text deleted" : "text";
  text.textContent = m.deleted ? "message deleted" : m.text;
  li.append(meta, text);
  if (grouped) {
    // Screen readers still hear who wrote it and when.
    text.before(span("visually-hidden", `${m.from}, ${time(m.ts)}: `));
    text.title = time(m.ts);
    if (m.edited) li.append(span("edited", "(edited)"));
  }
  if (m.pending) {
    li.classList.add("pending");
    li.dataset.cid = m.cid;
    const state = document.createElement("div");
    state.className = "send-state";
    if (m.pending.failed) {
      li.classList.add("failed");
      const retry = button("Retry", null, () => {
        st.pending.delete(m.cid);
        sendPending(st, m.text);
        renderMessages(true);
      });
      retry.disabled = st.archived;
      state.append(
        `not sent: ${m.pending.failed}`,
        " ",
        retry,
        " ",
        button("Discard", null, () => {
          st.pending.delete(m.cid);
          renderMessages(false);
        }),
      );
    } else {
      state.textContent = st.link || ui.client?.state !== "online" ? "waiting to send…" : "sending…";
    }
    li.append(state);
  } else {
    li.dataset.seq = m.seq;
    if (mine && !m.deleted) {
      const actions = document.createElement("span");
      actions.className = "actions";
      const del = () =>
        ui.client.request("delete", { room: st.name, ref: m.seq }).catch((e) => notice(st.name, e.message));
      actions.append(
        button("edit", `edit message ${m.seq}`, () => startEdit(st, m, text)),
        button("delete", `delete message ${m.seq}`, del),
      );
      for (const b of actions.children) b.disabled = st.archived;
      meta.append(actions);
    }
  }
  if (!meta.childNodes.length) meta.remove();
  return li;
}

function startEdit(st, m, textEl) {
  const input = document.createElement("input");
  input.value = m.text;
  input.setAttribute("aria-label", "edit the message");
  const finish = () => {
    ui.editing = false;
    renderMessages(false);
  };
  input.onkeydown = (e) => {
    if (e.isComposing || e.keyCode === 229) return;
    if (e.key === "Escape") return finish();
    if (e.key !== "Enter") return;
    e.preventDefault();
    const text = input.value.trim();
    if (text && text !== m.text)
      ui.client.request("edit", { room: st.name, ref: m.seq, text }).catch((err) => notice(st.name, err.message));
    finish();
  };
  input.onblur = finish;
  ui.editing = true;
  textEl.replaceWith(input);
  input.focus();
}

/**
 * The common case of a live room: a new message after everything shown goes in as one item (and
 * the day's separator when it starts a day), instead of a redraw. False when it can't (an edit
 * box is open, pending messages or a gap are shown, or the message is not the newest), and the
 * caller redraws.
 */
function appendMessage(st, e) {
  const list = $("messages");
  if (ui.editing || st.gap || list.querySelector(".pending")) return false;
  const shown = list.querySelectorAll(".message[data-seq]");
  const last = shown.length ? Number(shown[shown.length - 1].dataset.seq) : 0;
  if (e.seq <= last) return false;
  const prev = st.messages.get(last) ?? null;
  const m = st.messages.get(e.seq);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.querySelector(".seen")?.remove(); // about the previous newest message
  if (!prev || !sameDay(prev.ts, m.ts)) list.append(dayItem(m.ts));
  list.append(messageItem(st, m, prev));
  if (atBottom) list.scrollTop = list.scrollHeight;
  return true;
}

/** The events between a search hit's window and the newest: a button pages them in. */
function gapItem(st) {
  const li = document.createElement("li");
  li.className = "gap";
  li.append(button("Show newer messages", null, () => loadNewer(st)));
  return li;
}

/**
 * Redraws the current room; keeps the reader's place unless they were at the bottom: the same
 * distance from the bottom (older messages came in above), or from the top with `keep` "top"
 * (newer ones came in below).
 */
function renderMessages(toBottom, keep = "bottom") {
  if (!ui.current) return;
  const st = roomState(ui.current);
  const list = $("messages");
  if (ui.editing) return; // redrawn when the edit ends
  const atBottom = toBottom || (keep === "bottom" && list.scrollHeight - list.scrollTop - list.clientHeight < 40);
  const fromBottom = list.scrollHeight - list.scrollTop;
  const fromTop = list.scrollTop;
  // The log in seq order, then what was written here and not acked yet, in the order written.
  const shown = [...st.messages.values()].sort((a, b) => a.seq - b.seq);
  for (const [cid, p] of st.pending)
    shown.push({ seq: Infinity, cid, ts: p.ts, from: ui.me, text: p.text, pending: p });
  const items = [];
  let prev = null;
  for (const m of shown) {
    if (st.gap && prev && prev.seq <= st.gap.after && m.seq > st.gap.after) {
      items.push(gapItem(st));
      prev = null;
    }
    if (!prev || !sameDay(prev.ts, m.ts)) items.push(dayItem(m.ts));
    items.push(messageItem(st, m, prev));
    prev = m;
  }
  if (st.gap && !items.some((li) => li.className === "gap")) items.push(gapItem(st));
  // Receipts: who has read up to the newest message, besides its author (and this user).
  const newest = shown.filter((m) => !m.pending).pop();
  const seenBy = newest
    ? [...st.receipts].filter(([u, seq]) => u !== ui.me && u !== newest.from && seq >= newest.seq).map(([u]) => u)
    : [];
  if (seenBy.length) {
    const li = document.createElement("li");
    li.className = "seen";
    li.textContent = `seen by ${seenBy.sort().join(", ")}`;
    items.push(li);
  }
  list.replaceChildren(...items);
  list.scrollTop = atBottom ? list.scrollHeight : keep === "top" ? fromTop : list.scrollHeight - fromBottom;
  renderTyping();
}

function renderTyping() {
  if (!ui.current) return;
  const now = Date.now();
  const who = [...roomState(ui.current).typing].filter(([, until]) => until > now).map(([u]) => u);
  $("typing").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}

// -- forms -----------------------------------------------------------------------------------------

$("signin").onsubmit = (e) => {
  e.preventDefault();
  const user = $("signin-user").value.trim();
  const token = $("signin-token").value.trim();
  if (!user && !token) {
    $("signin-error").textContent = "a name or a token, please";
    return;
  }
  $("signin-error").textContent = "";
  signIn(token ? undefined : user, token || undefined);
};

$("signout").onclick = () => signOut();

$("menu").onclick = () => {
  const open = $("chat-view").classList.toggle("show-rooms");
  $("menu").setAttribute("aria-expanded", String(open));
};

$("join").onsubmit = (e) => {
  e.preventDefault();
  const name = $("join-room").value.trim();
  $("join-room").value = "";
  openRoom(name, true);
};

$("create").onsubmit = async (e) => {
  e.preventDefault();
  const room = $("create-room").value.trim();
  const members = $("create-members").value.split(",").map((m) => m.trim()).filter(Boolean);
  try {
    await ui.client.request("create", {
      room,
      private: $("create-private").checked,
      members,
      topic: $("create-topic").value,
    });
    e.target.reset();
    e.target.closest("details").open = false;
    await openRoom(room, true);
  } catch (err) {
    notice(ui.current, `${room}: ${err.message}`);
  }
};

// The owner's controls: invite or remove the user named. The outcome is about the room the form
// was sent from, even when another is shown by the time the reply comes.
$("members").onsubmit = async (e) => {
  e.preventDefault();
  const room = ui.current;
  const op = e.submitter?.value === "kick" ? "kick" : "invite";
  const user = $("member-user").value.trim();
  try {
    await ui.client.request(op, { room, user });
    if (room === ui.current) $("member-user").value = "";
    notice(room, "");
  } catch (err) {
    notice(room, `${op === "kick" ? "remove" : "invite"} ${user}: ${err.message}`);
  }
};

$("topic-form").onsubmit = async (e) => {
  e.preventDefault();
  const room = ui.current;
  try {
    await ui.client.request("topic", { room, topic: $("topic-text").value.trim() });
    if (room === ui.current) $("topic-text").value = "";
    notice(room, "");
  } catch (err) {
    notice(room, `topic: ${err.message}`);
  }
};

$("search").onsubmit = (e) => {
  e.preventDefault();
  runSearch(false);
};
$("search-more").onclick = () => runSearch(true);

$("rooms-more").onclick = () => loadRooms(true);
// The next page of rooms comes in when the end of the list scrolls into view.
new IntersectionObserver((seen) => {
  if (seen.some((s) => s.isIntersecting) && ui.client) loadRooms(true);
}).observe($("rooms-more"));

$("browse").onclick = () => openDirectory();
$("directory-close").onclick = () => closeDirectory();
$("directory-more").onclick = () => loadDirectory(true);
$("directory-filter").onsubmit = (e) => {
  e.preventDefault();
  loadDirectory(false);
};
// Filters as the name is typed, once typing pauses.
let directoryTimer = null;
$("directory-q").oninput = () => {
  clearTimeout(directoryTimer);
  directoryTimer = setTimeout(() => loadDirectory(false), 250);
};

// Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition (Japanese,
// Chinese, ...) only confirms it.
let composing = false;
$("compose").addEventListener("compositionstart", () => (composing = true));
$("compose").addEventListener("compositionend", () => (composing = false));
$("compose").onkeydown = (e) => {
  if (e.key !== "Enter" || e.shiftKey) return;
  if (composing || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  sendComposed();
};
$("compose").oninput = () => {
  const now = Date.now();
  if (ui.current && now - ui.typingSentAt > 2000) {
    ui.typingSentAt = now;
    ui.client.push("typing", { room: ui.current });
  }
};
$("composer").onsubmit = (e) => {
  e.preventDefault();
  sendComposed();
};

function sendComposed() {
  const text = $("compose").value.trim();
  if (!text || !ui.current || roomState(ui.current).archived) return;
  $("compose").value = "";
  // The others stop showing "typing" when this message arrives: the next key says it again.
  ui.typingSentAt = 0;
  sendPending(roomState(ui.current), text);
  renderMessages(true);
}

/**
 * Sends `text` to the room; it shows as pending until the node has it: its echo (matched by cid)
 * or its ack turns it into the message at its seq, whichever comes first (while its room is
 * resuming, the ack can come long before the echo). An error that a retry would not cure turns
 * it into a failed message with Retry and Discard; it never just disappears.
 */
function sendPending(st, text) {
  const { cid, acked } = ui.client.send(st.name, text);
  st.pending.set(cid, { text, ts: Date.now(), failed: null });
  acked.then(
    (ack) => {
      if (!st.pending.delete(cid)) return; // the echo came first
      if (st.loaded && !st.messages.has(ack.seq))
        apply(st, { op: "event", room: st.name, seq: ack.seq, ts: ack.ts, type: "message", from: ui.me, text, cid });
      if (st.name === ui.current) renderMessages(false);
    },
    (err) => {
      const p = st.pending.get(cid);
      if (!p) return;
      p.failed = err.message;
      if (st.name === ui.current) renderMessages(false);
    },
  );
}

// Scrolling to the top pages older history in; to the bottom of a room opened at a search hit,
// newer history.
$("messages").addEventListener("scroll", async () => {
  const list = $("messages");
  if (!ui.current) return;
  const st = roomState(ui.current);
  if (st.gap && list.scrollHeight - list.scrollTop - list.clientHeight < 30) return loadNewer(st);
  if (list.scrollTop > 30) return;
  if (!st.more || st.loading) return;
  st.loading = true;
  try {
    await loadOlder(st);
    renderMessages(false);
  } finally {
    st.loading = false;
  }
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && ui.current) {
    renderMessages(false);
    markRead(roomState(ui.current));
  }
});

// A reload keeps the session (this tab only).
const saved = JSON.parse(sessionStorage.getItem("kaiwa.signin") || "null");
if (saved) signIn(saved.user, saved.token);
