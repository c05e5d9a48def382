// The student page: a session, a prompt, the wheel, spin, pick, undo, sliders.
// It uses only the REST API under /api; every word it shows comes from the catalogs
// (i18n.js), and an error body's `message` is shown as the server wrote it.

import { call, explain, showMessage } from "./api.js";
import { CompareView } from "./compare.js";
import {
  count,
  decimal,
  percent,
  quoted,
  showToken,
  threshold as thresholdText,
} from "./format.js";
import { languageSwitch, onLanguageChange, t, translatePage } from "./i18n.js";
import { Lesson } from "./lesson.js";
import { Rules, rulesOf } from "./rules.js";
import { SampleChart } from "./sample-chart.js";
import { textChance, tokenSurprise, uncertainty } from "./surprise.js";
import { describe, renderTokens } from "./tokens.js";
import { OTHER_TOP_K, SMALLEST_DRAWN, Wheel, drawnSummary, rulesOn } from "./wheel.js";

const THRESHOLDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];
const OTHER_LISTED = 10; // Other's most likely tokens listed beside the wheel, to pick
const PAUSE_AFTER_SPIN_MS = 900; // time to see where the wheel stopped (no motion in it)

const $ = (id) => document.getElementById(id);
const ui = {
  language: $("language"),
  setup: $("setup"),
  model: $("model"),
  modelNote: $("model-note"),
  classCode: $("class-code"),
  nickname: $("nickname"),
  nicknameField: $("nickname-field"),
  guess: $("guess"),
  prompt: $("prompt"),
  start: $("start"),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  messageAction: $("message-action"),
  status: $("status"),
  play: $("play"),
  wheel: $("wheel"),
  textPanel: $("text-panel"),
  textBox: $("text-box"),
  text: $("text"),
  plain: $("plain"),
  plainText: $("plain-text"),
  tokenInfo: $("token-info"),
  branch: $("branch"),
  wheelSummary: $("wheel-summary"),
  uncertainty: $("uncertainty"),
  textChance: $("text-chance"),
  wedgeInfo: $("wedge-info"),
  wedgePick: $("wedge-pick"),
  spin: $("spin"),
  undo: $("undo"),
  temperature: $("temperature"),
  temperatureValue: $("temperature-value"),
  temperatureNote: $("temperature-note"),
  threshold: $("threshold"),
  thresholdValue: $("threshold-value"),
  landing: $("landing"),
  landingText: $("landing-text"),
  otherSummary: $("other-summary"),
  otherDrawn: $("other-drawn"),
  otherList: $("other-list"),
  sessionInfo: $("session-info"),
  confirm: $("confirm"),
  manyButtons: [...document.querySelectorAll(".many-button")],
  many: {
    dialog: $("many"),
    title: $("many-title"),
    summary: $("many-summary"),
    note: $("many-note"),
    legend: $("many-legend"),
    kept: $("many-kept"),
    rows: $("many-rows"),
    again: $("many-again"),
  },
  confirmText: $("confirm-text"),
  compareOpen: $("compare-open"),
  compare: {
    dialog: $("compare"),
    summary: $("compare-summary"),
    rules: $("compare-rules"),
    steps: [...document.querySelectorAll('input[name="compare-steps"]')],
    stepLabels: [...document.querySelectorAll('input[name="compare-steps"] + span')],
    current: $("compare-current"),
    again: $("compare-again"),
    greedy: {
      title: $("greedy-title"),
      tokens: $("greedy-tokens"),
      chance: $("greedy-chance"),
      stopped: $("greedy-stopped"),
    },
    sampled: {
      title: $("sampled-title"),
      tokens: $("sampled-tokens"),
      chance: $("sampled-chance"),
      stopped: $("sampled-stopped"),
    },
  },
  rules: {
    details: $("rules"),
    state: $("rules-state"),
    kept: $("rules-kept"),
    top_k: { input: $("top-k"), output: $("top-k-value"), note: $("top-k-note") },
    top_p: { input: $("top-p"), output: $("top-p-value"), note: $("top-p-note") },
    min_p: { input: $("min-p"), output: $("min-p-value"), note: $("min-p-note") },
  },
};

const state = {
  models: [],
  defaultModel: null,
  session: null, // {id, model, classCode, nickname}
  prompt: null,
  history: [],
  currentText: "",
  probs: null, // the distribution the wheel shows
  version: 0, // the session's version the page last saw; changes name it (409 if stale)
  busy: false,
  blockedUntil: 0, // rate limited until this time (ms)
  wheelRequest: 0,
  status: null, // () => the status line, in the current language
  error: null, // the error in the message box
  landing: null, // {result, probs} of the last spin, while it is shown
  shown: null, // the wedge whose description is shown
  selected: -1, // the token of the text chosen for "Branch here" (-1: none)
  defaultPrompt: "",
  guessFirst: false, // the status asks for a guess before the wheel
};

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
// a phone or tablet: one column, the text pinned above the wheel
const narrow = window.matchMedia("(max-width: 899px)");
// a touch screen: a tap reads a wedge, a second tap picks it
const touch = window.matchMedia("(hover: none), (pointer: coarse)");
let touched = touch.matches;

const wheel = new Wheel(ui.wheel, {
  onPick: (item) => pickItem(item),
  onShow: (item, how) => showItem(item, how),
  onArm: (item) => armItem(item),
});

const rules = new Rules(ui.rules, () => sliderChanged());
const chart = new SampleChart(ui.many);
const comparison = new CompareView(ui.compare);
const lesson = new Lesson(
  {
    panel: $("lesson"),
    prompt: $("lesson-prompt"),
    form: $("guess-form"),
    input: $("guess"),
    submit: $("guess-submit"),
    waiting: $("lesson-waiting"),
    reveal: $("lesson-reveal"),
    wheel: $("round-wheel"),
    info: $("round-info"),
    own: $("lesson-own"),
    counts: $("lesson-counts"),
    unlisted: $("lesson-unlisted"),
    noCounts: $("lesson-none"),
  },
  {
    // an open round the student has not guessed covers their own wheel: predict, then see
    onCover: (covered) => {
      const inPlay = ui.play.contains(document.activeElement);
      if (state.prompt !== null) ui.play.hidden = covered;
      if (covered && !state.guessFirst && state.prompt !== null) {
        // a round started while the student was at their wheel: the guess comes first
        state.guessFirst = true;
        const code = state.session?.classCode;
        setStatus(() => t("status.guessFirst", { code }));
        if (inPlay) ui.guess.focus();
      }
      if (!covered && state.guessFirst) {
        // the guess is in: the status stops asking for it (unless the class is gone)
        state.guessFirst = false;
        const code = state.session?.classCode;
        if (lesson.session) setStatus(() => t("status.readyClass", { code }));
      }
    },
    // a guess is an event of the session (its version moves) but changes no text: the
    // wheel on screen is still the session's, at the new version
    onGuessed: (version) => {
      state.version = version;
      if (state.probs) state.probs.version = version;
    },
    onError: (error) => showError(error),
  },
);

// The nickname field shows once a class code is typed (a class a teacher opened needs
// one; an old free-text code works without).
function showNickname() {
  const shown = ui.classCode.value.trim() !== "";
  ui.nicknameField.hidden = !shown;
  ui.setup.classList.toggle("with-nickname", shown);
}

function noteMotion() {
  document.documentElement.dataset.motion = reducedMotion.matches ? "reduced" : "full";
}

// ---------------------------------------------------------------- settings

function settings() {
  return {
    temperature: Number(ui.temperature.value),
    threshold: THRESHOLDS[Number(ui.threshold.value)],
  };
}

function showSettings() {
  const { temperature, threshold } = settings();
  ui.temperatureValue.textContent = decimal(temperature);
  ui.temperature.setAttribute("aria-valuetext", decimal(temperature));
  ui.thresholdValue.textContent = thresholdText(threshold);
  ui.threshold.setAttribute("aria-valuetext", thresholdText(threshold));
}

// ---------------------------------------------------------------- messages

// The status line; `say` returns its words in the current language (null: empty).
function setStatus(say) {
  state.status = say;
  ui.status.textContent = say ? say() : "";
}

function clearMessage() {
  state.error = null;
  ui.message.hidden = true;
  ui.messageAction.hidden = true;
}

function showError(error) {
  state.error = error;
  const info = explain(error);
  showMessage(ui, error, info);
  ui.messageAction.hidden = info.kind !== "expired";
  setStatus(null);
  if (info.kind === "expired") {
    state.session = null;
    lesson.leave();
    showSession();
  }
  if (info.kind === "join") (ui.nicknameField.hidden ? ui.classCode : ui.nickname).focus();
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
  const s = state.session;
  if (!s) ui.sessionInfo.textContent = "";
  else {
    const model = state.models.find((m) => m.id === s.model)?.name ?? s.model;
    const params = { id: s.id.slice(0, 8), model, code: s.classCode };
    ui.sessionInfo.textContent = t(s.classCode ? "session.infoClass" : "session.info", params);
  }
  document.body.dataset.session = s ? s.id : "";
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
  setUsable(ui.spin, ready && wheel.items.length > 0);
  setUsable(ui.undo, Boolean(state.session) && !state.busy && !blocked && state.history.length > 0);
  setUsable(ui.start, !state.busy && Boolean(ui.model.value));
  setUsable(ui.wedgePick, ready);
  for (const button of [...ui.manyButtons, ui.many.again, ui.compareOpen, ui.compare.again]) {
    setUsable(button, ready);
  }
  setUsable(ui.branch, Boolean(state.session) && !state.busy && !blocked && state.selected >= 0);
  wheel.setEnabled(ready);
  for (const button of ui.otherList.querySelectorAll("button")) setUsable(button, ready);
}

async function task(work) {
  if (state.busy) return false;
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
  return !failed;
}

// The sliders moved while something else ran: the wheel shows old settings.
function wheelIsStale() {
  if (!state.session || !state.probs) return false;
  const want = settings();
  return (
    want.temperature !== state.probs.temperature ||
    want.threshold !== state.probs.threshold ||
    !rules.matches(state.probs)
  );
}

// ---------------------------------------------------------------- the text

function renderText() {
  renderTokens(
    ui.text,
    state.prompt,
    state.history,
    (token) => {
      ui.tokenInfo.textContent = `${describe(token)}. ${tokenSurprise(token)}`;
    },
    (index) => {
      state.selected = index;
      renderBranch();
    },
  );
  ui.textChance.textContent = textChance(state.history);
  ui.plainText.textContent = state.currentText;
  const plain = ui.plain.checked;
  ui.text.hidden = plain;
  ui.plainText.hidden = !plain;
  // a text box that scrolls needs a tab stop of its own when no token chip gives it one
  const scrolls = ui.textBox.scrollHeight > ui.textBox.clientHeight;
  const chips = !plain && state.history.length > 0;
  if (scrolls && !chips) ui.textBox.tabIndex = 0;
  else ui.textBox.removeAttribute("tabindex");
  ui.textBox.scrollTop = ui.textBox.scrollHeight;
}

// "Branch here" names the selected token of the text.
function renderBranch() {
  const token = state.history[state.selected];
  ui.branch.hidden = !token;
  if (!token) return;
  ui.branch.textContent = t("branch.button", { token: quoted(token), position: state.selected + 1 });
  ui.branch.dataset.index = String(state.selected);
  refreshButtons();
}

// Fork the session with its text up to the selected token (POST .../fork with the
// token's position as token_count: versions count undos too, and a fork's copied tokens
// share its first version) and go on in the fork; the session it came from stays as it is.
function branch() {
  if (!usable(ui.branch)) return;
  const index = state.selected;
  task(async () => {
    clearMessage();
    const parent = state.session;
    const fork = await call("POST", `/api/sessions/${parent.id}/fork`, {
      version: state.version,
      token_count: index + 1,
    });
    state.session = { ...parent, id: fork.session_id, model: fork.model_name };
    lesson.leave(); // a fork is in no opened class: it cannot guess
    state.version = fork.version;
    state.prompt = fork.initial_prompt;
    state.landing = null;
    ui.landing.hidden = true;
    ui.text.dataset.follow = "true"; // the newest token of the branch takes the tab stop
    keepText(fork);
    showSession();
    const id = fork.session_id.slice(0, 8);
    const from = parent.id.slice(0, 8);
    setStatus(() => t("branch.done", { count: fork.token_history.length, id, from }));
    await loadWheel();
  });
}

function keepText(result) {
  state.history = result.token_history;
  state.currentText = result.current_text;
  renderText();
}

// ---------------------------------------------------------------- the wheel

async function loadWheel() {
  if (!state.session) return;
  const ask = ++state.wheelRequest;
  const { temperature, threshold } = settings();
  const query = new URLSearchParams({
    temperature,
    threshold,
    other_top_k: OTHER_TOP_K,
    ...rules.values(),
  });
  const probs = await call("GET", `/api/sessions/${state.session.id}/next-token-probs?${query}`);
  if (ask !== state.wheelRequest) return; // a newer request is on its way
  state.probs = probs;
  state.version = probs.version;
  state.currentText = probs.current_text;
  drawWheel();
}

function drawWheel() {
  const probs = state.probs;
  if (!probs) return;
  wheel.draw(probs);
  state.shown = null;
  renderWedgeHint();
  renderWheelSummary(probs);
  ui.uncertainty.textContent = uncertainty(probs);
  renderTemperatureNote(probs);
  renderOther(probs);
  rules.show(probs);
}

function itemText(item) {
  let text;
  if (item.kind === "rest") {
    text = t("wedge.rest", { count: item.rest.count, share: percent(item.rest.share) });
  } else {
    const { token } = item;
    text = t(`wedge.${item.kind}`, {
      token: quoted(token),
      share: percent(token.probability),
      rank: item.rank,
      id: String(token.token_id), // an id, not a quantity: no digit grouping
      threshold: thresholdText(state.probs.threshold),
    });
  }
  if (!rulesOn(state.probs)) return text;
  if (item.cut) return `${text} ${t(item.kind === "rest" ? "wedge.restCut" : "wedge.cutInfo")}`;
  if (item.kind === "rest") return text;
  return `${text} ${t("wedge.keptInfo", { kept: percent(item.token.sampling_probability) })}`;
}

function showItem(item, { armed, hover = false }) {
  // on a touch screen a tap also "hovers": the tap itself says what to show
  if (!item || (hover && touched)) return;
  state.shown = { item, armed };
  ui.wedgeInfo.textContent = armed ? `${itemText(item)} ${t("wedge.tapAgain")}` : itemText(item);
}

// A first tap chose a wedge: a button picks it too (the second action a tap needs).
function armItem(item) {
  ui.wedgePick.hidden = !item;
  if (!item) return;
  touched = true;
  ui.wedgePick.textContent =
    item.kind === "rest"
      ? t("wedge.pickRest")
      : t("wedge.pickToken", { token: quoted(item.token) });
}

function renderWedgeHint() {
  if (state.shown) showItem(state.shown.item, { armed: state.shown.armed });
  else ui.wedgeInfo.textContent = t(touched ? "wedge.hintTouch" : "wedge.hint");
}

function renderWheelSummary(probs) {
  const other = probs.other_category;
  const drawn = drawnSummary(wheel.items);
  const parts = [
    t("summary.head", {
      count: probs.above_threshold_tokens.length,
      threshold: thresholdText(probs.threshold),
      share: percent(probs.total_above_threshold_probability),
    }),
  ];
  if (other.token_count > 0) {
    parts.push(
      t("summary.other", { count: other.token_count, share: percent(other.total_probability) }),
    );
  }
  ui.wheelSummary.textContent = parts.join(" ");
  ui.wheelSummary.dataset.tokenWedges = String(drawn.tokens);
  // what the thin grey wedges inside Other are, beside the Other list
  const rest = Math.max(other.total_probability - drawn.sampleShare, 0);
  ui.otherDrawn.textContent = !other.token_count
    ? ""
    : drawn.samples
      ? t("summary.drawn", {
          count: drawn.samples,
          share: percent(drawn.sampleShare),
          rest: percent(rest),
          smallest: thresholdText(SMALLEST_DRAWN),
        })
      : t("summary.noneDrawn", { smallest: thresholdText(SMALLEST_DRAWN) });
}

// What the temperature did to the wheel, in words: how likely the favourite is now, and
// how much the ten most likely tokens hold together (most at a low temperature, little at
// a high one).
function renderTemperatureNote(probs) {
  const ranked = [...probs.above_threshold_tokens, ...probs.other_category.sample_tokens];
  if (!ranked.length) {
    ui.temperatureNote.textContent = "";
    return;
  }
  const T = probs.temperature;
  const top = ranked[0];
  const key = T < 1 ? "temperature.sharper" : T > 1 ? "temperature.flatter" : "temperature.model";
  const ten = ranked.slice(0, 10);
  const share = ten.reduce((sum, token) => sum + token.probability, 0);
  ui.temperatureNote.textContent = `${t(key, {
    temperature: decimal(T),
    token: quoted(top),
    share: percent(top.probability),
  })} ${t("temperature.top", { count: ten.length, share: percent(share) })}`;
}

function renderOther(probs) {
  const other = probs.other_category;
  ui.otherSummary.textContent = t("other.summary", {
    count: other.token_count,
    share: percent(other.total_probability),
  });
  // keep the keyboard focus on the same place in the list when it is rebuilt
  const buttons = [...ui.otherList.querySelectorAll("button")];
  const focused = buttons.indexOf(document.activeElement);
  ui.otherList.replaceChildren();
  for (const token of other.sample_tokens.slice(0, OTHER_LISTED)) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "other-token";
    button.dataset.tokenId = String(token.token_id);
    // named by what it shows (the token, its probability), "Pick" said before it
    const verb = document.createElement("span");
    verb.className = "visually-hidden";
    verb.textContent = `${t("other.pick")} `;
    const text = document.createElement("span");
    text.className = "other-text";
    showToken(text, token);
    const p = document.createElement("span");
    p.className = "other-p";
    p.textContent = percent(token.probability);
    button.append(verb, text, p);
    button.addEventListener("click", () => {
      if (usable(button)) task(() => append({ token_id: token.token_id }, "status.picked"));
    });
    item.appendChild(button);
    ui.otherList.appendChild(item);
  }
  const again = ui.otherList.querySelectorAll("button");
  if (focused >= 0 && again.length) again[Math.min(focused, again.length - 1)].focus();
  refreshButtons();
}

// ---------------------------------------------------------------- actions

// Ask before a new prompt replaces the text: {keep | reset} from the dialog.
function confirmReset(tokens) {
  ui.confirmText.textContent = t("confirm.text", { count: tokens });
  ui.confirm.returnValue = "";
  ui.confirm.showModal();
  return new Promise((resolve) => {
    ui.confirm.addEventListener("close", () => resolve(ui.confirm.returnValue === "reset"), {
      once: true,
    });
  });
}

async function start(event) {
  event?.preventDefault();
  if (!usable(ui.start)) return;
  const prompt = ui.prompt.value;
  if (!prompt.trim()) {
    ui.prompt.focus();
    state.error = null;
    ui.messageTitle.textContent = t("error.noPrompt.title");
    ui.messageText.textContent = t("error.noPrompt.text");
    ui.message.dataset.kind = "request";
    ui.message.hidden = false;
    return;
  }
  // Start never throws away work without asking: the text the student built stays
  // unless they say so (it stays in the session's history for the teacher either way).
  if (state.session && state.history.length > 0 && !(await confirmReset(state.history.length))) {
    setStatus(() => t("status.kept"));
    ui.prompt.focus();
    return;
  }
  const started = await task(async () => {
    clearMessage();
    const model = ui.model.value;
    const classCode = ui.classCode.value.trim();
    const nickname = classCode ? ui.nickname.value.trim() : "";
    const s = state.session;
    if (!s || s.model !== model || s.typedCode !== classCode || s.nickname !== nickname) {
      const info = state.models.find((m) => m.id === model);
      setStatus(
        info && !info.loaded
          ? () => t("status.loadingModel", { model: info.name })
          : () => t("status.starting"),
      );
      const body = { model_name: model };
      if (classCode) body.class_code = classCode; // only when the student typed one
      if (nickname) body.nickname = nickname;
      const created = await call("POST", "/api/sessions", body);
      // the class's code as the teacher got it (a code typed in lower case, with dashes)
      const code = created.class_code ?? classCode;
      state.session = { id: created.session_id, model: created.model_name, classCode: code };
      state.session.nickname = nickname; // as typed: a new Start with it keeps the session
      state.session.typedCode = classCode;
      state.version = created.version;
      if (info) info.loaded = true;
      showSession();
      // a nickname in the answer: the session joined a class a teacher opened
      if (created.nickname) await lesson.join(created.session_id);
      else lesson.leave();
    }
    setStatus(() => t("status.settingPrompt"));
    const set = await call("POST", `/api/sessions/${state.session.id}/set-prompt`, { prompt });
    state.version = set.version;
    state.prompt = prompt;
    state.history = [];
    state.currentText = set.current_text;
    state.landing = null;
    ui.landing.hidden = true;
    ui.play.hidden = lesson.covers;
    renderText();
    await loadWheel();
    const code = state.session.classCode;
    state.guessFirst = lesson.covers;
    if (lesson.covers) setStatus(() => t("status.guessFirst", { code }));
    else setStatus(() => (code ? t("status.readyClass", { code }) : t("status.ready")));
  });
  if (started && lesson.covers) ui.guess.focus();
  else if (started) {
    if (narrow.matches) ui.play.scrollIntoView({ block: "start" });
    ui.spin.focus({ preventScroll: narrow.matches });
  }
}

// A choice is made on the wheel on screen: it names that wheel's version, so a session
// changed meanwhile (another tab) answers 409 instead of taking a token from a wheel the
// student never saw.
async function append(body, said) {
  clearMessage();
  const { temperature, threshold, version } = state.probs;
  const result = await call("POST", `/api/sessions/${state.session.id}/append-token`, {
    ...body,
    temperature,
    threshold,
    ...rulesOf(state.probs),
    expected_version: version,
  });
  state.version = result.version;
  keepText(result);
  const token = result.appended_token;
  setStatus(() => t(said, { token: quoted(token), share: percent(token.probability) }));
  await loadWheel();
}

function pickItem(item) {
  if (item.kind === "rest" && item.cut && rulesOn(state.probs)) {
    // the rules keep none of Other's tokens: there is nothing to draw (the server says 400)
    setStatus(() => t("wedge.restCut"));
    return;
  }
  if (item.kind === "rest") task(() => append({ category: "other" }, "status.drawn"));
  else task(() => append({ token_id: item.token.token_id }, "status.picked"));
}

function renderLanding() {
  if (!state.landing) {
    ui.landing.hidden = true;
    return;
  }
  const { result, probs } = state.landing;
  const { draw, angle, landed, appended_token: token } = result;
  const where = {
    draw: decimal(draw, 4),
    angle: decimal(angle, 1),
    token: quoted(token),
    share: percent(token.probability),
  };
  if (rulesOn(probs)) {
    // the appended token as the history records it, with its share of the spins
    const recorded = result.token_history[result.token_history.length - 1];
    const kept = percent(recorded.sampling_probability ?? token.probability);
    ui.landingText.textContent = t("landing.rules", { ...where, kept });
  } else if (landed.wedge === "token") ui.landingText.textContent = t("landing.token", where);
  else {
    const info = result.other_category_info;
    ui.landingText.textContent = t("landing.other", {
      ...where,
      other: percent(probs.other_category.total_probability),
      rank: count(info.selected_token_rank),
      count: info.token_count,
    });
  }
  ui.landing.hidden = false;
}

// On a phone the text is pinned above the wheel: scroll so that the pointer shows below it.
function keepPointerInView() {
  const pointer = ui.wheel.querySelector(".pointer").getBoundingClientRect();
  const top = (narrow.matches ? Math.max(ui.textPanel.getBoundingClientRect().bottom, 0) : 0) + 8;
  if (pointer.top < top || pointer.bottom > window.innerHeight) {
    window.scrollBy({ top: pointer.top - top, behavior: "instant" });
  }
}

function spin() {
  if (!usable(ui.spin)) return;
  task(async () => {
    clearMessage();
    const probs = state.probs;
    const { temperature, threshold } = probs;
    setStatus(() => t("status.spinning"));
    const result = await call("POST", `/api/sessions/${state.session.id}/spin`, {
      temperature,
      threshold,
      ...rulesOf(probs),
      expected_version: probs.version,
    });
    state.version = result.version;
    keepPointerInView();
    // with rules on, the server's angle is on the wheel of kept shares: see landingAngle
    await wheel.spinTo(wheel.landingAngle(result), reducedMotion.matches);
    wheel.markLanded(result.landed.wedge_index, result.appended_token.token_id);
    keepText(result);
    state.landing = { result, probs };
    renderLanding();
    const token = result.appended_token;
    const share = percent(token.probability);
    setStatus(() => t("status.landed", { token: quoted(token), share }));
    await new Promise((done) => window.setTimeout(done, PAUSE_AFTER_SPIN_MS));
    await loadWheel();
  });
}

// Spin many: the server spins the wheel on screen `n` times; nothing joins the text.
function spinMany(button) {
  if (!usable(button)) return;
  const n = Number(button.dataset.n);
  const opener = button === ui.many.again ? null : button;
  task(async () => {
    clearMessage();
    await chart.run(state.session.id, state.probs, n, opener);
  });
}

// Greedy vs sampling: the server continues the text both ways; nothing joins it. `seed`
// null: a new sampled path (Open, Sample again); a new number of steps keeps the seed.
function compare({ button = null, seed = null } = {}) {
  if (button && !usable(button)) return;
  const opener = button === ui.compareOpen ? button : null;
  task(async () => {
    clearMessage();
    await comparison.run(state.session.id, state.probs, state.history.length, { seed, opener });
  });
}

function showManyButtons() {
  for (const button of ui.manyButtons) {
    button.textContent = t("many.button", { n: count(Number(button.dataset.n)) });
  }
}

function undo() {
  if (!usable(ui.undo)) return;
  task(async () => {
    clearMessage();
    const result = await call("POST", `/api/sessions/${state.session.id}/undo`, {
      expected_version: state.version,
    });
    state.version = result.version;
    keepText(result);
    state.landing = null;
    ui.landing.hidden = true;
    const removed = result.removed_token;
    setStatus(() => t("status.removed", { token: quoted(removed) }));
    await loadWheel();
  });
}

// After a 409: the session as it is now (text and wheel), from the server.
async function reloadSession() {
  if (!state.session) return;
  const now = await call("GET", `/api/sessions/${state.session.id}`);
  state.version = now.version;
  state.prompt = now.initial_prompt;
  state.landing = null;
  ui.landing.hidden = true;
  keepText(now);
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

// Enter (or Ctrl+Enter) in the prompt starts; Shift+Enter adds a new line.
function promptKeys(event) {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  ui.setup.requestSubmit();
}

// ---------------------------------------------------------------- models

function renderModels() {
  const chosen = ui.model.value || state.defaultModel;
  ui.model.replaceChildren();
  if (!state.models.length) {
    const none = state.defaultModel === null ? "model.loading" : "model.none";
    ui.model.appendChild(new Option(t(none), ""));
    return;
  }
  const away = [];
  for (const model of state.models) {
    const option = new Option(
      model.available ? model.name : t("model.unavailable", { model: model.name }),
      model.id,
    );
    option.disabled = !model.available;
    option.selected = model.id === chosen;
    if (!model.available) away.push(model.name);
    ui.model.appendChild(option);
  }
  ui.modelNote.hidden = away.length === 0;
  ui.modelNote.textContent = t("model.note", { count: away.length, models: away.join(", ") });
}

async function loadModels() {
  try {
    const result = await call("GET", "/api/models");
    state.models = result.models;
    state.defaultModel = result.default_model;
  } catch (error) {
    state.defaultModel = "";
    showError(error);
  }
  renderModels();
  refreshButtons();
}

// ---------------------------------------------------------------- language

function relabel() {
  if (ui.prompt.value === state.defaultPrompt) ui.prompt.value = t("setup.defaultPrompt");
  state.defaultPrompt = t("setup.defaultPrompt");
  showSettings();
  rules.show();
  showManyButtons();
  chart.render();
  comparison.render();
  renderModels();
  showSession();
  if (state.prompt !== null) renderText();
  drawWheel();
  renderLanding();
  lesson.relabel();
  if (state.status) ui.status.textContent = state.status();
  if (state.error && !ui.message.hidden) {
    const info = explain(state.error);
    ui.messageTitle.textContent = info.title;
    ui.messageText.textContent = info.text;
  }
  ui.tokenInfo.textContent = "";
}

// ---------------------------------------------------------------- start

translatePage();
languageSwitch(ui.language);
onLanguageChange(relabel);
state.defaultPrompt = t("setup.defaultPrompt");
ui.prompt.value = state.defaultPrompt;
noteMotion();
reducedMotion.addEventListener("change", noteMotion);
ui.wheel.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "touch" && !touched) {
    touched = true;
    if (!state.shown) renderWedgeHint();
  }
});
ui.setup.addEventListener("submit", start);
ui.classCode.addEventListener("input", showNickname);
ui.prompt.addEventListener("keydown", promptKeys);
ui.spin.addEventListener("click", spin);
ui.undo.addEventListener("click", undo);
ui.wedgePick.addEventListener("click", () => {
  if (usable(ui.wedgePick)) wheel.pickArmed();
});
ui.plain.addEventListener("change", renderText);
ui.branch.addEventListener("click", branch);
for (const button of [...ui.manyButtons, ui.many.again]) {
  button.addEventListener("click", () => spinMany(button));
}
ui.compareOpen.addEventListener("click", () => compare({ button: ui.compareOpen }));
ui.compare.again.addEventListener("click", () => compare({ button: ui.compare.again }));
for (const input of ui.compare.steps) {
  input.addEventListener("change", () => {
    if (state.session && state.probs) compare({ seed: comparison.seed() });
  });
}
ui.temperature.addEventListener("input", sliderChanged);
ui.threshold.addEventListener("input", sliderChanged);
ui.model.addEventListener("change", refreshButtons);
ui.messageAction.addEventListener("click", () => ui.setup.requestSubmit());
showSettings();
showNickname();
rules.show();
showManyButtons();
comparison.render();
renderModels();
refreshButtons();
// Start comes disabled in the HTML: a click before this script has attached its handlers
// would send the form natively and reload the page.
ui.start.disabled = false;
loadModels();
