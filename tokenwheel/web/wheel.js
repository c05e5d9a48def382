// The wheel: one SVG wedge per above-threshold token (most likely first, clockwise from
// the top, sized by probability) and the Other wedge, which closes the circle.
//
// Inside the Other wedge, its most likely tokens (the server's `sample_tokens`, asked
// for with other_top_k) are drawn as thin wedges of their own, each at its true
// probability, most likely first, from where Other begins; the rest of Other (every token
// too unlikely to draw) fills the remainder, hatched. This is exactly how the server lays
// out Other for a spin: a draw that lands in Other is rescaled to the Other wedge and walks
// its tokens from the most to the least likely (inference/wheel.py), so the pointer stops
// inside the thin wedge of the very token a spin draws from Other, or in the rest when
// that token is too unlikely to be drawn. A grey band outside the rim marks all of Other.
//
// Drawn wedges ("items") are focusable buttons (one tab stop; arrow keys move between
// them, Enter or Space picks; a mouse click picks). A tap on a touch screen reads a wedge
// and a second tap on it picks it. Without `onPick` the wheel only shows: wedges are
// images to read, not buttons. Labels live in their own layer, outside the buttons.
//
// With sampling rules on (top-k, top-p, min-p: the answer's `sampling`), the wheel still
// shows the true probabilities; wedges the rules cut are greyed (a spin never lands on
// them, a student may still pick them) and kept wedges show their share of the spins
// (`sampling_probability`) beside the true probability. The server draws a spin on the
// wheel of kept shares; `landingAngle` puts the pointer at the same place inside the
// landed wedge of the wheel drawn here.

import { percent, showToken, spokenToken } from "./format.js";
import { t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const R = 100;
const LABEL_RADIUS = 60;
const WIDE = 0.15; // wedges this share of the wheel or more get level labels
const TURNS = 5; // full turns before the wheel settles
const SPIN_MS = 3600;
// Other's most likely tokens asked of the server (the API's maximum) ...
export const OTHER_TOP_K = 100;
// ... and drawn inside the Other wedge when at least this likely (0.1%: the lowest
// threshold the slider offers, about a pixel at the rim)
export const SMALLEST_DRAWN = 0.001;
const PALETTE = [
  "#8ecae6",
  "#ffc857",
  "#9ad17b",
  "#f4978e",
  "#c3aed6",
  "#f6bd60",
  "#7fc8b5",
  "#a9c5f5",
  "#ffafcc",
  "#d4e09b",
  "#e9c46a",
  "#9bf6ff",
];
const OTHER_PALETTE = ["#b9c5d8", "#dbe2ec"]; // Other's own tokens: greys, one after another
const CUT_FILL = "#ededf0"; // a wedge the sampling rules cut: greyed, its label still readable

// Whether any sampling rule is on for this wheel (an answer without `sampling`: none).
export function rulesOn(probs) {
  const rules = probs.sampling;
  return Boolean(rules && (rules.top_k > 0 || rules.top_p < 1 || rules.min_p > 0));
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function point(fraction, radius) {
  const a = 2 * Math.PI * fraction;
  return [radius * Math.sin(a), -radius * Math.cos(a)];
}

const f3 = (n) => n.toFixed(3);

function slicePath(start, end) {
  if (end - start >= 1 - 1e-9) {
    return `M 0 ${-R} A ${R} ${R} 0 1 1 0 ${R} A ${R} ${R} 0 1 1 0 ${-R} Z`;
  }
  const [x0, y0] = point(start, R);
  const [x1, y1] = point(end, R);
  const large = end - start > 0.5 ? 1 : 0;
  return `M 0 0 L ${f3(x0)} ${f3(y0)} A ${R} ${R} 0 ${large} 1 ${f3(x1)} ${f3(y1)} Z`;
}

// A ring segment between radii r0 < r1 (the band that marks the Other wedge).
function bandPath(start, end, r0, r1) {
  const span = Math.min(end - start, 1 - 1e-6);
  const [a, b] = point(start, r1);
  const [c, d] = point(start + span, r1);
  const [e, f] = point(start + span, r0);
  const [g, h] = point(start, r0);
  const large = span > 0.5 ? 1 : 0;
  return (
    `M ${f3(a)} ${f3(b)} A ${r1} ${r1} 0 ${large} 1 ${f3(c)} ${f3(d)} ` +
    `L ${f3(e)} ${f3(f)} A ${r0} ${r0} 0 ${large} 0 ${f3(g)} ${f3(h)} Z`
  );
}

const mod = (a, n) => ((a % n) + n) % n;

// The wedges as the server lays them out for /spin: cumulative probabilities, the last
// wedge ending at exactly one turn. `index` is the server's `landed.wedge_index`.
export function layout(probs) {
  const wedges = [];
  let start = 0;
  probs.above_threshold_tokens.forEach((token, index) => {
    const end = start + token.probability;
    wedges.push({ kind: "token", index, token, start, end });
    start = end;
  });
  const other = probs.other_category;
  if (other.token_count > 0 && other.total_probability > 0) {
    wedges.push({ kind: "other", index: wedges.length, other, start, end: 1 });
  } else if (wedges.length) {
    wedges[wedges.length - 1].end = 1;
  }
  return wedges;
}

// What is drawn: each token wedge; inside the Other wedge, its tokens of at least
// SMALLEST_DRAWN (most likely first, at their true size) and then the rest of Other.
// Each item: {kind: "token" | "sample" | "rest", wedge (the server's wedge index), start,
// end, rank (1 = most likely; for the rest, the rank of its first token), token | other}.
// With rules on, `cut` marks an item no spin can land on (a cut token; the rest of Other
// when the rules keep none of its tokens).
export function drawnItems(probs) {
  const items = [];
  const cut = (token) => token.kept === false;
  for (const wedge of layout(probs)) {
    if (wedge.kind === "token") {
      items.push({ ...wedge, wedge: wedge.index, rank: wedge.index + 1, cut: cut(wedge.token) });
      continue;
    }
    const other = wedge.other;
    let start = wedge.start;
    let shown = 0;
    let share = 0;
    let keptShown = 0;
    for (const token of other.sample_tokens) {
      // most likely first: once one is too small to draw, so are all that follow
      if (token.probability < SMALLEST_DRAWN || start + token.probability >= 1) break;
      const end = start + token.probability;
      const rank = wedge.index + shown + 1;
      items.push({ kind: "sample", wedge: wedge.index, token, start, end, rank, cut: cut(token) });
      start = end;
      shown += 1;
      share += token.probability;
      if (!cut(token)) keptShown += 1;
    }
    const rest = {
      count: other.token_count - shown,
      share: Math.max(other.total_probability - share, 0),
    };
    // kept_token_count is absent from answers that predate the rules: all kept
    const restCut = other.kept_token_count !== undefined && other.kept_token_count <= keptShown;
    if (rest.count > 0) {
      const rank = wedge.index + shown + 1;
      items.push({ kind: "rest", wedge: wedge.index, other, rest, start, end: 1, rank, cut: restCut });
    } else if (items.length) {
      items[items.length - 1].end = 1;
    }
  }
  return items;
}

// Summary of what is drawn: {tokens: wedges of one token, head, samples, drawnShare}.
export function drawnSummary(items) {
  const samples = items.filter((item) => item.kind === "sample");
  return {
    tokens: items.filter((item) => item.kind !== "rest").length,
    samples: samples.length,
    sampleShare: samples.reduce((sum, item) => sum + item.token.probability, 0),
  };
}

export class Wheel {
  constructor(svg, { onPick = null, onShow, onArm = () => {} }) {
    this.svg = svg;
    this.onPick = onPick;
    this.onShow = onShow; // an item was focused, hovered or tapped: (item, {armed})
    this.onArm = onArm; // a tap chose an item to pick with a second action (or null)
    this.items = [];
    this.wedges = [];
    this.nodes = [];
    this.focusIndex = 0;
    this.armed = null; // the index of the item a first tap read
    this.rotation = 0;
    this.enabled = true;
    this.animation = null;

    const defs = el("defs", {}, svg);
    const hatch = el(
      "pattern",
      { id: `${svg.id}-hatch`, width: 6, height: 6, patternUnits: "userSpaceOnUse" },
      defs,
    );
    el("rect", { width: 6, height: 6, fill: "#e4e4e7" }, hatch);
    el("path", { d: "M -1 1 L 1 -1 M 0 6 L 6 0 M 5 7 L 7 5", stroke: "#b4b4bd" }, hatch);
    this.hatch = `url(#${svg.id}-hatch)`;

    this.rotor = el("g", { class: "rotor" }, svg);
    this.layer = el("g", { class: "wedges" }, this.rotor);
    this.band = el("path", { class: "other-band", d: "", "aria-hidden": "true" }, this.rotor);
    this.labels = el("g", { class: "labels", "aria-hidden": "true" }, this.rotor);
    this.landedRing = el("path", { class: "landed-ring", d: "" }, this.rotor);
    this.focusRing = el("g", { class: "focus-ring" }, this.rotor);
    this.focusOuter = el("path", { class: "focus-outer", d: "" }, this.focusRing);
    this.focusInner = el("path", { class: "focus-inner", d: "" }, this.focusRing);
    this.focusTick = el("path", { class: "focus-tick", d: "" }, this.focusRing);
    el("circle", { class: "rim", r: R }, svg);
    el("circle", { class: "hub", r: 7 }, svg);
    el(
      "path",
      { class: "pointer", "data-testid": "pointer", d: "M -8 -113 L 8 -113 L 0 -95 Z" },
      svg,
    );

    // Chromium makes an SVG element with focus listeners a tab stop of its own: the wheel
    // would take two Tabs (the svg, then its wedge). tabindex -1 keeps it out of the order.
    svg.setAttribute("tabindex", "-1");
    svg.addEventListener("keydown", (event) => this.keydown(event));
    svg.addEventListener("pointerdown", (event) => {
      this.lastPointer = event.pointerType;
    });
    svg.addEventListener("click", (event) => {
      const node = event.target.closest(".wedge");
      if (!node) return;
      const index = Number(node.dataset.index);
      const type = event.pointerType || this.lastPointer;
      if (this.onPick && (type === "touch" || type === "pen")) this.tap(index);
      else this.pick(index);
    });
    svg.addEventListener("focusin", (event) => {
      const node = event.target.closest(".wedge");
      if (!node) return;
      const index = Number(node.dataset.index);
      this.focusIndex = index;
      this.showFocus(index);
      this.onShow(this.items[index], { armed: this.armed === index });
    });
    svg.addEventListener("mouseover", (event) => {
      const node = event.target.closest(".wedge");
      if (node) this.onShow(this.items[Number(node.dataset.index)], { armed: false, hover: true });
    });
    svg.addEventListener("focusout", () => {
      if (this.armed === null) this.showFocus(null);
    });
  }

  draw(probs) {
    const hadFocus = this.svg.contains(document.activeElement);
    this.cancelAnimation();
    this.setRotation(0);
    this.disarm();
    this.landedRing.setAttribute("d", "");
    this.showFocus(null);
    this.layer.replaceChildren();
    this.labels.replaceChildren();
    this.wedges = layout(probs);
    this.rules = rulesOn(probs);
    this.items = drawnItems(probs);
    this.nodes = this.items.map((item, i) => this.drawItem(item, i));
    const other = this.wedges.find((w) => w.kind === "other");
    this.band.setAttribute("d", other ? bandPath(other.start, other.end, R + 1.2, R + 5) : "");
    this.band.setAttribute("fill", this.hatch);
    this.focusIndex = Math.max(0, Math.min(this.focusIndex, this.nodes.length - 1));
    this.nodes.forEach((node, i) => node.setAttribute("tabindex", i === this.focusIndex ? 0 : -1));
    if (hadFocus) this.nodes[this.focusIndex]?.focus(); // the old wedges are gone
    const summary = drawnSummary(this.items);
    this.svg.dataset.temperature = String(probs.temperature);
    this.svg.dataset.threshold = String(probs.threshold);
    this.svg.dataset.wedges = String(this.wedges.length);
    this.svg.dataset.tokenWedges = String(summary.tokens);
    this.svg.dataset.rules = String(this.rules);
  }

  // The accessible name (and tooltip) of an item.
  itemName(item) {
    const verb = this.onPick ? "pick" : "show";
    let name;
    if (item.kind === "rest") {
      name = t(`wheel.rest.${verb}`, { count: item.rest.count, share: percent(item.rest.share) });
    } else {
      const params = {
        token: spokenToken(item.token.token_text),
        share: percent(item.token.probability),
        rank: item.rank,
      };
      name = t(`wheel.${item.kind}.${verb}`, params);
    }
    if (!this.rules) return name;
    if (item.cut) return t("wheel.cutName", { name });
    if (item.kind === "rest") return name;
    return t("wheel.keptName", { name, kept: percent(item.token.sampling_probability) });
  }

  // A token's share as its label shows it: with rules on, the true probability and, for a
  // kept token, its share of the spins.
  shareText(item) {
    const share = percent(item.token.probability);
    if (!this.rules || item.cut) return share;
    return t("wheel.keptShare", { share, kept: percent(item.token.sampling_probability) });
  }

  drawItem(item, i) {
    const role = this.onPick ? "button" : "img";
    // thinner than ~1.5 units of rim (of 628): a border line would cover all its colour
    const thin = 2 * Math.PI * R * (item.end - item.start) < 1.5 ? " thin" : "";
    const kind = item.kind === "token" ? "token" : `other ${item.kind}`;
    const cut = this.rules && item.cut ? " cut" : "";
    const g = el("g", {
      class: `wedge ${kind}${thin}${cut}`,
      role,
      "data-index": i,
      "data-wedge": item.wedge, // the server's wedge index (the Other wedge for its parts)
      "data-kind": item.kind,
      "data-start": item.start, // fractions of a turn from the top, clockwise
      "data-end": item.end,
      "data-rank": item.rank,
      "data-kept": String(!item.cut),
    });
    let fill = PALETTE[i % PALETTE.length];
    if (item.kind === "sample") fill = OTHER_PALETTE[(item.rank - item.wedge - 1) % 2];
    if (item.kind === "rest") fill = this.hatch;
    if (cut) fill = CUT_FILL;
    el("path", { class: "slice", d: slicePath(item.start, item.end), fill }, g);
    const name = this.itemName(item);
    g.setAttribute("aria-label", name);
    el("title", {}, g).textContent = name;
    if (item.token) {
      g.dataset.tokenId = String(item.token.token_id);
      this.label(item, item.token, this.shareText(item));
    } else {
      const share = percent(item.other.total_probability);
      this.label(item, null, t("wheel.otherShare", { share }));
    }
    this.layer.appendChild(g);
    return g;
  }

  // Wide wedges get a level two-line label (token, probability); narrow ones a label
  // along the radius, as large as the wedge allows; the thinnest none (their accessible
  // name and tooltip still say it all).
  label(item, token, share) {
    const span = item.end - item.start;
    const mid = (item.start + item.end) / 2;
    const attrs = { class: `label${this.rules && item.cut ? " cut" : ""}` };
    const write = (node, max) => {
      if (token === null) node.textContent = t("wheel.other");
      else showToken(node, token, { max, svg: true });
    };
    if (span >= WIDE) {
      const [x, y] = span >= 1 - 1e-9 ? [0, 40] : point(mid, 56);
      const node = el("text", { ...attrs, x: x.toFixed(2), y: (y - 5).toFixed(2) }, this.labels);
      node.setAttribute("font-size", "13");
      write(node, 10);
      const line = el("text", { ...attrs, x: x.toFixed(2), y: (y + 9).toFixed(2) }, this.labels);
      line.setAttribute("font-size", "10");
      line.classList.add("share");
      line.textContent = share;
      return;
    }
    const arc = 2 * Math.PI * LABEL_RADIUS * span;
    let size = Math.min(10, arc * 0.62);
    if (size < 4.2) return;
    const withShare = size >= 6.5;
    const node = el("text", attrs, this.labels);
    write(node, withShare ? 9 : 12);
    if (withShare) el("tspan", { class: "share" }, node).textContent = ` ${share}`;
    size = Math.min(size, 76 / (0.62 * [...node.textContent].length));
    const degrees = 360 * mid;
    const transform =
      degrees <= 180
        ? `rotate(${degrees - 90}) translate(${LABEL_RADIUS} 0)`
        : `rotate(${degrees + 90}) translate(${-LABEL_RADIUS} 0)`;
    node.setAttribute("transform", transform);
    node.setAttribute("font-size", size.toFixed(2));
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.svg.classList.toggle("disabled", !enabled);
    this.nodes.forEach((node) => node.setAttribute("aria-disabled", String(!enabled)));
  }

  pick(index) {
    if (!this.onPick || !this.enabled || !this.items[index]) return;
    this.moveFocus(index, false);
    this.disarm();
    this.onPick(this.items[index]);
  }

  // A tap reads a wedge; a second tap on the same wedge picks it.
  tap(index) {
    if (this.armed === index) {
      this.pick(index);
      return;
    }
    this.armed = index;
    this.moveFocus(index, false);
    this.showFocus(index);
    this.svg.dataset.armed = String(index);
    this.onShow(this.items[index], { armed: true });
    this.onArm(this.items[index]);
  }

  disarm() {
    if (this.armed === null) return;
    this.armed = null;
    delete this.svg.dataset.armed;
    this.onArm(null);
  }

  pickArmed() {
    if (this.armed !== null) this.pick(this.armed);
  }

  moveFocus(index, focus = true) {
    if (!this.nodes.length) return;
    this.focusIndex = mod(index, this.nodes.length);
    this.nodes.forEach((node, i) => node.setAttribute("tabindex", i === this.focusIndex ? 0 : -1));
    if (focus) this.nodes[this.focusIndex].focus();
  }

  // A ring around the focused (or tapped) wedge, light inside dark so that it shows on
  // any colour and on the black rim, and a tick outside the rim that finds thin wedges.
  showFocus(index) {
    const item = index === null ? null : this.items[index];
    const d = item ? slicePath(item.start, item.end) : "";
    this.focusOuter.setAttribute("d", d);
    this.focusInner.setAttribute("d", d);
    if (!item) {
      this.focusTick.setAttribute("d", "");
      return;
    }
    const mid = (item.start + item.end) / 2;
    const [x0, y0] = point(mid, R + 2);
    const [x1, y1] = point(mid, R + 10);
    this.focusTick.setAttribute("d", `M ${f3(x0)} ${f3(y0)} L ${f3(x1)} ${f3(y1)}`);
  }

  keydown(event) {
    const node = event.target.closest?.(".wedge");
    if (!node) return;
    const index = Number(node.dataset.index);
    const moves = {
      ArrowRight: index + 1,
      ArrowDown: index + 1,
      ArrowLeft: index - 1,
      ArrowUp: index - 1,
      PageDown: Math.min(index + 10, this.nodes.length - 1),
      PageUp: Math.max(index - 10, 0),
      Home: 0,
      End: this.nodes.length - 1,
    };
    if (event.key in moves) {
      event.preventDefault();
      this.disarm();
      this.moveFocus(moves[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.pick(index);
    }
  }

  // The spin's landing: `wedgeIndex` is the server's `landed.wedge_index`; in the Other
  // wedge, the drawn token `tokenId` if it has a wedge of its own, else the rest.
  markLanded(wedgeIndex, tokenId = null) {
    const index = this.landedIndex(wedgeIndex, tokenId);
    const item = this.items[index];
    this.landedRing.setAttribute("d", item ? slicePath(item.start, item.end) : "");
    this.nodes.forEach((node, i) => node.classList.toggle("landed", i === index));
    return index;
  }

  // The drawn item a landing falls in (see markLanded); -1 if none.
  landedIndex(wedgeIndex, tokenId = null) {
    const here = (item) => item.wedge === wedgeIndex;
    let index = this.items.findIndex(
      (item) => here(item) && item.kind !== "rest" && item.token.token_id === tokenId,
    );
    if (index < 0) index = this.items.findIndex((item) => here(item) && item.kind !== "sample");
    if (index < 0) index = this.items.findIndex((item) => item.wedge === wedgeIndex);
    return index;
  }

  // Where the pointer stops on this wheel for a spin's answer, in degrees from the top.
  // With every rule off the server's wheel is this one: its `angle`. With rules on the
  // server drew on the wheel of kept shares: the same place inside the landed wedge (its
  // fraction of the way from start_angle to end_angle), or inside the Other wedge, the
  // middle of the drawn token's thin wedge (or of the rest).
  landingAngle(result) {
    if (!this.rules) return result.angle;
    const { landed, appended_token: token } = result;
    const item = this.items[this.landedIndex(landed.wedge_index, token.token_id)];
    if (!item) return result.angle;
    let fraction = 0.5;
    const span = landed.end_angle - landed.start_angle;
    if (landed.wedge === "token" && span > 0) {
      fraction = Math.min(Math.max((result.angle - landed.start_angle) / span, 0), 1);
    }
    return 360 * (item.start + fraction * (item.end - item.start));
  }

  setRotation(degrees) {
    this.rotation = degrees;
    this.rotor.style.transform = `rotate(${degrees}deg)`;
    this.svg.dataset.rotation = String(degrees);
  }

  cancelAnimation() {
    if (this.animation) {
      this.animation.cancel();
      this.animation = null;
    }
  }

  // Turn the wheel so that `angle` (degrees clockwise from the top of the wheel) ends
  // under the pointer. With reduced motion it jumps there at once.
  async spinTo(angle, reducedMotion) {
    this.disarm();
    const start = this.rotation;
    const settle = mod(-angle - start, 360);
    const target = start + (reducedMotion ? 0 : TURNS * 360) + settle;
    this.svg.dataset.angle = String(angle);
    if (reducedMotion) {
      this.stopAt(target);
      return;
    }
    this.cancelAnimation();
    this.svg.dataset.spinning = "true";
    this.animation = this.rotor.animate(
      [{ transform: `rotate(${start}deg)` }, { transform: `rotate(${target}deg)` }],
      { duration: SPIN_MS, easing: "cubic-bezier(0.12, 0.65, 0.12, 1)", fill: "forwards" },
    );
    try {
      await this.animation.finished;
    } catch {
      return; // cancelled by a redraw
    } finally {
      delete this.svg.dataset.spinning;
    }
    this.stopAt(target);
    this.cancelAnimation();
  }

  stopAt(degrees) {
    this.setRotation(degrees);
    this.svg.dataset.stoppedRotation = String(degrees); // kept after the next redraw
  }
}
