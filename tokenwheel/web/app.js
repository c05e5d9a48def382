// The student page: a session, a prompt, the wheel, spin, pick, undo, sliders.
// It uses only the REST API under /api; every error body's `message` is shown as is.

import { ApiError, call, explain, showMessage } from "./api.js";
import {
  count,
  percent,
  quoted,
  spokenToken,
  showToken,
  threshold as thresholdText,
} from "./format.js";
import { describe, renderTokens } from "./tokens.js";
import { Wheel } from "./wheel.js";

const THRESHOLDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];
const OTHER_TOP_K = 10;
const PAUSE_AFTER_SPIN_MS = 900; // time to see where the wheel stopped (no motion in it)

const $ = (id) => document.getElementById(id);
const ui = {
  setup: $("setup"),
  model: $("model"),
  classCode: $("class-code"),
  prompt: $("prompt"),
  start: $("start"),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  messageAction: $("message-action"),
  status: $("status"),
  play: $("play"),
  text: $("text"),
  tokenInfo: $("token-info"),
  wheelSummary: $("wheel-summary"),
  wedgeInfo: $("wedge-info"),
  spin: $("spin"),
  undo: $("undo"),
  temperature: $("temperature"),
  temperatureValue: $("temperature-value"),
  threshold: $("threshold"),
  thresholdValue: $("threshold-value"),
  landing: $("landing"),
  landingText: $("landing-text"),
  otherSummary: $("other-summary"),
  otherList: $("other-list"),
  sessionInfo: $("session-info"),
};

const state = {
  models: [],
  session: null, // {id, model, classCode}
  prompt: null,
  history: [],
  probs: null, // the distribution the wheel shows
  version: 0, // the session's version the page last saw; changes name it (409 if stale)
  busy: false,
  blockedUntil: 0, // rate limited until this time (ms)
  wheelRequest: 0,
};

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
const wheel = new Wheel($("wheel"), {
  onPick: (wedge) => pickWedge(wedge),
  onShow: (wedge) => showWedge(wedge),
});

function noteMotion() {
  document.documentElement.dataset.motion = reducedMotion.matches ? "reduced" : "full";
}
noteMotion();
reducedMotion.addEventListener("change", noteMotion);

// ---------------------------------------------------------------- settings

function settings() {
  return {
    temperature: Number(ui.temperature.value),
    threshold: THRESHOLDS[Number(ui.threshold.value)],
  };
}

function showSettings() {
  const { temperature, threshold } = settings();
  ui.temperatureValue.textContent = temperature.toFixed(1);
  ui.thresholdValue.textContent = thresholdText(threshold);
  ui.threshold.setAttribute("aria-valuetext", thresholdText(threshold));
}

// ---------------------------------------------------------------- messages

function setStatus(text) {
  ui.status.textContent = text;
}

function clearMessage() {
  ui.message.hidden = true;
  ui.messageAction.hidden = true;
}

function showError(error) {
  const info = explain(error);
  showMessage(ui, error, info);
  ui.messageAction.hidden = info.kind !== "expired";
  setStatus("");
  if (info.kind === "expired") {
    state.session = null;
    showSession();
  }
  if (info.kind === "rate" && info.wait) {
    state.blockedUntil = Date.now() + info.wait * 1000;
    window.setTimeout(refreshButtons, info.wait * 1000 + 50);
  }
  if (info.kind === "conflict" && state.session) {
    // another tab changed the session: show what it holds now, then let the student choose
    window.setTimeout(() => task(reloadSession), 0);
  }
  refreshButtons();
}

function showSession() {
  ui.play.classList.toggle("stale", !state.session);
  ui.sessionInfo.textContent = state.session
    ? `Session ${state.session.id.slice(0, 8)} on ${state.session.model}`
    : "";
  document.body.dataset.session = state.session ? state.session.id : "";
}

// ---------------------------------------------------------------- busy state

// Buttons that cannot act now say so with aria-disabled instead of `disabled`: a disabled
// button drops the keyboard focus, and a keyboard user would lose their place each time
// the page waits for the server.
function setUsable(button, usable) {
  button.setAttribute("aria-disabled", String(!usable));
}

function usable(button) {
  return button.getAttribute("aria-disabled") !== "true";
}

function refreshButtons() {
  const blocked = Date.now() < state.blockedUntil;
  const ready = Boolean(state.session && state.probs) && !state.busy && !blocked;
  setUsable(ui.spin, ready && wheel.wedges.length > 0);
  setUsable(ui.undo, Boolean(state.session) && !state.busy && !blocked && state.history.length > 0);
  setUsable(ui.start, !state.busy && Boolean(ui.model.value));
  wheel.setEnabled(ready);
  for (const button of ui.otherList.querySelectorAll("button")) setUsable(button, ready);
}

async function task(work) {
  if (state.busy) return;
  state.busy = true;
  document.body.dataset.busy = "true";
  refreshButtons();
  let failed = false;
  try {
    await work();
  } catch (error) {
    failed = true;
    showError(error);
  } finally {
    state.busy = false;
    document.body.dataset.busy = "false";
    refreshButtons();
    if (!failed && wheelIsStale()) window.setTimeout(() => task(loadWheel), 0);
  }
}

// The sliders moved while something else ran: the wheel shows old settings.
function wheelIsStale() {
  if (!state.session || !state.probs) return false;
  const want = settings();
  return want.temperature !== state.probs.temperature || want.threshold !== state.probs.threshold;
}

// ---------------------------------------------------------------- the text

function renderText() {
  renderTokens(ui.text, state.prompt, state.history, (token) => {
    ui.tokenInfo.textContent = describe(token);
  });
}

// ---------------------------------------------------------------- the wheel

async function loadWheel() {
  if (!state.session) return;
  const ask = ++state.wheelRequest;
  const { temperature, threshold } = settings();
  const query = new URLSearchParams({ temperature, threshold, other_top_k: OTHER_TOP_K });
  const probs = await call("GET", `/api/sessions/${state.session.id}/next-token-probs?${query}`);
  if (ask !== state.wheelRequest) return; // a newer request is on its way
  state.probs = probs;
  state.version = probs.version;
  renderWheelSummary(probs);
  wheel.draw(probs);
  renderOther(probs);
}

function showWedge(wedge) {
  if (!wedge) return;
  if (wedge.kind === "token") {
    const t = wedge.token;
    ui.wedgeInfo.textContent =
      `${quoted(t)}: ${percent(t.probability)}, number ${wedge.index + 1} on ` +
      `the wheel, token id ${t.token_id}`;
  } else {
    const o = wedge.other;
    ui.wedgeInfo.textContent =
      `Other: ${count(o.token_count)} tokens, ${percent(o.total_probability)} together; ` +
      "landing here draws one of them";
  }
}

const WEDGE_HINT = "Point at a wedge, or focus it with the keyboard, to read it.";

function renderWheelSummary(probs) {
  ui.wedgeInfo.textContent = WEDGE_HINT;
  const other = probs.other_category;
  ui.wheelSummary.textContent =
    `${probs.above_threshold_tokens.length} tokens at or above ${thresholdText(probs.threshold)} ` +
    `(${percent(probs.total_above_threshold_probability)} together) and ` +
    `${count(other.token_count)} in Other, of ${count(probs.vocabulary_size)} in the vocabulary.`;
}

function renderOther(probs) {
  const other = probs.other_category;
  ui.otherSummary.textContent = `${count(other.token_count)} tokens, ${percent(
    other.total_probability,
  )} together.`;
  // keep the keyboard focus on the same place in the list when it is rebuilt
  const buttons = [...ui.otherList.querySelectorAll("button")];
  const focused = buttons.indexOf(document.activeElement);
  ui.otherList.replaceChildren();
  for (const token of other.sample_tokens) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "other-token";
    button.setAttribute(
      "aria-label",
      `Pick ${spokenToken(token.token_text)}, ${percent(token.probability)}`,
    );
    const text = document.createElement("span");
    text.className = "other-text";
    showToken(text, token);
    const p = document.createElement("span");
    p.className = "other-p";
    p.textContent = percent(token.probability);
    button.append(text, p);
    button.addEventListener("click", () => {
      if (usable(button)) task(() => append({ token_id: token.token_id }, "Picked"));
    });
    item.appendChild(button);
    ui.otherList.appendChild(item);
  }
  const again = ui.otherList.querySelectorAll("button");
  if (focused >= 0 && again.length) again[Math.min(focused, again.length - 1)].focus();
}

// ---------------------------------------------------------------- actions

async function start(event) {
  event.preventDefault();
  if (!usable(ui.start)) return;
  const prompt = ui.prompt.value;
  if (!prompt.trim()) {
    ui.prompt.focus();
    showError(new ApiError(400, { error: "No prompt", message: "Type a prompt first." }));
    return;
  }
  await task(async () => {
    clearMessage();
    const model = ui.model.value;
    const classCode = ui.classCode.value.trim();
    const s = state.session;
    if (!s || s.model !== model || s.classCode !== classCode) {
      const info = state.models.find((m) => m.id === model);
      setStatus(
        info && !info.loaded
          ? `Loading ${info.name}; the first session on a model can take half a minute…`
          : "Starting a session…",
      );
      const body = { model_name: model };
      if (classCode) body.class_code = classCode; // only when the student typed one
      const created = await call("POST", "/api/sessions", body);
      state.session = { id: created.session_id, model: created.model_name, classCode };
      state.version = created.version;
      if (info) info.loaded = true;
      showSession();
    }
    setStatus("Setting the prompt…");
    const set = await call("POST", `/api/sessions/${state.session.id}/set-prompt`, { prompt });
    state.version = set.version;
    state.prompt = prompt;
    state.history = [];
    ui.landing.hidden = true;
    ui.play.hidden = false;
    renderText();
    await loadWheel();
    setStatus("Ready: spin the wheel, or pick a wedge.");
  });
}

// A choice is made on the wheel on screen: it names that wheel's version, so a session
// changed meanwhile (another tab) answers 409 instead of taking a token from a wheel the
// student never saw.
async function append(body, verb) {
  clearMessage();
  const { temperature, threshold, version } = state.probs;
  const result = await call("POST", `/api/sessions/${state.session.id}/append-token`, {
    ...body,
    temperature,
    threshold,
    expected_version: version,
  });
  state.version = result.version;
  state.history = result.token_history;
  renderText();
  const token = result.appended_token;
  setStatus(`${verb} ${quoted(token)} (${percent(token.probability)}).`);
  await loadWheel();
}

function pickWedge(wedge) {
  if (wedge.kind === "other") {
    task(() => append({ category: "other" }, "Drew from Other:"));
  } else {
    task(() => append({ token_id: wedge.token.token_id }, "Picked"));
  }
}

function landingText(result, probs) {
  const { draw, angle, landed, appended_token: token } = result;
  const head = `The draw ${draw.toFixed(4)} stopped the pointer at ${angle.toFixed(1)}°`;
  if (landed.wedge === "token") {
    return `${head}, in the wedge of ${quoted(token)} (${percent(
      token.probability,
    )}), which joins the text.`;
  }
  const info = result.other_category_info;
  return (
    `${head}, in the Other wedge (${percent(probs.other_category.total_probability)}). ` +
    `Inside it the same draw, rescaled, picked ${quoted(token)} ` +
    `(${percent(token.probability)}, number ${count(info.selected_token_rank)} of ` +
    `${count(info.token_count)} there).`
  );
}

function spin() {
  if (!usable(ui.spin)) return;
  task(async () => {
    clearMessage();
    const probs = state.probs;
    const { temperature, threshold } = probs;
    setStatus("Spinning…");
    const result = await call("POST", `/api/sessions/${state.session.id}/spin`, {
      temperature,
      threshold,
      expected_version: probs.version,
    });
    state.version = result.version;
    const reduced = reducedMotion.matches;
    await wheel.spinTo(result.angle, reduced);
    wheel.markLanded(result.landed.wedge_index);
    state.history = result.token_history;
    renderText();
    ui.landingText.textContent = landingText(result, probs);
    ui.landing.hidden = false;
    const token = result.appended_token;
    setStatus(`Landed on ${quoted(token)} (${percent(token.probability)}).`);
    await new Promise((done) => window.setTimeout(done, PAUSE_AFTER_SPIN_MS));
    await loadWheel();
  });
}

function undo() {
  if (!usable(ui.undo)) return;
  task(async () => {
    clearMessage();
    const result = await call("POST", `/api/sessions/${state.session.id}/undo`, {
      expected_version: state.version,
    });
    state.version = result.version;
    state.history = result.token_history;
    renderText();
    ui.landing.hidden = true;
    setStatus(`Removed ${quoted(result.removed_token)}.`);
    await loadWheel();
  });
}

// After a 409: the session as it is now (text and wheel), from the server.
async function reloadSession() {
  if (!state.session) return;
  const now = await call("GET", `/api/sessions/${state.session.id}`);
  state.version = now.version;
  state.prompt = now.initial_prompt;
  state.history = now.token_history;
  ui.landing.hidden = true;
  renderText();
  await loadWheel();
}

let sliderTimer = 0;
function sliderChanged() {
  showSettings();
  window.clearTimeout(sliderTimer);
  if (!state.session || state.prompt === null) return;
  // A redraw is only a read: the session and its text stay as they are. If a spin or an
  // append is running, its end redraws at the new settings (see task).
  sliderTimer = window.setTimeout(() => task(loadWheel), 150);
}

// ---------------------------------------------------------------- models

async function loadModels() {
  try {
    const result = await call("GET", "/api/models");
    state.models = result.models;
    ui.model.replaceChildren();
    for (const model of result.models) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.available ? model.name : `${model.name} (unavailable)`;
      option.disabled = !model.available;
      if (model.reason) option.title = model.reason;
      option.selected = model.id === result.default_model;
      ui.model.appendChild(option);
    }
  } catch (error) {
    ui.model.replaceChildren(new Option("No model available", ""));
    showError(error);
  }
  refreshButtons();
}

ui.setup.addEventListener("submit", start);
ui.spin.addEventListener("click", spin);
ui.undo.addEventListener("click", undo);
ui.temperature.addEventListener("input", sliderChanged);
ui.threshold.addEventListener("input", sliderChanged);
ui.model.addEventListener("change", refreshButtons);
ui.messageAction.addEventListener("click", () => ui.setup.requestSubmit());
showSettings();
refreshButtons();
loadModels();
