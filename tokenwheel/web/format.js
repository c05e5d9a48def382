// How tokens and numbers are shown: visible whitespace, percentages, colours.

const GLYPHS = new Map([
  [" ", "·"],
  ["\n", "↵"],
  ["\t", "⇥"],
  ["\r", "␍"],
]);

// Control characters other than the ones above show as their code point.
function glyph(ch) {
  if (GLYPHS.has(ch)) return GLYPHS.get(ch);
  const code = ch.codePointAt(0);
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, "0")}`;
  return null;
}

// Pieces of a token's text: [{text, ws}] where ws marks a whitespace glyph, so callers can
// style glyphs faintly. An empty token shows as ∅.
function tokenPieces(text) {
  if (text === "") return [{ text: "∅", ws: true }];
  const pieces = [];
  for (const ch of text) {
    const shown = glyph(ch);
    const ws = shown !== null;
    const last = pieces[pieces.length - 1];
    if (last && !last.newline && last.ws === ws && ch !== "\n") last.text += shown ?? ch;
    else pieces.push({ text: shown ?? ch, ws, newline: ch === "\n" });
  }
  return pieces;
}

// Fill `parent` with a token's visible form, whitespace glyphs in their own faint
// elements (`span` in HTML, `tspan` in SVG), cut to `max` characters with an ellipsis.
export function showToken(parent, text, { max = Infinity, svg = false } = {}) {
  let room = max;
  for (const piece of tokenPieces(text)) {
    if (room <= 0) break;
    let shown = piece.text;
    const chars = [...shown];
    if (chars.length > room) shown = chars.slice(0, Math.max(room - 1, 0)).join("") + "…";
    room -= chars.length;
    const node = svg
      ? document.createElementNS("http://www.w3.org/2000/svg", "tspan")
      : document.createElement("span");
    node.textContent = shown;
    if (piece.ws) node.setAttribute("class", "ws");
    parent.appendChild(node);
    if (piece.newline && !svg) parent.appendChild(document.createElement("br"));
  }
}

export function visibleToken(text) {
  return tokenPieces(text)
    .map((p) => p.text)
    .join("");
}

// A token in running text: its visible form in quotes, as the wheel shows it.
export function quoted(text) {
  return `“${visibleToken(text)}”`;
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
  const body = NAMES.get(rest) ?? visibleToken(rest);
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
