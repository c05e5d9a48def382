// How tokens and numbers are shown: tokens as the server's `display_text`; percentages,
// counts, dates formatted for the page's language; colours.

import { dateTimeFormat, numberFormat, t } from "./i18n.js";

// The glyphs the server's `display_text` uses for whitespace (· space, ↵ new line, ⇥ tab,
// ⇤ carriage return): drawn faintly.
const WHITESPACE = new Set(["·", "↵", "⇥", "⇤"]);

// Pieces of a token's `display_text`: [{text, ws, newline}], whitespace glyphs apart from
// the rest, each ↵ a piece of its own. Partial UTF-8 characters (their bytes, ⟨E2 80⟩)
// and special tokens (their names) are one piece, marked with their kind. An empty
// token shows as ∅.
function tokenPieces(token) {
  const text = token.display_text;
  if (text === "") return [{ text: "∅", ws: true }];
  if (token.partial_utf8) return [{ text, kind: "partial" }];
  if (token.special) return [{ text, kind: "special" }];
  const pieces = [];
  for (const ch of text) {
    const ws = WHITESPACE.has(ch);
    const newline = ch === "↵";
    const last = pieces[pieces.length - 1];
    if (last && !last.newline && last.ws === ws && !newline) last.text += ch;
    else pieces.push({ text: ch, ws, newline });
  }
  return pieces;
}

// Fill `parent` with a token's `display_text` (as the server sent it; `token` is any
// object with the display fields), whitespace glyphs in their own faint elements (`span`
// in HTML, `tspan` in SVG, class `ws`), a partial UTF-8 character in one of class
// `partial`, a special token in one of class `special`; a line break after ↵ in HTML; cut
// to `max` characters with an ellipsis.
export function showToken(parent, token, { max = Infinity, svg = false } = {}) {
  let room = max;
  for (const piece of tokenPieces(token)) {
    if (room <= 0) break;
    let shown = piece.text;
    const chars = [...shown];
    if (chars.length > room) shown = chars.slice(0, Math.max(room - 1, 0)).join("") + "…";
    room -= chars.length;
    const node = svg
      ? document.createElementNS("http://www.w3.org/2000/svg", "tspan")
      : document.createElement("span");
    node.textContent = shown;
    const kind = piece.ws ? "ws" : piece.kind;
    if (kind) node.setAttribute("class", kind);
    parent.appendChild(node);
    if (piece.newline && !svg) parent.appendChild(document.createElement("br"));
  }
}

// A token in running text: its `display_text` in quotes, as the wheel shows it.
export function quoted(token) {
  return t("token.quoted", { text: token.display_text });
}

// Plain text in running text (a prompt, not a token): in quotes, as it is.
export function quotedText(text) {
  return t("token.quoted", { text });
}

// A share as a teacher would say it: 0.5%, 1%, 20% (at most one decimal).
export function threshold(p) {
  return numberFormat({ style: "percent", maximumFractionDigits: 1 }).format(p);
}

// The catalog key of each character a screen reader should hear by name.
const NAMES = new Map([
  [".", "char.fullStop"],
  [",", "char.comma"],
  ["!", "char.exclamation"],
  ["?", "char.question"],
  [":", "char.colon"],
  [";", "char.semicolon"],
  ["'", "char.apostrophe"],
  ['"', "char.quotation"],
  ["-", "char.hyphen"],
  ["–", "char.dash"],
  ["—", "char.dash"],
  ["(", "char.openingBracket"],
  [")", "char.closingBracket"],
  ["…", "char.ellipsis"],
]);

// A token as a screen reader should say it: "mat, after a space", "comma".
export function spokenToken(text) {
  if (text === "") return t("spoken.empty");
  if (text === " ") return t("spoken.space");
  if (text === "\n") return t("spoken.newline");
  if (/^\s+$/.test(text)) return t("spoken.whitespace", { count: [...text].length });
  const lead = text.match(/^ +/);
  const rest = text.slice(lead ? lead[0].length : 0);
  const body = NAMES.has(rest) ? t(NAMES.get(rest)) : rest;
  return lead ? t("spoken.afterSpace", { token: body }) : body;
}

const SMALLEST_SHOWN = 0.00001; // below 0.001%: said as "< 0.001%", never 1e-5

// A probability for people: one decimal from 10%, two from 0.1%, two significant digits
// down to 0.001%, then "< 0.001%"; never scientific notation, never "100%" unless certain.
export function percent(p) {
  const as = (options) => numberFormat({ style: "percent", ...options }).format;
  if (p === 0) return as({ maximumFractionDigits: 0 })(0);
  if (p >= 1) return as({ maximumFractionDigits: 0 })(1);
  if (p >= 0.9995) return t("number.above", { value: as({ minimumFractionDigits: 1 })(0.999) });
  if (p >= 0.1) return as({ minimumFractionDigits: 1, maximumFractionDigits: 1 })(p);
  if (p >= 0.001) return as({ minimumFractionDigits: 2, maximumFractionDigits: 2 })(p);
  if (p >= SMALLEST_SHOWN) return as({ maximumSignificantDigits: 2 })(p);
  return t("number.below", { value: as({ minimumFractionDigits: 3 })(SMALLEST_SHOWN) });
}

export function count(n) {
  return numberFormat().format(n);
}

// A number with a fixed count of decimals (a temperature: 1.0, 0,3 in Spanish).
export function decimal(x, digits = 1) {
  return numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
}

export function dateTime(iso) {
  return dateTimeFormat({ dateStyle: "medium", timeStyle: "medium" }).format(new Date(iso));
}

export function shortDateTime(iso) {
  return dateTimeFormat({ dateStyle: "short", timeStyle: "short" }).format(new Date(iso));
}

// Likely tokens green, unlikely red, on a log scale from 1 in 10,000 to certain.
export function probabilityHue(p) {
  const x = Math.min(1, Math.max(0, (Math.log10(Math.max(p, 1e-12)) + 4) / 4));
  return Math.round(8 + 122 * x);
}

export function probabilityColour(p) {
  return `hsl(${probabilityHue(p)} 75% 82%)`;
}

export function probabilityBorder(p) {
  return `hsl(${probabilityHue(p)} 60% 38%)`;
}
