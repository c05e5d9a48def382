// A text as both pages show it: the prompt, then one chip per generated token, coloured by
// its probability, that says what it was when pointed at or focused. The chips are one
// tab stop (a listbox: the arrow keys, Home and End move between them) and never break
// inside a token.

import {
  count,
  percent,
  probabilityBorder,
  probabilityColour,
  quoted,
  showToken,
} from "./format.js";
import { t } from "./i18n.js";

// How a token was chosen, in words: "spun", "picked, from the Other wedge".
export function chosen(token) {
  const how = t(`chosen.${token.selection}`);
  const fromOther = token.sampled_from_other && token.selection !== "other";
  return fromOther ? t("chosen.fromOther", { how }) : how;
}

// A token in words: `name(token)` says which (its quoted display text by default).
export function describe(token, name = quoted) {
  return t("token.describe", {
    token: name(token),
    id: String(token.token_id), // an id, not a quantity: no digit grouping
    share: percent(token.probability),
    rank: count(token.rank),
    how: chosen(token),
  });
}

function tokenChip(token, i, current) {
  const chip = document.createElement("span");
  chip.className = "tok";
  chip.setAttribute("role", "option");
  chip.setAttribute("aria-selected", String(i === current));
  chip.tabIndex = i === current ? 0 : -1;
  chip.dataset.tokenId = String(token.token_id);
  chip.dataset.index = String(i);
  chip.style.backgroundColor = probabilityColour(token.probability);
  chip.style.borderBottomColor = probabilityBorder(token.probability);
  chip.title = describe(token);
  showToken(chip, token);
  return chip;
}

const MOVES = {
  ArrowRight: 1,
  ArrowDown: 1,
  ArrowLeft: -1,
  ArrowUp: -1,
};

// Fill `container` with the prompt and the generated tokens; `onShow(token)` runs when a
// chip is pointed at or focused, `onSelect(index)` when a chip becomes the selected one
// (clicked, tapped or moved to; after drawing, the one drawn selected). The chip that
// takes the tab stop is the one focused last (kept across redraws while it exists), else
// the newest.
export function renderTokens(container, prompt, history, onShow, onSelect = () => {}) {
  const old = container.querySelector('.tok[tabindex="0"]');
  const hadFocus = container.contains(document.activeElement);
  let current = old ? Number(old.dataset.index) : history.length - 1;
  if (current >= history.length || container.dataset.follow !== "false") {
    current = history.length - 1;
  }
  container.replaceChildren();
  const span = document.createElement("span");
  span.className = "prompt";
  span.textContent = prompt ?? "";
  container.appendChild(span);
  container.dataset.tokens = String(history.length);
  if (history.length) {
    const list = document.createElement("span");
    list.className = "tokens";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-orientation", "horizontal");
    list.setAttribute("aria-label", t("text.tokens", { count: history.length }));
    history.forEach((token, i) => list.appendChild(tokenChip(token, i, current)));
    const chips = [...list.children];
    const focusChip = (i) => {
      chips.forEach((chip, j) => {
        chip.tabIndex = j === i ? 0 : -1;
        chip.setAttribute("aria-selected", String(j === i));
      });
      // the newest chip keeps the tab stop as the text grows, unless another was chosen
      container.dataset.follow = String(i === chips.length - 1);
      chips[i].focus();
      onSelect(i);
    };
    list.addEventListener("keydown", (event) => {
      const chip = event.target.closest(".tok");
      if (!chip) return;
      const i = Number(chip.dataset.index);
      let next = null;
      if (event.key in MOVES) next = Math.min(Math.max(i + MOVES[event.key], 0), chips.length - 1);
      if (event.key === "Home") next = 0;
      if (event.key === "End") next = chips.length - 1;
      if (next === null) return;
      event.preventDefault();
      focusChip(next);
    });
    list.addEventListener("focusin", (event) => {
      const chip = event.target.closest(".tok");
      if (chip) onShow(history[Number(chip.dataset.index)]);
    });
    list.addEventListener("mouseover", (event) => {
      const chip = event.target.closest(".tok");
      if (chip) onShow(history[Number(chip.dataset.index)]);
    });
    list.addEventListener("click", (event) => {
      const chip = event.target.closest(".tok");
      if (chip) focusChip(Number(chip.dataset.index));
    });
    container.appendChild(list);
    if (hadFocus) chips[current].focus({ preventScroll: true });
  }
  onSelect(history.length ? current : -1);
  const box = container.closest(".text-box") ?? container;
  box.scrollTop = box.scrollHeight;
}
