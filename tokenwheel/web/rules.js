// The sampling rules on the student page: top-k, top-p and min-p, each a slider whose first
// step is "off", each with a line that says in plain words what it does now, and a line
// that says how many tokens the rules keep and how likely they are together. The rules go
// with every wheel, append and spin (docs/api.md, "Sampling rules"); the wheel greys what
// they cut (wheel.js).

import { count, percent, threshold as shareText } from "./format.js";
import { t } from "./i18n.js";
import { rulesOn } from "./wheel.js";

// The steps each slider offers, "off" first (the API's values for off: 0, 1, 0)
export const TOP_KS = [0, 1, 2, 3, 5, 10, 20, 50];
export const TOP_PS = [1, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1];
export const MIN_PS = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5];

const RULES = [
  { name: "top_k", key: "topK", steps: TOP_KS, off: 0 },
  { name: "top_p", key: "topP", steps: TOP_PS, off: 1 },
  { name: "min_p", key: "minP", steps: MIN_PS, off: 0 },
];

// A rule's value as the slider's output shows it: "off", "2", "90%".
function valueText(rule, value) {
  if (value === rule.off) return t("rules.off");
  return rule.name === "top_k" ? count(value) : shareText(value);
}

// What a rule does at this value, in a sentence.
function meaning(rule, value) {
  if (value === rule.off) return t(`rules.${rule.key}.off`);
  if (rule.name === "top_k") return t("rules.topK.on", { count: value });
  return t(`rules.${rule.key}.on`, { share: shareText(value) });
}

export class Rules {
  // `ui`: {details, state, kept, and per rule (top_k, top_p, min_p) {input: the <input
  // type=range>, output: its <output>, note: its meaning}}; `onChange()` runs when a
  // slider moves.
  constructor(ui, onChange) {
    this.ui = ui;
    for (const rule of RULES) {
      ui[rule.name].input.max = String(rule.steps.length - 1);
      ui[rule.name].input.addEventListener("input", () => {
        this.show();
        onChange();
      });
    }
    this.probs = null;
  }

  // {top_k, top_p, min_p} as the sliders stand
  values() {
    const values = {};
    for (const rule of RULES) values[rule.name] = rule.steps[Number(this.ui[rule.name].input.value)];
    return values;
  }

  on() {
    return RULES.some((rule) => this.values()[rule.name] !== rule.off);
  }

  // The wheel `probs` was asked with these rules (an answer without `sampling`: all off).
  matches(probs) {
    const asked = probs.sampling ?? { top_k: 0, top_p: 1, min_p: 0 };
    const want = this.values();
    return RULES.every((rule) => asked[rule.name] === want[rule.name]);
  }

  // The sliders' values and meanings in the current language; with a wheel, the kept line.
  show(probs = this.probs) {
    this.probs = probs;
    const values = this.values();
    for (const rule of RULES) {
      const { input, output, note } = this.ui[rule.name];
      const text = valueText(rule, values[rule.name]);
      output.textContent = text;
      input.setAttribute("aria-valuetext", text);
      note.textContent = meaning(rule, values[rule.name]);
    }
    this.ui.details.dataset.on = String(this.on());
    const sampling = probs?.sampling;
    if (!sampling) {
      this.ui.state.textContent = this.on() ? "" : t("rules.stateOff");
      this.ui.kept.textContent = "";
      return;
    }
    const kept = { count: sampling.kept_token_count, share: percent(sampling.kept_probability) };
    const asked = rulesOn(probs);
    this.ui.state.textContent = asked ? t("rules.stateOn", kept) : t("rules.stateOff");
    this.ui.kept.textContent = asked ? t("rules.kept", kept) : t("rules.keptAll", kept);
    this.ui.kept.dataset.keptTokens = String(sampling.kept_token_count);
  }
}

// The rules a wheel was drawn with, for a request made on it (append, spin): the server
// records them with the token.
export function rulesOf(probs) {
  const s = probs.sampling;
  return s ? { top_k: s.top_k, top_p: s.top_p, min_p: s.min_p } : {};
}
