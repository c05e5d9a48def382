// A class's live stream (GET /api/teacher/classes/{code}/live, Server-Sent Events),
// read with fetch rather than EventSource: EventSource cannot send the teacher token in
// an Authorization header, and the token must never go into a URL (logs keep URLs).
// Otherwise it behaves as EventSource does: it parses the SSE format, remembers the last
// event id, follows the server's retry: hint and, whenever the stream ends (the server
// ends each one after a few minutes) or breaks, reconnects with Last-Event-ID, so no
// event is lost or sent twice.

const FIRST_RETRY_MS = 2000; // until the server says otherwise
const MAX_RETRY_MS = 30_000;

export class LiveFeed {
  // onEvent(kind, id, data) for each event; onState(state, detail) with state one of
  // "connecting", "open", "waiting" (detail: {seconds, busy}), "closed", "refused"
  // (detail: {status, body}: the token or the class code was refused; no retry).
  constructor(path, token, { onEvent, onState }) {
    this.path = path;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = null;
    this.retryMs = FIRST_RETRY_MS;
    this.failures = 0;
    this.controller = null;
    this.stopped = false;
    this.timer = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.controller?.abort();
    this.onState("closed");
  }

  async connect() {
    if (this.stopped) return;
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` };
    if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
    this.onState("connecting");
    let response;
    try {
      response = await fetch(this.path, {
        headers,
        cache: "no-store",
        signal: this.controller.signal,
      });
    } catch {
      this.later();
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if ([502, 503, 504].includes(response.status)) {
        const seconds = Number(response.headers.get("Retry-After")) || 0;
        this.later(seconds * 1000, response.status === 503);
      } else {
        this.stopped = true;
        this.onState("refused", { status: response.status, body });
      }
      return;
    }
    this.failures = 0;
    this.onState("open");
    try {
      await this.read(response.body.getReader());
    } catch {
      // broken off (network, server restart, stop()): reconnect below unless stopped
    }
    this.later();
  }

  // After the stream ended or failed: connect again after the server's retry hint,
  // longer after repeated failures.
  later(atLeastMs = 0, busy = false) {
    if (this.stopped) return;
    this.failures += 1;
    const backoff = Math.min(MAX_RETRY_MS, this.retryMs * 2 ** Math.max(0, this.failures - 2));
    const wait = Math.max(atLeastMs, backoff);
    this.onState("waiting", { seconds: Math.ceil(wait / 1000), busy });
    this.timer = window.setTimeout(() => this.connect(), wait);
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.search(/\r?\n\r?\n/);
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        this.dispatch(block);
        end = buffer.search(/\r?\n\r?\n/);
      }
    }
  }

  // One block of the SSE format: field lines; comments (":...") are heartbeats.
  dispatch(block) {
    const fields = { data: [] };
    for (const line of block.split(/\r?\n/)) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "data") fields.data.push(value);
      else fields[name] = value;
    }
    if (fields.retry && /^\d+$/.test(fields.retry)) this.retryMs = Number(fields.retry);
    if (fields.id !== undefined) this.lastEventId = fields.id;
    if (!fields.data.length) return;
    let data;
    try {
      data = JSON.parse(fields.data.join("\n"));
    } catch {
      return; // not ours
    }
    this.onEvent(fields.event ?? "message", fields.id ?? null, data);
  }
}
