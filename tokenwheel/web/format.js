// How tokens and numbers are shown: tokens as the server's `display_text`, percentages,
// colours.

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
  return `“${token.display_text}”`;
}

// Plain text in running text (a prompt, not a token): in quotes, as it is.
export function quotedText(text) {
  return `“${text}”`;
}

// A threshold as a teacher would say it: 0.5%, 1%, 20%.
export function threshold(p) {
  return `${Number((p * 100).toFixed(1))}%`;
}

const NAMES = new Map([
  [".", "full stop"],
  [",", "comma"],
  ["!", "exclamation mark"],
  ["?", "question mark"],
  [":", "colon"],
  [";", "semicolon"],
  ["'", "apostrophe"],
  ['"', "quotation mark"],
  ["-", "hyphen"],
  ["–", "dash"],
  ["—", "dash"],
  ["(", "opening bracket"],
  [")", "closing bracket"],
  ["…", "ellipsis"],
]);

// A token as a screen reader should say it: "mat, after a space", "comma".
export function spokenToken(text) {
  if (text === "") return "an empty token";
  if (text === " ") return "a space";
  if (text === "\n") return "a new line";
  if (/^\s+$/.test(text)) return `${[...text].length} whitespace characters`;
  const lead = text.match(/^ +/);
  const rest = text.slice(lead ? lead[0].length : 0);
  const body = NAMES.get(rest) ?? rest;
  return lead ? `${body}, after a space` : body;
}

export function percent(p) {
  if (p >= 0.995) return "100%";
  if (p >= 0.1) return `${(p * 100).toFixed(1)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(2)}%`;
  if (p >= 0.00001) return `${(p * 100).toPrecision(2)}%`;
  if (p === 0) return "0%";
  return `${(p * 100).toExponential(1)}%`;
}

export function count(n) {
  return n.toLocaleString("en-US");
}

// Likely tokens green, unlikely red, on a log scale from 1 in 10,000 to certain.
export function probabilityHue(p) {
  const t = Math.min(1, Math.max(0, (Math.log10(Math.max(p, 1e-12)) + 4) / 4));
  return Math.round(8 + 122 * t);
}

export function probabilityColour(p) {
  return `hsl(${probabilityHue(p)} 75% 82%)`;
}

export function probabilityBorder(p) {
  return `hsl(${probabilityHue(p)} 60% 38%)`;
}
