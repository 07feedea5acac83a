// A kaiwa protocol client (docs/protocol.md) for browsers: the reference for integrating kaiwa.
//
// What it does beyond sending JSON:
// - requests carry ids and resolve with their reply (or reject with the error reply);
// - the connection comes back by itself after a drop (node restart, 4009, 4010), with
//   exponential backoff and jitter, and every joined room resumes with `since` = the last seq
//   seen, so no event is missed and none is delivered twice;
// - a room that can't be resumed (`unavailable`: in a cluster, its node is down or moving it)
//   is tried again by itself, with backoff and jitter, until it is back; so is a room whose
//   sends get `unavailable`;
// - sends carry a `cid` and wait in an outbox until acked: sent again after a reconnect, a
//   resume or a retry, in the order written (the node appends a retried cid only once);
// - a room an operator deleted is dropped: its pending sends fail (code `deleted`) and it is
//   neither resumed nor retried (a join or send would create a new room of that name), until
//   the caller joins it again; a resume that finds the room's head below `since` (deleted and
//   made again meanwhile) starts the room over.
//
// Events (EventTarget): "state" {state, retryInMs}, "welcome" {user, node}, "event" (a room
// event), "typing", "receipt", "presence" (a small room's new list), "invited" {room, by, seq,
// topic} (this user was added to a room), "left", "signedout" {reason}, "gap" {room, after,
// before} (events after..before were not backfilled: page them with history), "room" {room,
// state: "resuming" | "retrying" | "live", retryInMs, attempt, message} (a joined room's link
// after a reconnect or an `unavailable`), "resume-failed" {room, code, message} (for good:
// forbidden, not_found, ...), "deleted" {room} (an operator deleted it: dropped here, see
// above), "reset" {room, head} (a resume found a new room of that name: what was kept of the old
// one is stale), "archived" {room, archived} (pushed on a change, and said by every join: an
// archived room is read-only). Every push is dispatched under its op, so a new push needs no
// change here.

const MAX_BACKOFF_MS = 10_000;
// Errors after which the same request may succeed a moment later: the room is moving or its
// node is down, its node did not answer, or too many commands were queued.
const RETRYABLE = new Set(["unavailable", "timeout", "rate_limited"]);

/** Attempt n (0, 1, ...) waits between half and all of 0.5 s * 2^n, at most 10 s. */
function backoff(attempt) {
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

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
    // room -> last seq seen (0: none yet; null: its first join failed and is being retried).
    this.joined = new Map();
    // cid -> {room, text, resolve, reject, inFlight}: sends not yet acked, in the order written.
    this.outbox = new Map();
    // room -> {attempt, timer}: rooms that answered a retryable error. While `timer` is set,
    // the room's join and sends wait for it; a success deletes the entry.
    this.retrying = new Map();
    // Rooms an operator deleted since they were last joined: nothing here joins or sends to them
    // by itself. Bounded by the rooms joined; join() takes a room out.
    this.deleted = new Set();
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
    for (const r of this.retrying.values()) clearTimeout(r.timer);
    this.retrying.clear();
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
   * reconnect it resumes with `since` = the last event seen, backfilling what was missed. A join
   * that fails for now (`unavailable`, ...) rejects, and is made again until it works.
   */
  async join(room) {
    this.deleted.delete(room);
    const since = this.joined.get(room) ?? undefined; // null: a first join not made yet
    let reply;
    try {
      reply = await this.request("join", since === undefined ? { room } : { room, since });
    } catch (e) {
      // A first join that finds the room away (its node down or moving it, or the connection
      // down) is made again later, like a resume; the caller still hears why it failed now.
      // Not once the room was deleted meanwhile: that would make a new one.
      const retry = RETRYABLE.has(e.code) || e.code === "disconnected";
      if (!this.joined.has(room) && !this.deleted.has(room) && retry) {
        this.joined.set(room, null);
        this.retryLater(room, e);
      }
      throw e;
    }
    // A head below what we saw: the room was deleted while we were away and this is a new one
    // of the same name (docs/protocol.md, "Deleted rooms"). Sends written for the old one fail.
    if (since != null && reply.head < since) {
      this.joined.set(room, reply.head);
      this.dropOutbox(room, "the room was deleted and made again: not sent");
      this.dispatchEvent(new CustomEvent("reset", { detail: { room, head: reply.head } }));
    }
    if (this.joined.get(room) == null) this.joined.set(room, reply.head);
    this.dispatchEvent(new CustomEvent("archived", { detail: { room, archived: !!reply.archived } }));
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

  /**
   * Sends a message: `acked` resolves with the ack, or rejects with an error that retrying the
   * same request would not cure (forbidden, too_large, ...). Until then it is in the outbox and
   * goes again, with the same cid, after a reconnect, its room's resume or a retry.
   */
  send(room, text) {
    const cid = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const acked = new Promise((resolve, reject) => {
      this.outbox.set(cid, { room, text, resolve, reject, inFlight: false });
    });
    if (this.state === "online" && !this.retrying.get(room)?.timer) this.transmit(cid);
    return { cid, acked };
  }

  /** Tries a room waiting for its retry at once (a "retry now" button). */
  retryNow(room) {
    const r = this.retrying.get(room);
    if (!r?.timer) return;
    clearTimeout(r.timer);
    r.timer = null;
    this.resumeRoom(room);
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

  transmit(cid) {
    const s = this.outbox.get(cid);
    if (!s || s.inFlight) return;
    s.inFlight = true;
    this.request("send", { room: s.room, text: s.text, cid }).then(
      (ack) => {
        this.outbox.delete(cid);
        this.succeeded(s.room);
        s.resolve(ack);
      },
      (e) => {
        s.inFlight = false;
        if (this.outbox.get(cid) !== s) return; // dropped meanwhile (its room was deleted)
        // Disconnected: it goes again once the connection is back (resume).
        if (e.code === "disconnected") return;
        if (RETRYABLE.has(e.code)) return this.retryLater(s.room, e);
        this.outbox.delete(cid);
        s.reject(e);
      },
    );
  }

  /** Sends what the outbox holds for `room`, in the order written. */
  flush(room) {
    for (const [cid, s] of this.outbox) if (s.room === room) this.transmit(cid);
  }

  /** Fails every pending send to `room` with the code `deleted`, and forgets its retry. */
  dropOutbox(room, message) {
    for (const [cid, s] of this.outbox) {
      if (s.room !== room) continue;
      this.outbox.delete(cid);
      s.reject({ code: "deleted", message });
    }
    clearTimeout(this.retrying.get(room)?.timer);
    this.retrying.delete(room);
  }

  /** A request for `room` worked: its backoff starts over. */
  succeeded(room) {
    const r = this.retrying.get(room);
    if (r && !r.timer) this.retrying.delete(room);
  }

  /** `room` answered a retryable error: its join (when joined) and its sends go again later. */
  retryLater(room, error) {
    if (this.state !== "online" || this.deleted.has(room)) return; // the reconnect resumes it
    const r = this.retrying.get(room) ?? { attempt: 0, timer: null };
    if (r.timer) return; // already waiting
    this.retrying.set(room, r);
    const delay = backoff(r.attempt++);
    r.timer = setTimeout(() => {
      r.timer = null;
      this.resumeRoom(room);
    }, delay);
    if (this.joined.has(room))
      this.dispatchEvent(
        new CustomEvent("room", {
          detail: { room, state: "retrying", retryInMs: delay, attempt: r.attempt, message: error.message },
        }),
      );
  }

  /**
   * Subscribes a joined room again with `since` (after a reconnect or a retry), then sends what
   * the outbox holds for it; a room only sent to just sends.
   */
  async resumeRoom(room) {
    if (this.state !== "online" || this.deleted.has(room)) return;
    if (!this.joined.has(room)) return this.flush(room);
    const attempt = this.retrying.get(room)?.attempt ?? 0;
    this.dispatchEvent(new CustomEvent("room", { detail: { room, state: "resuming", attempt } }));
    try {
      await this.join(room);
    } catch (e) {
      if (e.code === "disconnected") return; // the reconnect resumes it
      if (RETRYABLE.has(e.code)) return this.retryLater(room, e);
      // For good (kicked from a private room, ...): its sends get their own error.
      this.joined.delete(room);
      this.retrying.delete(room);
      this.dispatchEvent(new CustomEvent("resume-failed", { detail: { room, ...e } }));
      return this.flush(room);
    }
    this.succeeded(room);
    this.dispatchEvent(new CustomEvent("room", { detail: { room, state: "live" } }));
    this.flush(room);
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
    // Before its `left`, so that nothing of the room is tried again.
    if (msg.op === "deleted") {
      this.deleted.add(msg.room);
      this.joined.delete(msg.room);
      this.dropOutbox(msg.room, "the room was deleted");
    }
    if (msg.op === "left") this.joined.delete(msg.room);
    this.dispatchEvent(new CustomEvent(msg.op, { detail: msg }));
  }

  /**
   * After (re)connecting: every joined room resumes with since, then sends its outbox; rooms only
   * sent to send theirs. (Room backoffs start over: onClose dropped them.)
   */
  resume() {
    const rooms = new Set(this.joined.keys());
    for (const s of this.outbox.values()) rooms.add(s.room);
    for (const room of rooms) this.resumeRoom(room);
  }

  onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    for (const w of this.waiting.values()) w.reject({ code: "disconnected", message: reason || `closed ${code}` });
    this.waiting.clear();
    // Rooms waiting for a retry wait for the reconnect instead (resume).
    for (const r of this.retrying.values()) clearTimeout(r.timer);
    this.retrying.clear();
    if (this.stopped) return this.setState("offline");
    if (code === 4001) {
      this.dispatchEvent(new CustomEvent("signedout", { detail: { reason: reason || "unauthorized" } }));
      return this.setState("offline");
    }
    const delay = backoff(this.attempt++);
    this.setState("connecting", delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
