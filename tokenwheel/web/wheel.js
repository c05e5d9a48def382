// The wheel: one SVG wedge per above-threshold token (most likely first, clockwise from
// the top, sized by probability) and the Other wedge, which closes the circle. Wedges are
// focusable buttons (one tab stop; arrow keys move between them, Enter or Space picks).
// Without `onPick` the wheel only shows: wedges are images to read, not buttons.

import { count, percent, showToken, spokenToken } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const R = 100;
const LABEL_RADIUS = 60;
const WIDE = 0.15; // wedges this share of the wheel or more get level labels
const TURNS = 5; // full turns before the wheel settles
const SPIN_MS = 3600;
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

function slicePath(start, end) {
  if (end - start >= 1 - 1e-9) {
    return `M 0 ${-R} A ${R} ${R} 0 1 1 0 ${R} A ${R} ${R} 0 1 1 0 ${-R} Z`;
  }
  const [x0, y0] = point(start, R);
  const [x1, y1] = point(end, R);
  const large = end - start > 0.5 ? 1 : 0;
  const f = (n) => n.toFixed(3);
  return `M 0 0 L ${f(x0)} ${f(y0)} A ${R} ${R} 0 ${large} 1 ${f(x1)} ${f(y1)} Z`;
}

const mod = (a, n) => ((a % n) + n) % n;

// The wedges as the server lays them out for /spin: cumulative probabilities, the last
// wedge ending at exactly one turn.
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

export class Wheel {
  constructor(svg, { onPick = null, onShow }) {
    this.svg = svg;
    this.onPick = onPick;
    this.onShow = onShow; // a wedge was focused or hovered
    this.wedges = [];
    this.nodes = [];
    this.focusIndex = 0;
    this.rotation = 0;
    this.enabled = true;
    this.animation = null;

    const defs = el("defs", {}, svg);
    const hatch = el(
      "pattern",
      { id: "other-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse" },
      defs,
    );
    el("rect", { width: 6, height: 6, fill: "#e4e4e7" }, hatch);
    el("path", { d: "M -1 1 L 1 -1 M 0 6 L 6 0 M 5 7 L 7 5", stroke: "#c4c4cc" }, hatch);

    this.rotor = el("g", { class: "rotor" }, svg);
    this.layer = el("g", { class: "wedges" }, this.rotor);
    this.landedRing = el("path", { class: "landed-ring", d: "" }, this.rotor);
    this.focusRing = el("path", { class: "focus-ring", d: "" }, this.rotor);
    el("circle", { class: "rim", r: R }, svg);
    el("circle", { class: "hub", r: 7 }, svg);
    el("path", { class: "pointer", d: "M -8 -113 L 8 -113 L 0 -95 Z" }, svg);

    svg.addEventListener("keydown", (event) => this.keydown(event));
    svg.addEventListener("click", (event) => {
      const node = event.target.closest(".wedge");
      if (node) this.pick(Number(node.dataset.index));
    });
    svg.addEventListener("focusin", (event) => {
      const node = event.target.closest(".wedge");
      if (!node) return;
      this.showFocus(Number(node.dataset.index));
      this.onShow(this.wedges[Number(node.dataset.index)]);
    });
    svg.addEventListener("mouseover", (event) => {
      const node = event.target.closest(".wedge");
      if (node) this.onShow(this.wedges[Number(node.dataset.index)]);
    });
    svg.addEventListener("focusout", () => this.focusRing.setAttribute("d", ""));
  }

  draw(probs) {
    const hadFocus = this.svg.contains(document.activeElement);
    this.cancelAnimation();
    this.setRotation(0);
    this.landedRing.setAttribute("d", "");
    this.focusRing.setAttribute("d", "");
    this.layer.replaceChildren();
    this.wedges = layout(probs);
    this.nodes = this.wedges.map((wedge, i) => this.drawWedge(wedge, i));
    this.focusIndex = Math.min(this.focusIndex, this.nodes.length - 1);
    this.nodes.forEach((node, i) => node.setAttribute("tabindex", i === this.focusIndex ? 0 : -1));
    if (hadFocus) this.nodes[this.focusIndex]?.focus(); // the old wedges are gone
    this.svg.dataset.temperature = String(probs.temperature);
    this.svg.dataset.threshold = String(probs.threshold);
    this.svg.dataset.wedges = String(this.nodes.length);
  }

  drawWedge(wedge, i) {
    const role = this.onPick ? "button" : "img";
    // thinner than ~1.5 units of rim (of 628): a border line would cover all its colour
    const thin = 2 * Math.PI * R * (wedge.end - wedge.start) < 1.5 ? " thin" : "";
    const g = el("g", { class: `wedge ${wedge.kind}${thin}`, role, "data-index": i });
    const verb = this.onPick ? "Pick " : "";
    const fill = wedge.kind === "other" ? "url(#other-hatch)" : PALETTE[i % PALETTE.length];
    el("path", { class: "slice", d: slicePath(wedge.start, wedge.end), fill }, g);
    let name;
    if (wedge.kind === "token") {
      const { token } = wedge;
      name = `${verb}${spokenToken(token.token_text)}, ${percent(token.probability)}`;
      this.label(g, wedge, token, percent(token.probability));
      g.dataset.tokenId = String(token.token_id);
    } else {
      const { other } = wedge;
      name =
        `Other: ${count(other.token_count)} tokens, ${percent(other.total_probability)} ` +
        (this.onPick ? "together. Pick to draw one of them" : "together");
      this.label(g, wedge, null, percent(other.total_probability));
    }
    g.setAttribute("aria-label", name);
    el("title", {}, g).textContent = name;
    this.layer.appendChild(g);
    return g;
  }

  // Wide wedges get a level two-line label (token, probability); narrow ones a label
  // along the radius, as large as the wedge allows; the thinnest none (their accessible
  // name and tooltip still say it all).
  label(g, wedge, token, share) {
    const span = wedge.end - wedge.start;
    const mid = (wedge.start + wedge.end) / 2;
    const attrs = { class: "label", "aria-hidden": "true" };
    const write = (node, max) => {
      if (token === null) node.textContent = "Other";
      else showToken(node, token, { max, svg: true });
    };
    if (span >= WIDE) {
      const [x, y] = span >= 1 - 1e-9 ? [0, 40] : point(mid, 56);
      const node = el("text", { ...attrs, x: x.toFixed(2), y: (y - 5).toFixed(2) }, g);
      node.setAttribute("font-size", "13");
      write(node, 10);
      const line = el("text", { ...attrs, x: x.toFixed(2), y: (y + 9).toFixed(2) }, g);
      line.setAttribute("font-size", "10");
      line.classList.add("share");
      line.textContent = share;
      return;
    }
    const arc = 2 * Math.PI * LABEL_RADIUS * span;
    let size = Math.min(10, arc * 0.62);
    if (size < 4.2) return;
    const withShare = size >= 6.5;
    const node = el("text", attrs, g);
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
    if (!this.onPick || !this.enabled || !this.wedges[index]) return;
    this.moveFocus(index, false);
    this.onPick(this.wedges[index]);
  }

  moveFocus(index, focus = true) {
    if (!this.nodes.length) return;
    this.focusIndex = mod(index, this.nodes.length);
    this.nodes.forEach((node, i) => node.setAttribute("tabindex", i === this.focusIndex ? 0 : -1));
    if (focus) this.nodes[this.focusIndex].focus();
  }

  showFocus(index) {
    const wedge = this.wedges[index];
    this.focusRing.setAttribute("d", wedge ? slicePath(wedge.start, wedge.end) : "");
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
      Home: 0,
      End: this.nodes.length - 1,
    };
    if (event.key in moves) {
      event.preventDefault();
      this.moveFocus(moves[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.pick(index);
    }
  }

  markLanded(index) {
    const wedge = this.wedges[index];
    this.landedRing.setAttribute("d", wedge ? slicePath(wedge.start, wedge.end) : "");
    this.nodes.forEach((node, i) => node.classList.toggle("landed", i === index));
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
    const start = this.rotation;
    const settle = mod(-angle - start, 360);
    const target = start + (reducedMotion ? 0 : TURNS * 360) + settle;
    this.svg.dataset.angle = String(angle);
    if (reducedMotion) {
      this.stopAt(target);
      return;
    }
    this.cancelAnimation();
    this.animation = this.rotor.animate(
      [{ transform: `rotate(${start}deg)` }, { transform: `rotate(${target}deg)` }],
      { duration: SPIN_MS, easing: "cubic-bezier(0.12, 0.65, 0.12, 1)", fill: "forwards" },
    );
    try {
      await this.animation.finished;
    } catch {
      return; // cancelled by a redraw
    }
    this.stopAt(target);
    this.cancelAnimation();
  }

  stopAt(degrees) {
    this.setRotation(degrees);
    this.svg.dataset.stoppedRotation = String(degrees); // kept after the next redraw
  }
}
