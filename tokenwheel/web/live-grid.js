// The live grid of a class: one card per student (nickname or a short label, the text
// now, the last token and its probability, what they just did), drawn from the live
// stream's snapshot and events (live.js). Every event carries the student's whole card,
// so an event of a student not seen yet adds a card.

import { percent, quoted, showToken } from "./format.js";
import { t } from "./i18n.js";

const FRESH_MS = 2500; // a card that just changed is marked this long

export class LiveGrid {
  constructor(list) {
    this.list = list;
    this.cards = new Map(); // session id -> {data, action}
    this.order = []; // session ids, first joined first
  }

  clear() {
    this.cards.clear();
    this.order = [];
    this.list.replaceChildren();
  }

  get size() {
    return this.cards.size;
  }

  snapshot(students) {
    this.clear();
    for (const card of [...students].reverse()) this.put(card, null, false); // oldest first
  }

  // A stream event: the card after it, and what happened.
  event(kind, data) {
    const known = this.cards.get(data.session_id);
    if (known && known.data.version >= data.version) return; // already shown
    const action = { kind, token: kind === "undo" ? data.undone : data.last_token };
    this.put(data, action, true);
  }

  put(data, action, fresh) {
    if (!this.cards.has(data.session_id)) this.order.push(data.session_id);
    this.cards.set(data.session_id, { data, action });
    const node = this.render(data.session_id);
    const old = this.list.querySelector(`[data-session-id="${data.session_id}"]`);
    if (old) old.replaceWith(node);
    else this.list.appendChild(node);
    if (fresh) {
      node.classList.add("fresh");
      window.setTimeout(() => node.classList.remove("fresh"), FRESH_MS);
    }
  }

  redraw() {
    this.list.replaceChildren(...this.order.map((id) => this.render(id)));
  }

  label(data) {
    return data.nickname ?? t("live.anonymous", { id: data.session_id.slice(0, 4) });
  }

  render(sessionId) {
    const { data, action } = this.cards.get(sessionId);
    const item = document.createElement("li");
    item.className = "live-card";
    item.dataset.sessionId = sessionId;
    item.dataset.version = String(data.version);
    if (data.deleted) item.classList.add("left");

    const title = document.createElement("h3");
    title.className = "live-name";
    title.textContent = this.label(data);
    const meta = document.createElement("p");
    meta.className = "live-meta";
    meta.textContent = data.deleted
      ? t("live.left")
      : t("live.tokens", { count: data.token_count });

    const text = document.createElement("p");
    text.className = "live-text";
    if (data.prompt === null) {
      text.classList.add("empty");
      text.textContent = t("live.noPrompt");
    } else text.textContent = data.text;

    const last = document.createElement("p");
    last.className = "live-last";
    if (data.last_token) {
      last.dataset.probability = String(data.last_token.probability);
      const token = document.createElement("span");
      token.className = "token-text";
      showToken(token, data.last_token, { max: 24 });
      last.append(`${t("live.lastToken")} `, token, ` ${percent(data.last_token.probability)}`);
    } else last.textContent = t("live.noToken");

    const doing = document.createElement("p");
    doing.className = "live-action";
    doing.textContent = action ? this.say(action) : "";

    item.append(title, meta, text, last, doing);
    return item;
  }

  say(action) {
    const token = action.token ? quoted(action.token) : "";
    return t(`live.did.${action.kind}`, { token });
  }
}
