// The lab's second view: a text scored token by token (POST /api/score). Each token is
// coloured by the probability the model gave it after the text before it; pointing at a
// token, focusing it (the tokens are one tab stop: the arrow keys, Home and End move
// between them) or tapping it shows its probability, rank, surprise and the model's five
// most likely tokens at that place. A summary says in plain words how likely the whole
// text is and what its perplexity means.

import { call, explain, showMessage } from "./api.js";
import {
  count,
  decimal,
  percent,
  probabilityBorder,
  probabilityColour,
  quoted,
  showToken,
} from "./format.js";
import { t } from "./i18n.js";

const SMALL_ODDS = 1e6; // up to "1 in 999,999" the odds are written out; beyond, their digits

const MOVES = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };

// On a touch screen a tap shows a token; a mouse left where the page was last clicked
// would "point at" whatever the layout moves under it, so pointing is left out there.
const touch = window.matchMedia("(hover: none), (pointer: coarse)");
let touched = touch.matches;

// How likely a whole text is, in words, from its natural log-probability.
function odds(logProbability) {
  const p = Math.exp(logProbability);
  if (p >= 0.01) return t("lab.score.oddsShare", { share: percent(p) });
  const log10 = -logProbability / Math.LN10; // the odds are 1 in 10 ** log10
  if (10 ** log10 < SMALL_ODDS) return t("lab.score.oddsOneIn", { odds: count(Math.round(1 / p)) });
  return t("lab.score.oddsDigits", { digits: Math.floor(log10) + 1 });
}

// Bits of surprise: one decimal, or a whole number when large.
function bits(x) {
  return x >= 100 ? count(Math.round(x)) : decimal(x, 1);
}

export class ScoreView {
  // `models()` is the server's model list (from the page's one GET /api/models); the menu
  // is drawn by `renderModels(select)`, shared with the wheels.
  constructor({ models, renderModels, usable, setUsable }) {
    const $ = (id) => document.getElementById(id);
    this.ui = {
      form: $("score-form"),
      model: $("score-model"),
      text: $("score-text"),
      button: $("score-button"),
      message: $("score-message"),
      messageTitle: $("score-message-title"),
      messageText: $("score-message-text"),
      status: $("score-status"),
      result: $("score-result"),
      summary: $("score-summary"),
      perplexity: $("score-perplexity"),
      extremes: $("score-extremes"),
      tokensHint: $("score-tokens-hint"),
      tokens: $("score-tokens"),
      detail: $("score-detail"),
      alternativesTitle: $("score-alternatives-title"),
      alternatives: $("score-alternatives"),
    };
    this.models = models;
    this.renderModels = renderModels;
    this.usable = usable;
    this.setUsable = setUsable;
    this.result = null;
    this.current = 0; // the token that has the tab stop and whose details are shown
    this.busy = false;
    this.status = null;
    this.error = null; // an ApiError, or {title, text} keys for a mistake caught here
    this.defaultText = t("lab.score.defaultText");
    this.ui.text.value = this.defaultText;

    this.ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.score();
    });
    this.ui.model.addEventListener("change", () => this.refreshButtons());
    this.ui.tokens.addEventListener("keydown", (event) => this.keydown(event));
    this.ui.tokens.addEventListener("focusin", (event) => this.pointed(event, true));
    this.ui.tokens.addEventListener("mouseover", (event) => this.pointed(event, false));
    this.ui.tokens.addEventListener("click", (event) => this.pointed(event, true));
    this.ui.tokens.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "touch") touched = true;
    });
    this.refreshButtons();
  }

  refreshButtons() {
    this.setUsable(this.ui.button, !this.busy && Boolean(this.ui.model.value));
    this.ui.form.closest(".lab-view").dataset.busy = String(this.busy);
  }

  enable() {
    this.ui.button.disabled = false; // disabled in the HTML until this script listens
    this.refreshButtons();
  }

  setStatus(say) {
    this.status = say;
    this.ui.status.textContent = say ? say() : "";
  }

  showError(error) {
    this.error = error;
    if (error.title) {
      this.ui.messageTitle.textContent = t(error.title);
      this.ui.messageText.textContent = t(error.text);
      this.ui.message.dataset.kind = "request";
      this.ui.message.hidden = false;
    } else {
      showMessage(this.ui, error, explain(error));
    }
    this.setStatus(null);
  }

  clearMessage() {
    this.error = null;
    this.ui.message.hidden = true;
  }

  async score() {
    if (!this.usable(this.ui.button) || this.busy) return;
    const text = this.ui.text.value;
    if (!text.trim()) {
      this.showError({ title: "lab.score.blank.title", text: "lab.score.blank.text" });
      this.ui.text.focus();
      return;
    }
    this.busy = true;
    this.refreshButtons();
    this.clearMessage();
    const model = this.ui.model.value;
    const info = this.models().find((m) => m.id === model);
    const loading = info && !info.loaded;
    this.setStatus(() =>
      loading ? t("status.loadingModel", { model: info.name }) : t("lab.score.scoring"),
    );
    try {
      const result = await call("POST", "/api/score", { model_name: model, text });
      if (info) info.loaded = true;
      this.result = result;
      this.current = 0;
      this.render();
      this.setStatus(() => t("lab.score.done", { count: this.result.token_count }));
    } catch (error) {
      this.showError(error);
    } finally {
      this.busy = false;
      this.refreshButtons();
    }
  }

  // ------------------------------------------------------------ the answer

  render() {
    const result = this.result;
    this.ui.result.hidden = !result;
    if (!result) return;
    this.ui.result.dataset.model = result.model_name;
    this.renderSummary();
    this.renderTokens();
    this.showToken(this.current);
  }

  renderSummary() {
    const { tokens, model_name: model, log_probability: lp, perplexity } = this.result;
    const name = this.models().find((m) => m.id === model)?.name ?? model;
    const predicted = tokens.filter((token) => token.probability !== null);
    const first = tokens.length > predicted.length;
    this.ui.summary.textContent = [
      t("lab.score.split", { count: tokens.length, model: name }),
      predicted.length
        ? t(first ? "lab.score.oddsAfterFirst" : "lab.score.oddsAll", {
            count: predicted.length,
            odds: odds(lp),
          })
        : t("lab.score.nothingPredicted"),
    ].join(" ");
    this.ui.perplexity.textContent =
      perplexity === null || perplexity === undefined
        ? t("lab.score.noPerplexity")
        : t("lab.score.perplexity", {
            value: perplexity >= 100 ? count(Math.round(perplexity)) : decimal(perplexity, 1),
          });
    this.ui.extremes.replaceChildren();
    if (!predicted.length) return;
    const least = predicted.reduce((a, b) => (b.probability < a.probability ? b : a));
    const most = predicted.reduce((a, b) => (b.probability > a.probability ? b : a));
    this.ui.extremes.textContent = t("lab.score.extremes", {
      least: quoted(least),
      leastShare: percent(least.probability),
      leastRank: count(least.rank),
      most: quoted(most),
      mostShare: percent(most.probability),
    });
  }

  // A short description of a token, for its tooltip.
  describe(token) {
    if (token.probability === null) return t("lab.score.firstShort", { token: quoted(token) });
    return t("lab.score.tokenShort", {
      token: quoted(token),
      share: percent(token.probability),
      rank: count(token.rank),
    });
  }

  renderTokens() {
    const { tokens } = this.result;
    const list = this.ui.tokens;
    list.replaceChildren();
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-orientation", "horizontal");
    list.setAttribute("aria-label", t("lab.score.tokensLabel", { count: tokens.length }));
    list.dataset.tokens = String(tokens.length);
    tokens.forEach((token, i) => {
      const chip = document.createElement("span");
      chip.className = "tok";
      chip.setAttribute("role", "option");
      chip.dataset.index = String(i);
      chip.dataset.tokenId = String(token.token_id);
      chip.dataset.probability = token.probability === null ? "" : String(token.probability);
      if (token.probability === null) chip.classList.add("unpredicted");
      else {
        chip.style.backgroundColor = probabilityColour(token.probability);
        chip.style.borderBottomColor = probabilityBorder(token.probability);
      }
      chip.title = this.describe(token);
      showToken(chip, token);
      list.appendChild(chip);
    });
    this.ui.tokensHint.textContent = t("lab.score.tokensHint");
    this.select(this.current, false);
  }

  chips() {
    return [...this.ui.tokens.querySelectorAll(".tok")];
  }

  // Give token `i` the tab stop (and the focus, if asked).
  select(i, focus) {
    const chips = this.chips();
    if (!chips.length) return;
    this.current = Math.min(Math.max(i, 0), chips.length - 1);
    chips.forEach((chip, j) => {
      chip.tabIndex = j === this.current ? 0 : -1;
      chip.setAttribute("aria-selected", String(j === this.current));
    });
    if (focus) chips[this.current].focus();
  }

  keydown(event) {
    const chip = event.target.closest(".tok");
    if (!chip) return;
    const i = Number(chip.dataset.index);
    let next = null;
    if (event.key in MOVES) next = i + MOVES[event.key];
    if (event.key === "Home") next = 0;
    if (event.key === "End") next = this.chips().length - 1;
    if (next === null) return;
    event.preventDefault();
    this.select(next, true);
  }

  // A token was pointed at (mouse), focused (keyboard) or tapped: show its details.
  pointed(event, chosen) {
    const chip = event.target.closest(".tok");
    if (!chip || (!chosen && touched)) return;
    const i = Number(chip.dataset.index);
    if (chosen && i !== this.current) this.select(i, event.type === "click");
    this.showToken(i);
  }

  showToken(i) {
    const token = this.result.tokens[i];
    if (!token) return;
    this.ui.detail.dataset.index = String(i);
    this.ui.detail.textContent =
      token.probability === null
        ? t("lab.score.first", { token: quoted(token) })
        : t("lab.score.detail", {
            token: quoted(token),
            share: percent(token.probability),
            rank: count(token.rank),
            bits: bits(token.surprisal_bits),
          });
    const alternatives = token.alternatives ?? [];
    this.ui.alternativesTitle.textContent = alternatives.length
      ? t("lab.score.alternatives", { count: alternatives.length })
      : "";
    this.ui.alternatives.replaceChildren();
    for (const alternative of alternatives) {
      const item = document.createElement("li");
      item.dataset.tokenId = String(alternative.token_id);
      item.dataset.probability = String(alternative.probability);
      const chip = document.createElement("span");
      chip.className = "lab-chip";
      chip.style.backgroundColor = probabilityColour(alternative.probability);
      chip.style.borderBottomColor = probabilityBorder(alternative.probability);
      showToken(chip, alternative);
      const share = document.createElement("span");
      share.className = "lab-share";
      share.textContent = percent(alternative.probability);
      item.append(chip, share);
      if (alternative.token_id === token.token_id) {
        item.classList.add("actual");
        const mark = document.createElement("span");
        mark.className = "lab-actual";
        mark.textContent = t("lab.score.thisOne");
        item.appendChild(mark);
      }
      this.ui.alternatives.appendChild(item);
    }
  }

  // ------------------------------------------------------------ language

  relabel() {
    if (this.ui.text.value === this.defaultText) this.ui.text.value = t("lab.score.defaultText");
    this.defaultText = t("lab.score.defaultText");
    this.renderModels(this.ui.model);
    if (this.result) {
      const focused = this.ui.tokens.contains(document.activeElement);
      this.render();
      if (focused) this.select(this.current, true);
    }
    if (this.status) this.ui.status.textContent = this.status();
    if (this.error && !this.ui.message.hidden) this.showError(this.error);
    this.refreshButtons();
  }
}
