// A text as both pages show it: the prompt, then one chip per generated token, coloured by
// its probability, that says what it was when pointed at or focused.

import {
  count,
  percent,
  probabilityBorder,
  probabilityColour,
  quoted,
  showToken,
  spokenToken,
} from "./format.js";

export const SELECTION = { spin: "spun", explicit: "picked", other: "drawn from Other" };

// How a token was chosen, in words: "spun", "picked, from the Other wedge".
export function chosen(token) {
  const from = token.sampled_from_other && token.selection !== "other" ? ", from the Other wedge" : "";
  return `${SELECTION[token.selection] ?? token.selection}${from}`;
}

// A token in words: `name(token)` says which (its quoted display text by default).
export function describe(token, name = quoted) {
  return (
    `${name(token)}: token id ${token.token_id}, probability ` +
    `${percent(token.probability)}, rank ${count(token.rank)}, ${chosen(token)}`
  );
}

function tokenChip(token, i, onShow) {
  const chip = document.createElement("span");
  chip.className = "tok";
  chip.tabIndex = 0;
  chip.dataset.tokenId = String(token.token_id);
  chip.dataset.index = String(i);
  chip.style.backgroundColor = probabilityColour(token.probability);
  chip.style.borderBottomColor = probabilityBorder(token.probability);
  chip.title = describe(token);
  chip.setAttribute("aria-label", describe(token, (t) => spokenToken(t.token_text)));
  showToken(chip, token);
  const show = () => onShow(token);
  chip.addEventListener("mouseenter", show);
  chip.addEventListener("focus", show);
  return chip;
}

// Fill `container` with the prompt and the generated tokens; `onShow(token)` runs when a
// chip is pointed at or focused.
export function renderTokens(container, prompt, history, onShow) {
  container.replaceChildren();
  const span = document.createElement("span");
  span.className = "prompt";
  span.textContent = prompt ?? "";
  container.appendChild(span);
  history.forEach((token, i) => container.appendChild(tokenChip(token, i, onShow)));
  container.dataset.tokens = String(history.length);
  container.scrollTop = container.scrollHeight;
}
