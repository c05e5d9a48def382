// "Greedy vs sampling": the session's text continued twice by the server (POST
// /api/sessions/{id}/compare), nothing appended, shown in a dialog side by side (stacked
// on a phone): greedy decoding (the most likely token at every step) and sampling (a spin
// at every step, at the page's temperature and sampling rules, with a seed the page
// picks). Each token is a chip coloured by its probability, with that probability written
// under it (the colour is never the only way to read it); each path says how likely it
// was in all, and a line says how likely the student's own text was. "Sample again"
// draws a new sampled path with a new seed; the greedy path stays the same.

import { call } from "./api.js";
import {
  count,
  decimal,
  percent,
  probabilityBorder,
  probabilityColour,
  quotedText,
  showToken,
} from "./format.js";
import { t } from "./i18n.js";
import { rulesOf } from "./rules.js";
import { oneIn } from "./surprise.js";
import { rulesOn } from "./wheel.js";

export const STEPS = [5, 10, 20];
export const DEFAULT_STEPS = 10;

const LN2 = Math.log(2);
const CURRENT_SHOWN = 80; // the student's text is quoted up to its last 80 characters

// A seed the page can show exactly (as sample-chart.js: below 2**53, which a JavaScript
// number holds; the server's own seeds go up to 2**63).
function newSeed() {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high % 2 ** 21) * 2 ** 32 + low;
}

// The last characters of a long text, after an ellipsis.
function tail(text, max) {
  const chars = [...text];
  return chars.length > max ? `…${chars.slice(chars.length - max + 1).join("")}` : text;
}

// "a 1 in 4,530 chance (12.1 bits)" for a natural log-probability
function chance(logProbability) {
  const nats = -logProbability;
  return { chance: oneIn(nats), bits: decimal(Math.max(nats, 0) / LN2, 1) };
}

export class CompareView {
  // `ui`: {dialog, summary, rules, steps (the radio inputs), stepLabels (their text
  // spans), current, again, greedy and sampled: {title, tokens (an <ol>), chance,
  // stopped}}
  constructor(ui) {
    this.ui = ui;
    this.result = null;
    this.probs = null;
    this.historyLength = 0;
    this.opener = null;
    ui.dialog.addEventListener("close", () => this.opener?.focus());
    for (const input of ui.steps) input.checked = Number(input.value) === DEFAULT_STEPS;
  }

  steps() {
    const checked = this.ui.steps.find((input) => input.checked);
    return checked ? Number(checked.value) : DEFAULT_STEPS;
  }

  // Continue the text of `probs`'s wheel (its temperature and rules) greedily and by
  // sampling; `seed` null: a new one. `historyLength`: the generated tokens of the text,
  // for the line about it. `opener` gets the focus back when the dialog closes.
  async run(sessionId, probs, historyLength, { seed = null, opener = null } = {}) {
    const body = {
      steps: this.steps(),
      seed: seed ?? newSeed(),
      temperature: probs.temperature,
      ...rulesOf(probs),
    };
    const result = await call("POST", `/api/sessions/${sessionId}/compare`, body);
    this.result = result;
    this.historyLength = historyLength;
    if (opener) this.opener = opener;
    this.render();
    if (!this.ui.dialog.open) this.ui.dialog.showModal();
  }

  // The seed of the sampled path on screen: a new number of steps keeps it, so the
  // shorter path is the start of the longer one (one draw a step).
  seed() {
    return this.result?.seed ?? null;
  }

  render() {
    const { result, ui } = this;
    for (const [i, input] of ui.steps.entries()) {
      ui.stepLabels[i].textContent = count(Number(input.value));
    }
    if (!result) return;
    // the choice shown is the one answered (a change made while a request ran is dropped)
    for (const input of ui.steps) input.checked = Number(input.value) === result.steps;
    ui.summary.textContent = t("compare.summary", {
      n: count(result.steps),
      temperature: decimal(result.temperature),
    });
    ui.rules.hidden = !rulesOn(result);
    ui.rules.textContent = t("compare.rules");
    ui.dialog.dataset.seed = String(result.seed);
    ui.dialog.dataset.steps = String(result.steps);
    ui.greedy.title.textContent = t("compare.greedy");
    ui.sampled.title.textContent = t("compare.sampled", { seed: String(result.seed) });
    this.renderPath(ui.greedy, result.greedy);
    this.renderPath(ui.sampled, result.sampled);
    const current = result.current;
    ui.current.textContent = this.historyLength
      ? t("compare.current", {
          count: this.historyLength,
          text: quotedText(tail(current.text, CURRENT_SHOWN)),
          ...chance(current.log_probability),
        })
      : t("compare.currentNone");
  }

  renderPath(view, path) {
    view.tokens.replaceChildren();
    view.tokens.dataset.tokens = path.tokens.map((token) => token.token_id).join(" ");
    for (const token of path.tokens) {
      const item = document.createElement("li");
      item.className = "path-token";
      item.dataset.tokenId = String(token.token_id);
      const chip = document.createElement("span");
      chip.className = "path-chip";
      chip.style.backgroundColor = probabilityColour(token.probability);
      chip.style.borderBottomColor = probabilityBorder(token.probability);
      showToken(chip, token);
      const share = document.createElement("span");
      share.className = "path-p";
      share.textContent = percent(token.probability);
      item.append(chip, share);
      view.tokens.appendChild(item);
    }
    view.chance.textContent = path.tokens.length
      ? t("compare.chance", { count: path.tokens.length, ...chance(path.log_probability) })
      : "";
    view.stopped.hidden = path.stopped === "steps";
    view.stopped.textContent = path.stopped === "steps" ? "" : t(`compare.stopped.${path.stopped}`);
  }
}
