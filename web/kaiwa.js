// A kaiwa protocol client (docs/protocol.md) for browsers: the reference for integrating kaiwa.
//
// What it does beyond sending JSON:
// - requests carry ids and resolve with their reply (or reject with the error reply);
// - the connection comes back by itself after a drop (node restart, 4009, 4010), with
//   exponential backoff and jitter, and every joined room resumes with `since` = the last seq
//   seen, so no event is missed and none is delivered twice;
// - sends carry a `cid` and are sent again after a reconnect until acked: the node appends a
//   retried cid only once.
//
// Events (EventTarget): "state" {state, retryInMs}, "welcome" {user, node}, "event" (a room
// event), "typing", "receipt", "presence" (a small room's new list), "invited" {room, by, seq,
// topic} (this user was added to a room), "left", "signedout" {reason}, "gap" {room, after,
// before} (events after..before were not backfilled: page them with history), "resume-failed"
// {room, code}. Every push is dispatched under its op, so a new push needs no change here.

const MAX_BACKOFF_MS = 10_000;

export class KaiwaClient extends EventTarget {
  /** @param {{url: string, user?: string, token?: string}} options */
  constructor({ url, user, token }) {
    super();
    this.url = url;
    this.credentials = token ? { token } : { user };
    this.state = "offline";
    this.user = null;
    this.node = null;
    this.ws = null;
    this.nextId = 1;
    this.waiting = new Map(); // request id -> {resolve, reject}
    this.joined = new Map(); // room -> last seq seen (0: none yet)
    this.unacked = new Map(); // cid -> {room, text}: sends not yet acked
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.setState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.raw({ op: "hello", id: "hello", ...this.credentials });
    ws.onmessage = (m) => this.onMessage(JSON.parse(m.data));
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
  }

  /** Closes for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.setState("offline");
  }

  /** Sends a request; resolves with its reply, rejects with {code, message}. */
  request(op, fields = {}) {
    if (this.state !== "online") return Promise.reject({ code: "disconnected", message: "not connected" });
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.raw({ op, id, ...fields });
    });
  }

  /**
   * Subscribes to `room` (live events from now on: page older ones with `history`); after a
   * reconnect it resumes with `since` = the last event seen, backfilling what was missed.
   */
  async join(room) {
    const since = this.joined.get(room);
    const reply = await this.request("join", since === undefined ? { room } : { room, since });
    if (!this.joined.has(room)) this.joined.set(room, reply.head);
    // Away for more than 1,000 events: the node backfilled from gap_until on; the caller pages
    // the rest in with history.
    if (reply.gap_until)
      this.dispatchEvent(new CustomEvent("gap", { detail: { room, after: since, before: reply.gap_until } }));
    return reply;
  }

  async leave(room) {
    this.joined.delete(room);
    return this.request("leave", { room });
  }

  /** Sends a message; retried with the same cid across reconnects until acked. */
  send(room, text) {
    const cid = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    this.unacked.set(cid, { room, text });
    return { cid, acked: this.trySend(cid) };
  }

  /** Pushes are sent only while online: they are not worth retrying. */
  push(op, fields) {
    if (this.state === "online") this.raw({ op, ...fields });
  }

  // -- internals ------------------------------------------------------------------------------

  raw(obj) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  setState(state, retryInMs = 0) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryInMs } }));
  }

  async trySend(cid) {
    for (;;) {
      const s = this.unacked.get(cid);
      if (!s) return null;
      try {
        const ack = await this.request("send", { room: s.room, text: s.text, cid });
        this.unacked.delete(cid);
        return ack;
      } catch (e) {
        // Not sent, or its node went away: the same cid goes again once we are back.
        if (e.code === "disconnected" || e.code === "unavailable" || e.code === "timeout") {
          await new Promise((r) => this.afterReconnect(r, e.code === "disconnected" ? 0 : 300));
          continue;
        }
        this.unacked.delete(cid);
        throw e;
      }
    }
  }

  afterReconnect(resolve, delayMs) {
    const go = () => setTimeout(resolve, delayMs);
    if (this.state === "online") return go();
    const once = (e) => {
      if (e.detail.state !== "online") return;
      this.removeEventListener("state", once);
      go();
    };
    this.addEventListener("state", once);
  }

  onMessage(msg) {
    if (msg.id === "hello") {
      if (msg.op === "error") {
        this.stopped = true;
        this.dispatchEvent(new CustomEvent("signedout", { detail: { reason: msg.message } }));
        this.ws.close(1000);
        return;
      }
      this.user = msg.user;
      this.node = msg.node;
      this.attempt = 0;
      this.setState("online");
      this.dispatchEvent(new CustomEvent("welcome", { detail: msg }));
      this.resume();
      return;
    }
    if (msg.id !== undefined && this.waiting.has(msg.id)) {
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.op === "error") w.reject({ code: msg.code, message: msg.message });
      else w.resolve(msg);
      return;
    }
    if (msg.op === "event") {
      const last = this.joined.get(msg.room);
      if (last !== undefined) {
        if (msg.seq <= last) return; // already seen (a resume never repeats one, history may)
        this.joined.set(msg.room, msg.seq);
      }
    }
    if (msg.op === "left") this.joined.delete(msg.room);
    this.dispatchEvent(new CustomEvent(msg.op, { detail: msg }));
  }

  /** After (re)connecting: every joined room resumes with since; unacked sends go again. */
  resume() {
    for (const room of this.joined.keys())
      this.join(room).catch((e) => this.dispatchEvent(new CustomEvent("resume-failed", { detail: { room, ...e } })));
  }

  onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    for (const w of this.waiting.values()) w.reject({ code: "disconnected", message: reason || `closed ${code}` });
    this.waiting.clear();
    if (this.stopped) return this.setState("offline");
    if (code === 4001) {
      this.dispatchEvent(new CustomEvent("signedout", { detail: { reason: reason || "unauthorized" } }));
      return this.setState("offline");
    }
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++);
    const delay = Math.round(backoff / 2 + (Math.random() * backoff) / 2);
    this.setState("connecting", delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
