// The browser client's UI. The protocol (requests, reconnects, resume) is in kaiwa.js; this file
// keeps what the user sees: rooms with unread counts, a room's messages, typing, receipts,
// presence, search.

import { KaiwaClient } from "/kaiwa.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;

const ui = {
  client: null,
  me: null,
  current: null, // the room shown
  rooms: new Map(), // name -> room view state (see roomState)
  typingSentAt: 0,
  editing: false, // an edit box is open: redraws wait for it
  presenceTimer: null,
};

function roomState(name) {
  if (!ui.rooms.has(name))
    ui.rooms.set(name, {
      name,
      messages: new Map(), // seq -> {seq, ts, from, text, deleted, edited} or a notice
      pending: new Map(), // cid -> text: sent, not yet acked
      oldest: null, // lowest seq loaded
      more: true, // older history left
      head: 0, // highest seq known
      read: 0, // this user's read marker
      unread: 0,
      topic: "",
      receipts: new Map(), // user -> seq
      typing: new Map(), // user -> expiry ms
    });
  return ui.rooms.get(name);
}

// -- storage: the rooms this user joined in this browser ----------------------------------------

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
  client.addEventListener("resume-failed", (e) => notice(e.detail.room, `could not resume: ${e.detail.message}`));
  client.addEventListener("gap", (e) => fillGap(e.detail));
  client.connect();
  sessionStorage.setItem("kaiwa.signin", JSON.stringify({ user, token }));
}

function signOut(reason = "") {
  ui.client?.close();
  ui.client = null;
  ui.rooms.clear();
  ui.current = null;
  sessionStorage.removeItem("kaiwa.signin");
  $("chat-view").hidden = true;
  $("signin-view").hidden = false;
  $("signout").hidden = true;
  $("menu").hidden = true;
  $("whoami").textContent = "";
  $("signin-error").textContent = reason;
}

async function onWelcome({ user, node }) {
  const first = ui.me !== user;
  ui.me = user;
  $("whoami").textContent = `${user} @ ${node}`;
  $("signin-view").hidden = true;
  $("chat-view").hidden = false;
  $("signout").hidden = false;
  $("menu").hidden = false;
  if (!first) return refreshCurrent(); // a reconnect: the client resumed every room itself
  $("chat-view").classList.add("show-rooms"); // on a phone: the room list until one is picked
  let names = savedRooms();
  try {
    // The read side's room list, when the node has it.
    const reply = await ui.client.request("rooms");
    for (const r of reply.rooms) {
      const st = roomState(r.room);
      st.head = r.head;
      st.read = r.read;
      st.unread = r.unread;
    }
    names = [...new Set([...reply.rooms.map((r) => r.room), ...names])];
  } catch {
    // unavailable until the read side lands: the rooms joined in this browser
  }
  for (const name of names) await openRoom(name, false);
  const last = localStorage.getItem(`${storageKey()}.current`);
  if (last && ui.rooms.has(last)) await openRoom(last, true);
  renderRooms();
}

function showState({ state, retryInMs }) {
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

// -- rooms -------------------------------------------------------------------------------------

/** Joins `name` (loading its recent history) and, when `show`, makes it the current room. */
async function openRoom(name, show) {
  const st = roomState(name);
  if (!ui.client.joined.has(name)) {
    try {
      const reply = await ui.client.join(name);
      st.head = Math.max(st.head, reply.head);
      if (st.oldest === null) await loadOlder(st);
    } catch (e) {
      // A room this user may not join leaves the list; one that is only out of reach now (the
      // connection dropped, its node is moving it) stays, and the reconnect resumes it.
      if (["forbidden", "not_found", "bad_request"].includes(e.code)) {
        ui.rooms.delete(name);
        saveRooms();
        renderRooms();
      }
      if (show) $("room-error").textContent = `${name}: ${e.message}`;
      return;
    }
  }
  saveRooms();
  if (show) {
    ui.current = name;
    saveRooms();
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
  $("room-topic").textContent = st.topic;
  $("composer").hidden = false;
  $("invite").hidden = false; // the room says whether this user may invite
  $("room-error").textContent = "";
  renderMessages(true);
  markRead(st);
  pollPresence();
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

/** Pages in the events a resume could not backfill (more than 1,000 were missed). */
async function fillGap({ room, after, before }) {
  const st = roomState(room);
  while (after < before - 1) {
    const reply = await ui.client.request("history", { room, after, before, limit: 200 });
    for (const e of reply.events) apply(st, e);
    if (!reply.events.length) break;
    after = reply.events[reply.events.length - 1].seq;
  }
  if (room === ui.current) renderMessages(false);
}

function renderRooms() {
  const list = $("room-list");
  list.replaceChildren(
    ...[...ui.rooms.values()].map((st) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.room = st.name;
      b.setAttribute("aria-current", String(st.name === ui.current));
      const label = document.createElement("span");
      label.textContent = st.name;
      b.append(label);
      if (st.unread > 0 && st.name !== ui.current) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = st.unread;
        badge.setAttribute("aria-label", `${st.unread} unread`);
        b.append(badge);
      }
      b.onclick = () => openRoom(st.name, true);
      li.append(b);
      return li;
    }),
  );
}

// -- events --------------------------------------------------------------------------------------

/** Applies one event of the room's log to its view state. */
function apply(st, e) {
  st.head = Math.max(st.head, e.seq);
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
      if (e.cid) st.pending.delete(e.cid);
      return true;
    case "edit": {
      const m = st.messages.get(e.ref);
      if (m && !e.deleted) {
        // A redacted edit (its message was deleted later) has no text; the delete follows.
        m.text = e.text;
        m.edited = true;
      }
      return false;
    }
    case "delete": {
      const m = st.messages.get(e.ref);
      if (m) m.deleted = true;
      return false;
    }
    case "created":
      st.topic = e.topic || "";
      st.messages.set(e.seq, { seq: e.seq, notice: `${e.from} created the room` });
      return false;
    case "topic":
      st.topic = e.topic;
      st.messages.set(e.seq, { seq: e.seq, notice: `${e.from} set the topic: ${e.topic}` });
      return false;
    case "member_added":
      st.messages.set(e.seq, { seq: e.seq, notice: `${e.from} added ${e.user}` });
      return false;
    case "member_removed":
      st.messages.set(e.seq, { seq: e.seq, notice: `${e.from} removed ${e.user}` });
      return false;
    default:
      return false;
  }
}

function onEvent(e) {
  if (!ui.rooms.has(e.room)) return;
  const st = roomState(e.room);
  const isNewMessage = apply(st, e) && e.from !== ui.me;
  if (e.room === ui.current && document.visibilityState === "visible") {
    if (!(e.type === "message" && appendMessage(st, e))) renderMessages(false);
    markRead(st);
    // The list is rebuilt at times, not only appended to: screen readers hear new messages here.
    if (isNewMessage) $("announce").textContent = `${e.from}: ${e.text}`;
  } else if (isNewMessage && e.seq > st.read) {
    st.unread += 1;
    renderRooms();
  }
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
  notice(room, reason === "kicked" ? "you were removed from this room" : "you left this room");
}

function notice(room, text) {
  if (room === ui.current) $("room-error").textContent = text;
}

/** Marks what is shown as read: at once, then at most once a second while messages stream in. */
function markRead(st) {
  if (st.unread) {
    st.unread = 0;
    renderRooms();
  }
  if (st.readTimer) return;
  const latest = Math.max(0, ...st.messages.keys());
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

function messageItem(st, m) {
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  if (m.notice) {
    li.className = "message notice";
    li.textContent = m.notice;
    return li;
  }
  li.className = `message${m.from === ui.me ? " mine" : ""}`;
  const meta = document.createElement("div");
  meta.className = "meta";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  const when = document.createElement("time");
  when.dateTime = new Date(m.ts).toISOString();
  when.textContent = time(m.ts) + (m.edited ? " (edited)" : "");
  meta.append(from, when);
  const text = document.createElement("div");
  text.className = m.deleted ? "text deleted" : "text";
  text.textContent = m.deleted ? "message deleted" : m.text;
  li.append(meta, text);
  if (m.from === ui.me && !m.deleted) {
    const actions = document.createElement("span");
    actions.className = "actions";
    const edit = document.createElement("button");
    edit.type = "button";
    edit.textContent = "edit";
    edit.setAttribute("aria-label", `edit message ${m.seq}`);
    edit.onclick = () => startEdit(st, m, text);
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "delete";
    del.setAttribute("aria-label", `delete message ${m.seq}`);
    del.onclick = () =>
      ui.client.request("delete", { room: st.name, ref: m.seq }).catch((e) => notice(st.name, e.message));
    actions.append(edit, del);
    meta.append(actions);
  }
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
 * The common case of a live room: a new message after everything shown goes in as one item
 * (before the pending ones), instead of a redraw. False when it can't (an edit box is open, or
 * the message is not the newest), and the caller redraws.
 */
function appendMessage(st, e) {
  const list = $("messages");
  const shown = list.querySelectorAll(".message[data-seq]:not(.pending)");
  const last = shown.length ? Number(shown[shown.length - 1].dataset.seq) : 0;
  if (ui.editing || e.seq <= last) return false;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.querySelector(".seen")?.remove(); // about the previous newest message
  if (e.cid) list.querySelector(`.pending[data-cid="${CSS.escape(e.cid)}"]`)?.remove();
  list.insertBefore(messageItem(st, st.messages.get(e.seq)), list.querySelector(".pending"));
  if (atBottom) list.scrollTop = list.scrollHeight;
  return true;
}

/** Redraws the current room; keeps the reader's place unless they were at the bottom. */
function renderMessages(toBottom) {
  if (!ui.current) return;
  const st = roomState(ui.current);
  const list = $("messages");
  if (ui.editing) return; // redrawn when the edit ends
  const atBottom = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const fromBottom = list.scrollHeight - list.scrollTop;
  const items = [...st.messages.values()].sort((a, b) => a.seq - b.seq).map((m) => messageItem(st, m));
  for (const [cid, text] of st.pending) {
    const li = messageItem(st, { seq: 0, ts: Date.now(), from: ui.me, text });
    li.classList.add("pending");
    li.dataset.cid = cid;
    items.push(li);
  }
  // Receipts: who has read up to the newest message.
  const newest = Math.max(0, ...st.messages.keys());
  const seenBy = [...st.receipts].filter(([u, seq]) => u !== ui.me && seq >= newest).map(([u]) => u);
  if (seenBy.length) {
    const li = document.createElement("li");
    li.className = "seen";
    li.textContent = `seen by ${seenBy.sort().join(", ")}`;
    items.push(li);
  }
  list.replaceChildren(...items);
  list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
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
    $("room-error").textContent = `${room}: ${err.message}`;
  }
};

$("invite").onsubmit = async (e) => {
  e.preventDefault();
  const user = $("invite-user").value.trim();
  try {
    await ui.client.request("invite", { room: ui.current, user });
    $("invite-user").value = "";
  } catch (err) {
    $("room-error").textContent = err.message;
  }
};

$("search").onsubmit = async (e) => {
  e.preventDefault();
  const out = $("search-results");
  try {
    const reply = await ui.client.request("search", { q: $("search-q").value, limit: 20 });
    out.replaceChildren(
      ...reply.hits.map((h) => {
        const li = document.createElement("li");
        li.textContent = `${h.room} · ${h.from}: ${h.text}`;
        return li;
      }),
    );
    if (!reply.hits.length) out.textContent = "no messages found";
  } catch (err) {
    out.textContent = err.code === "unavailable" ? "search is not available on this server yet" : err.message;
  }
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
  if (!text || !ui.current) return;
  $("compose").value = "";
  const st = roomState(ui.current);
  const { cid, acked } = ui.client.send(st.name, text);
  st.pending.set(cid, text);
  renderMessages(true);
  acked
    .then(() => {
      st.pending.delete(cid);
      if (st.name === ui.current) renderMessages(false);
    })
    .catch((err) => {
      st.pending.delete(cid);
      notice(st.name, `not sent: ${err.message}`);
      renderMessages(false);
    });
}

// Scrolling to the top pages older history in.
$("messages").addEventListener("scroll", async () => {
  const list = $("messages");
  if (list.scrollTop > 30 || !ui.current) return;
  const st = roomState(ui.current);
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
