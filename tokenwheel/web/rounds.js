// A revealed guess-first round, drawn the same way on the teacher page and the projector:
// the round's wheel (wheel.js) with the class's guess count marked on each wedge a guess
// named exactly, a table of the guessed tokens (count, and what the model gave each),
// and the guesses no wedge holds (several tokens, or one token deep in Other) with the
// whole guess's probability. Counts only: never who guessed what.

import { count, percent, quotedText, showToken } from "./format.js";
import { t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const MARK_RADIUS = 90; // the marks sit near the rim, over the wedge they count

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  parent.appendChild(node);
  return node;
}

// The wheel's tokens that someone guessed, most guessed first (then most likely).
export function guessedTokens(revealed) {
  const { above_threshold_tokens: above, other_category: other } = revealed.wheel;
  return [...above, ...other.sample_tokens]
    .filter((token) => token.guess_count > 0)
    .sort((a, b) => b.guess_count - a.guess_count || b.probability - a.probability);
}

export function guessTotal(revealed) {
  const onWedges = guessedTokens(revealed).reduce((sum, token) => sum + token.guess_count, 0);
  return onWedges + revealed.unlisted_guesses.reduce((sum, group) => sum + group.count, 0);
}

// Draw `revealed` (the reveal's answer) on `wheel` and mark the counts on its wedges.
export function drawRevealed(wheel, revealed) {
  wheel.draw(revealed.wheel);
  const old = wheel.svg.querySelector(".guess-marks");
  if (old) old.remove();
  const marks = el("g", { class: "guess-marks", "aria-hidden": "true" }, wheel.rotor);
  for (const item of wheel.items) {
    const guesses = item.token?.guess_count ?? 0;
    if (!guesses) continue;
    const angle = Math.PI * (item.start + item.end);
    const [x, y] = [MARK_RADIUS * Math.sin(angle), -MARK_RADIUS * Math.cos(angle)];
    const mark = el("g", { class: "guess-mark", "data-token-id": item.token.token_id }, marks);
    mark.dataset.count = String(guesses);
    el("circle", { cx: x.toFixed(2), cy: y.toFixed(2), r: 9 }, mark);
    const label = el("text", { x: x.toFixed(2), y: (y + 4).toFixed(2), "font-size": 11 }, mark);
    label.textContent = count(guesses);
  }
}

function headRow(table, keys) {
  const row = table.createTHead().insertRow();
  for (const key of keys) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(`reveal.column.${key}`);
    if (key !== "token" && key !== "guess") th.className = "number";
    row.appendChild(th);
  }
}

function numberCell(row, text) {
  const td = row.insertCell();
  td.className = "number";
  td.textContent = text;
  return td;
}

// The guessed tokens of the wheel as a table (`table` is a <table>), and the guesses no
// wedge holds in `unlisted` (a container), under a heading of `level` (the page's next).
export function listRevealed(table, unlisted, revealed, level = 4) {
  table.replaceChildren();
  const caption = table.createCaption();
  caption.textContent = t("reveal.tokensCaption");
  headRow(table, ["token", "guesses", "probability"]);
  const body = table.createTBody();
  const tokens = guessedTokens(revealed);
  for (const token of tokens) {
    const row = body.insertRow();
    row.dataset.tokenId = String(token.token_id);
    row.dataset.count = String(token.guess_count);
    const name = row.insertCell();
    name.className = "token-text";
    showToken(name, token, { max: 24 });
    numberCell(row, count(token.guess_count)).classList.add("guess-count");
    numberCell(row, percent(token.probability));
  }
  if (!tokens.length) {
    const row = body.insertRow();
    const td = row.insertCell();
    td.colSpan = 3;
    td.textContent = t("reveal.noneOnWheel");
  }

  unlisted.replaceChildren();
  const title = document.createElement(`h${level}`);
  title.textContent = t("reveal.unlistedTitle");
  unlisted.appendChild(title);
  if (!revealed.unlisted_guesses.length) {
    const none = document.createElement("p");
    none.className = "hint";
    none.textContent = t("reveal.noUnlisted");
    unlisted.appendChild(none);
    return;
  }
  const list = document.createElement("ul");
  list.className = "unlisted-list";
  for (const group of revealed.unlisted_guesses) {
    const item = document.createElement("li");
    item.dataset.count = String(group.count);
    const key = group.single_token ? "reveal.unlistedOne" : "reveal.unlistedMany";
    item.textContent = t(key, {
      text: quotedText(group.text),
      count: group.count,
      tokens: group.token_ids.length,
      share: percent(group.text_probability),
    });
    list.appendChild(item);
  }
  unlisted.appendChild(list);
}
