// The lab: two wheels side by side, each its own session of the student API (its own
// model, prompt and temperature), to compare what the model expects after two prompts or
// at two temperatures; and a text scored token by token (score.js). It uses only the
// REST API under /api; every word it shows comes from the catalogs (i18n.js); an error
// body's `message` is shown as the server wrote it.

import { call, explain, showMessage } from "./api.js";
import {
  decimal,
  percent,
  probabilityBorder,
  probabilityColour,
  quoted,
  showToken,
  threshold as thresholdText,
} from "./format.js";
import { languageSwitch, onLanguageChange, t, translatePage } from "./i18n.js";
import { ScoreView } from "./score.js";
import { describe, renderTokens } from "./tokens.js";
import { OTHER_TOP_K, Wheel } from "./wheel.js";

// Each wheel uses the API's default threshold: the lab compares two wheels, not two
// thresholds, and a fixed one keeps the two comparable.
const THRESHOLD = 0.01;
const PAUSE_AFTER_SPIN_MS = 600; // time to see where the wheel stopped

const $ = (id) => document.getElementById(id);
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
// a touch screen: a tap reads a wedge, a second tap picks it
const touch = window.matchMedia("(hover: none), (pointer: coarse)");
let touched = touch.matches;

const sides = []; // the two wheels, filled in below
const shared = {
  models: [],
  defaultModel: null,
  language: $("language"),
  startBoth: $("start-both"),
  nav: [...document.querySelectorAll(".lab-nav a")],
  views: [...document.querySelectorAll(".lab-view")],
};

// Buttons that cannot act now say so with aria-disabled instead of `disabled`: a disabled
// button drops the keyboard focus (as on the student page).
function setUsable(button, usable) {
  button.setAttribute("aria-disabled", String(!usable));
}

function usable(button) {
  return button.getAttribute("aria-disabled") !== "true";
}

// A menu of the server's models; the chosen one is kept across redraws.
function renderModelMenu(select) {
  const chosen = select.value || shared.defaultModel;
  select.replaceChildren();
  if (!shared.models.length) {
    const none = shared.defaultModel === null ? "model.loading" : "model.none";
    select.appendChild(new Option(t(none), ""));
    return;
  }
  for (const model of shared.models) {
    const option = new Option(
      model.available ? model.name : t("model.unavailable", { model: model.name }),
      model.id,
    );
    option.disabled = !model.available;
    option.selected = model.id === chosen;
    select.appendChild(option);
  }
}

// A token with its probability, coloured as the text's chips are.
function chip(token) {
  const span = document.createElement("span");
  span.className = "lab-chip";
  span.style.backgroundColor = probabilityColour(token.probability);
  span.style.borderBottomColor = probabilityBorder(token.probability);
  showToken(span, token);
  return span;
}

// ---------------------------------------------------------------- one wheel

class Side {
  constructor(name) {
    this.name = name; // "a" or "b": the element ids start with it
    const el = (id) => $(`${name}-${id}`);
    this.ui = {
      side: el("side"),
      setup: el("setup"),
      model: el("model"),
      prompt: el("prompt"),
      start: el("start"),
      message: el("message"),
      messageTitle: el("message-title"),
      messageText: el("message-text"),
      status: el("status"),
      play: el("play"),
      wheel: el("wheel"),
      wedgeInfo: el("wedge-info"),
      pick: el("pick"),
      spin: el("spin"),
      undo: el("undo"),
      temperature: el("temperature"),
      temperatureValue: el("temperature-value"),
      temperatureNote: el("temperature-note"),
      textBox: el("text-box"),
      text: el("text"),
      tokenInfo: el("token-info"),
      chosen: el("chosen"),
      chosenNone: el("chosen-none"),
    };
    this.session = null; // {id, model}
    this.prompt = null;
    this.history = [];
    this.probs = null;
    this.version = 0;
    this.busy = false;
    this.wheelRequest = 0;
    this.status = null; // () => the status line in the current language
    this.error = null;
    this.shown = null; // the wedge whose description is shown
    this.defaultKey = `lab.compare.prompt${name.toUpperCase()}`;
    this.defaultPrompt = t(this.defaultKey);
    this.sliderTimer = 0;

    this.wheel = new Wheel(this.ui.wheel, {
      onPick: (item) => this.pickItem(item),
      onShow: (item, how) => this.showItem(item, how),
      onArm: (item) => this.armItem(item),
    });
    const ui = this.ui;
    ui.prompt.value = this.defaultPrompt;
    ui.setup.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    ui.prompt.addEventListener("keydown", (event) => {
      // Enter starts; Shift+Enter adds a new line (as on the student page)
      if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
      event.preventDefault();
      ui.setup.requestSubmit();
    });
    ui.spin.addEventListener("click", () => this.spin());
    ui.undo.addEventListener("click", () => this.undo());
    ui.pick.addEventListener("click", () => {
      if (usable(ui.pick)) this.wheel.pickArmed();
    });
    ui.temperature.addEventListener("input", () => this.sliderChanged());
    ui.model.addEventListener("change", () => this.refreshButtons());
    ui.wheel.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "touch" && !touched) {
        touched = true;
        if (!this.shown) this.renderWedgeHint();
      }
    });
    this.showSettings();
    this.refreshButtons();
  }

  temperature() {
    return Number(this.ui.temperature.value);
  }

  showSettings() {
    const text = decimal(this.temperature());
    this.ui.temperatureValue.textContent = text;
    this.ui.temperature.setAttribute("aria-valuetext", text);
  }

  // ------------------------------------------------------------ messages and buttons

  setStatus(say) {
    this.status = say;
    this.ui.status.textContent = say ? say() : "";
  }

  clearMessage() {
    this.error = null;
    this.ui.message.hidden = true;
  }

  showError(error) {
    this.error = error;
    const info = explain(error);
    showMessage(this.ui, error, info);
    this.setStatus(null);
    if (info.kind === "expired") {
      this.session = null;
      this.ui.play.classList.add("stale");
    }
    if (info.kind === "conflict" && this.session) {
      // the session changed elsewhere: show it as it is now
      window.setTimeout(() => this.task(() => this.reload()), 0);
    }
  }

  refreshButtons() {
    const ready = Boolean(this.session && this.probs) && !this.busy;
    setUsable(this.ui.spin, ready && this.wheel.items.length > 0);
    setUsable(this.ui.undo, Boolean(this.session) && !this.busy && this.history.length > 0);
    setUsable(this.ui.start, !this.busy && Boolean(this.ui.model.value));
    setUsable(this.ui.pick, ready);
    this.wheel.setEnabled(ready);
    this.ui.side.dataset.busy = String(this.busy);
    refreshStartBoth();
  }

  async task(work) {
    if (this.busy) return false;
    this.busy = true;
    this.refreshButtons();
    let failed = false;
    try {
      await work();
    } catch (error) {
      failed = true;
      this.showError(error);
    } finally {
      this.busy = false;
      this.refreshButtons();
      if (!failed && this.wheelIsStale()) window.setTimeout(() => this.task(() => this.load()), 0);
    }
    return !failed;
  }

  // The slider moved while something else ran: the wheel shows an old temperature.
  wheelIsStale() {
    return Boolean(this.session && this.probs && this.probs.temperature !== this.temperature());
  }

  // ------------------------------------------------------------ the text

  renderText() {
    renderTokens(this.ui.text, this.prompt, this.history, (token) => {
      this.ui.tokenInfo.textContent = describe(token);
    });
    const box = this.ui.textBox;
    // a text box that scrolls needs a tab stop of its own when no token chip gives it one
    if (box.scrollHeight > box.clientHeight && !this.history.length) box.tabIndex = 0;
    else box.removeAttribute("tabindex");
    this.renderChosen();
  }

  // Each chosen token with the probability the model gave it when it was chosen (the
  // session's token_history), in order.
  renderChosen() {
    this.ui.chosen.replaceChildren();
    this.ui.chosenNone.hidden = this.history.length > 0;
    for (const token of this.history) {
      const item = document.createElement("li");
      item.dataset.tokenId = String(token.token_id);
      item.dataset.probability = String(token.probability);
      const share = document.createElement("span");
      share.className = "lab-share";
      share.textContent = percent(token.probability);
      item.append(chip(token), share);
      this.ui.chosen.appendChild(item);
    }
  }

  keepText(result) {
    this.history = result.token_history;
    this.renderText();
  }

  // ------------------------------------------------------------ the wheel

  async load() {
    if (!this.session) return;
    const ask = ++this.wheelRequest;
    const temperature = this.temperature();
    const query = new URLSearchParams({
      temperature,
      threshold: THRESHOLD,
      other_top_k: OTHER_TOP_K,
    });
    const probs = await call("GET", `/api/sessions/${this.session.id}/next-token-probs?${query}`);
    if (ask !== this.wheelRequest) return; // a newer request is on its way
    this.probs = probs;
    this.version = probs.version;
    this.draw();
  }

  draw() {
    if (!this.probs) return;
    this.wheel.draw(this.probs);
    this.shown = null;
    this.renderWedgeHint();
    this.renderNote();
  }

  // What the wheel looks like, in words: the favourite and its share.
  renderNote() {
    const top = this.probs.above_threshold_tokens[0] ?? this.probs.other_category.sample_tokens[0];
    this.ui.temperatureNote.textContent = top
      ? t("lab.compare.favourite", {
          token: quoted(top),
          share: percent(top.probability),
          count: this.probs.above_threshold_tokens.length,
          threshold: thresholdText(THRESHOLD),
        })
      : "";
  }

  itemText(item) {
    if (item.kind === "rest") {
      return t("wedge.rest", { count: item.rest.count, share: percent(item.rest.share) });
    }
    const { token } = item;
    return t(`wedge.${item.kind}`, {
      token: quoted(token),
      share: percent(token.probability),
      rank: item.rank,
      id: String(token.token_id), // an id, not a quantity: no digit grouping
      threshold: thresholdText(THRESHOLD),
    });
  }

  showItem(item, { armed, hover = false }) {
    if (!item || (hover && touched)) return;
    this.shown = { item, armed };
    const text = this.itemText(item);
    this.ui.wedgeInfo.textContent = armed ? `${text} ${t("wedge.tapAgain")}` : text;
  }

  armItem(item) {
    this.ui.pick.hidden = !item;
    if (!item) return;
    touched = true;
    this.ui.pick.textContent =
      item.kind === "rest"
        ? t("wedge.pickRest")
        : t("wedge.pickToken", { token: quoted(item.token) });
  }

  renderWedgeHint() {
    if (this.shown) this.showItem(this.shown.item, { armed: this.shown.armed });
    else this.ui.wedgeInfo.textContent = t(touched ? "wedge.hintTouch" : "wedge.hint");
  }

  // ------------------------------------------------------------ actions

  async start() {
    if (!usable(this.ui.start)) return false;
    const prompt = this.ui.prompt.value;
    if (!prompt.trim()) {
      this.ui.prompt.focus();
      this.error = null;
      this.ui.messageTitle.textContent = t("error.noPrompt.title");
      this.ui.messageText.textContent = t("error.noPrompt.text");
      this.ui.message.dataset.kind = "request";
      this.ui.message.hidden = false;
      return false;
    }
    return this.task(async () => {
      this.clearMessage();
      const model = this.ui.model.value;
      if (!this.session || this.session.model !== model) {
        const info = shared.models.find((m) => m.id === model);
        this.setStatus(
          info && !info.loaded
            ? () => t("status.loadingModel", { model: info.name })
            : () => t("status.starting"),
        );
        const created = await call("POST", "/api/sessions", { model_name: model });
        this.session = { id: created.session_id, model: created.model_name };
        this.version = created.version;
        if (info) info.loaded = true;
      }
      this.setStatus(() => t("status.settingPrompt"));
      const set = await call("POST", `/api/sessions/${this.session.id}/set-prompt`, {
        prompt,
        expected_version: this.version,
      });
      this.version = set.version;
      this.prompt = prompt;
      this.history = [];
      this.ui.play.hidden = false;
      this.ui.play.classList.remove("stale");
      this.ui.play.dataset.session = this.session.id;
      this.renderText();
      await this.load();
      this.setStatus(() => t("lab.compare.ready"));
    });
  }

  // A choice names the wheel it was made on (409 if the session changed meanwhile).
  async append(body, said) {
    this.clearMessage();
    const { temperature, threshold, version } = this.probs;
    const result = await call("POST", `/api/sessions/${this.session.id}/append-token`, {
      ...body,
      temperature,
      threshold,
      expected_version: version,
    });
    this.version = result.version;
    this.keepText(result);
    const token = result.appended_token;
    this.setStatus(() => t(said, { token: quoted(token), share: percent(token.probability) }));
    await this.load();
  }

  pickItem(item) {
    if (item.kind === "rest") this.task(() => this.append({ category: "other" }, "status.drawn"));
    else this.task(() => this.append({ token_id: item.token.token_id }, "status.picked"));
  }

  spin() {
    if (!usable(this.ui.spin)) return;
    this.task(async () => {
      this.clearMessage();
      const { temperature, threshold, version } = this.probs;
      this.setStatus(() => t("status.spinning"));
      const result = await call("POST", `/api/sessions/${this.session.id}/spin`, {
        temperature,
        threshold,
        expected_version: version,
      });
      this.version = result.version;
      await this.wheel.spinTo(result.angle, reducedMotion.matches);
      this.wheel.markLanded(result.landed.wedge_index, result.appended_token.token_id);
      this.keepText(result);
      const token = result.appended_token;
      const share = percent(token.probability);
      this.setStatus(() => t("status.landed", { token: quoted(token), share }));
      await new Promise((done) => window.setTimeout(done, PAUSE_AFTER_SPIN_MS));
      await this.load();
    });
  }

  undo() {
    if (!usable(this.ui.undo)) return;
    this.task(async () => {
      this.clearMessage();
      const result = await call("POST", `/api/sessions/${this.session.id}/undo`, {
        expected_version: this.version,
      });
      this.version = result.version;
      this.keepText(result);
      this.setStatus(() => t("status.removed", { token: quoted(result.removed_token) }));
      await this.load();
    });
  }

  // After a 409: the session as it is now, from the server.
  async reload() {
    const now = await call("GET", `/api/sessions/${this.session.id}`);
    this.version = now.version;
    this.prompt = now.initial_prompt;
    this.keepText(now);
    await this.load();
  }

  sliderChanged() {
    this.showSettings();
    window.clearTimeout(this.sliderTimer);
    if (!this.session || this.prompt === null) return;
    // a redraw is only a read; a running spin or append redraws at its end (see task)
    this.sliderTimer = window.setTimeout(() => this.task(() => this.load()), 150);
  }

  // ------------------------------------------------------------ language

  relabel() {
    const ui = this.ui;
    if (ui.prompt.value === this.defaultPrompt) ui.prompt.value = t(this.defaultKey);
    this.defaultPrompt = t(this.defaultKey);
    this.showSettings();
    renderModelMenu(ui.model);
    if (this.prompt !== null) this.renderText();
    this.draw();
    if (this.status) ui.status.textContent = this.status();
    if (this.error && !ui.message.hidden) {
      const info = explain(this.error);
      ui.messageTitle.textContent = info.title;
      ui.messageText.textContent = info.text;
    }
    ui.tokenInfo.textContent = "";
    this.refreshButtons();
  }
}

sides.push(new Side("a"), new Side("b"));
const scoring = new ScoreView({
  models: () => shared.models,
  renderModels: renderModelMenu,
  usable,
  setUsable,
});

function refreshStartBoth() {
  setUsable(shared.startBoth, sides.every((side) => !side.busy && side.ui.model.value));
}

// ---------------------------------------------------------------- the views

// One view at a time, named by the address's #fragment (the compare view by default), so
// that each has the whole screen and a link can open either.
function showView() {
  const wanted = window.location.hash.slice(1);
  const view = shared.views.find((v) => v.id === wanted) ?? shared.views[0];
  for (const v of shared.views) v.hidden = v !== view;
  for (const link of shared.nav) {
    if (link.hash === `#${view.id}`) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = view.id;
}

// ---------------------------------------------------------------- start

async function loadModels() {
  try {
    const result = await call("GET", "/api/models");
    shared.models = result.models;
    shared.defaultModel = result.default_model;
  } catch (error) {
    shared.defaultModel = "";
    sides[0].showError(error);
  }
  for (const side of sides) {
    renderModelMenu(side.ui.model);
    side.refreshButtons();
  }
  renderModelMenu(scoring.ui.model);
  scoring.refreshButtons();
}

function relabel() {
  for (const side of sides) side.relabel();
  scoring.relabel();
}

translatePage();
languageSwitch(shared.language);
onLanguageChange(relabel);
relabel();
shared.startBoth.addEventListener("click", () => {
  if (!usable(shared.startBoth)) return;
  for (const side of sides) side.ui.setup.requestSubmit();
});
window.addEventListener("hashchange", showView);
showView();
// Start comes disabled in the HTML: a click before this script has attached its handlers
// would send the form natively and reload the page.
for (const side of sides) side.ui.start.disabled = false;
shared.startBoth.disabled = false;
scoring.enable();
refreshStartBoth();
loadModels();
