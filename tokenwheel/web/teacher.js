// The teacher page: a token, a class's sessions, one session stepped through version by
// version with the wheel the student faced at each step, class statistics, downloads.
// It uses only the REST API under /api; the token stays in this tab's sessionStorage.
// Every word it shows comes from the catalogs (i18n.js).

import { ApiError, STUDENT_ERRORS, call, explain, fetchFile, showMessage } from "./api.js";
import { ClassDesk } from "./classes.js";
import {
  count,
  dateTime,
  decimal,
  percent,
  quoted,
  quotedText,
  shortDateTime,
  showToken,
  threshold as thresholdText,
} from "./format.js";
import { languageSwitch, onLanguageChange, t, translatePage } from "./i18n.js";
import { LiveFeed } from "./live.js";
import { LiveGrid } from "./live-grid.js";
import { chosen, describe, renderTokens } from "./tokens.js";
import { OTHER_TOP_K, Wheel } from "./wheel.js";

const TOKEN_KEY = "tokenwheel.teacherToken";
const PAGE_SIZE = 20;
const DEFAULTS = { threshold: 0.01, temperature: 1.0 }; // the student API's defaults
const PREVIEW_CHARS = 60; // of a prompt and a text in the list (the title has more)

const $ = (id) => document.getElementById(id);
const ui = {
  language: $("language"),
  tokenForm: $("token-form"),
  token: $("token"),
  forget: $("forget"),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  status: $("status"),
  find: $("find"),
  filters: $("filters"),
  filterClass: $("filter-class"),
  filterStatus: $("filter-status"),
  filterModel: $("filter-model"),
  rows: $("session-rows"),
  pagePrev: $("page-prev"),
  pageNext: $("page-next"),
  pageInfo: $("page-info"),
  classPanel: $("class-panel"),
  classTitle: $("class-title"),
  classStats: $("class-stats"),
  firstTokens: $("first-tokens"),
  sessionPanel: $("session-panel"),
  sessionTitle: $("session-title"),
  sessionMeta: $("session-meta"),
  sessionStats: $("session-stats"),
  step: $("step"),
  stepPrev: $("step-prev"),
  stepNext: $("step-next"),
  stepValue: $("step-value"),
  eventInfo: $("event-info"),
  replayText: $("replay-text"),
  tokenInfo: $("token-info"),
  wheelFrame: document.querySelector(".wheel-frame"),
  wheelCaption: $("wheel-caption"),
  wedgeInfo: $("wedge-info"),
  timeline: $("timeline"),
  timelineTitle: $("timeline-title"),
  timelineMore: $("timeline-more"),
  watchLive: $("watch-live"),
  livePanel: $("live-panel"),
  liveTitle: $("live-title"),
  liveState: $("live-state"),
  liveStop: $("live-stop"),
  liveGrid: $("live-grid"),
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  query: { class_code: "", status: "", model: "" }, // the filters of the list shown
  page: 1,
  total: 0,
  classCode: null, // the class whose statistics and downloads are shown
  session: null, // {id, latest, timeline}
  version: 0,
  stepRequest: 0,
  list: null, // the last list answer, to redraw in another language
  classStats: null,
  sessionStats: null,
  replay: null, // the step shown: {replay, plan, probs, error}
  status: null, // () => the status line, in the current language
  error: null,
  live: null, // {code, feed, state, detail}: the class watched live
};

const wheel = new Wheel($("wheel"), { onShow: (item) => showItem(item) });
const grid = new LiveGrid(ui.liveGrid);
// the classes a teacher opens, their rounds and the projector link (classes.js)
const desk = new ClassDesk({
  token: () => state.token,
  attempt: (work) => attempt(work),
  watchLive: (code) => {
    ui.filterClass.value = code;
    watchLive();
    ui.livePanel.scrollIntoView();
  },
});

// ---------------------------------------------------------------- requests and errors

function auth() {
  return { Authorization: `Bearer ${state.token}` };
}

function teacher(path, query = {}) {
  const params = new URLSearchParams(
    Object.entries(query).filter(([, value]) => value !== "" && value !== null),
  );
  const search = params.toString();
  return call("GET", `/api/teacher${path}${search ? `?${search}` : ""}`, undefined, auth());
}

// What each error means for a teacher, by status (the rest as for students).
const TEACHER_ERRORS = {
  401: () => ({ kind: "token", title: t("error.token.title"), text: t("error.token.text") }),
  403: () => ({ kind: "off", title: t("error.off.title"), text: t("error.off.text") }),
  404: (error, message) => ({
    kind: "missing",
    title: t("error.missing.title"),
    text: message || t("error.missing.text"),
  }),
  429: STUDENT_ERRORS[429], // says how long to wait (Retry-After)
};

// The status line; `say` returns its words in the current language (null: empty).
function setStatus(say) {
  state.status = say;
  ui.status.textContent = say ? say() : "";
}

function clearMessage() {
  state.error = null;
  ui.message.hidden = true;
}

function showError(error) {
  state.error = error;
  const info = explain(error, TEACHER_ERRORS);
  showMessage(ui, error, info);
  setStatus(null);
  if (info.kind === "token" || info.kind === "off") signOut(false);
}

async function attempt(work) {
  document.body.dataset.busy = "true";
  try {
    await work();
  } catch (error) {
    showError(error);
  } finally {
    document.body.dataset.busy = "false";
  }
}

// ---------------------------------------------------------------- small views

// One statistic: its name, its value and, under them, what it means in plain words.
function stat(list, key, value) {
  const pair = document.createElement("div"); // a dt and its dd, one cell of the grid
  pair.className = "stat";
  pair.dataset.stat = key;
  const dt = document.createElement("dt");
  dt.textContent = t(`stat.${key}`);
  const dd = document.createElement("dd");
  dd.textContent = value;
  const help = document.createElement("dd");
  help.className = "stat-help";
  help.textContent = t(`stat.${key}.help`);
  pair.append(dt, dd, help);
  list.appendChild(pair);
}

const maybe = (value, show) => (value === null || value === undefined ? "–" : show(value));
const withRate = (n, rate) => t("stat.withRate", { count: count(n), rate: maybe(rate, percent) });

function renderStatistics(list, stats, isClass = false) {
  list.replaceChildren();
  if (!stats) return;
  if (isClass) stat(list, "sessions", count(stats.session_count));
  stat(list, "tokensNow", count(stats.tokens_generated));
  stat(list, "tokensAdded", count(stats.tokens_appended));
  stat(list, "undos", count(stats.undo_count));
  stat(list, "prompts", count(stats.prompt_count));
  stat(list, "averageProbability", maybe(stats.average_probability, percent));
  stat(list, "topChoice", withRate(stats.top_choice_count, stats.top_choice_rate));
  stat(list, "fromOther", withRate(stats.other_count, stats.other_rate));
  // every pick from the Other wedge, undone and reset ones too: how often Other was chosen
  const picks = { count: count(stats.other_picks), total: count(stats.tokens_appended) };
  stat(list, "otherChosen", t("stat.ofTotal", picks));
  stat(list, "perplexity", maybe(stats.perplexity, (p) => decimal(p, 2)));
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content;
  row.appendChild(td);
  return td;
}

// ---------------------------------------------------------------- the token

function signIn(event) {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    ui.token.focus();
    return;
  }
  state.token = token;
  clearMessage();
  attempt(async () => {
    await loadSessions(1);
    sessionStorage.setItem(TOKEN_KEY, token);
    await desk.show();
    ui.token.value = "";
    ui.forget.hidden = false;
    setStatus(() => t("teacher.signedIn"));
  });
}

function signOut(clearNotice = true) {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  ui.forget.hidden = true;
  ui.find.hidden = true;
  desk.hide();
  ui.classPanel.hidden = true;
  ui.sessionPanel.hidden = true;
  state.session = null;
  stopLive();
  if (clearNotice) {
    clearMessage();
    setStatus(() => t("teacher.forgotten"));
  }
  ui.token.focus();
}

// ---------------------------------------------------------------- the list

async function loadSessions(page) {
  const result = await teacher("/sessions", { ...state.query, page, page_size: PAGE_SIZE });
  state.page = result.page;
  state.total = result.total;
  state.list = result;
  ui.find.hidden = false;
  renderSessions();
}

function renderSessions() {
  const result = state.list;
  if (!result) return;
  ui.rows.replaceChildren();
  for (const record of result.sessions) ui.rows.appendChild(sessionRow(record));
  if (!result.sessions.length) {
    const row = document.createElement("tr");
    cell(row, t("list.none")).colSpan = 9;
    ui.rows.appendChild(row);
  }
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
  ui.pageInfo.textContent = t("list.page", { page: state.page, pages, count: result.total });
  ui.pagePrev.disabled = state.page <= 1;
  ui.pageNext.disabled = state.page >= pages;
}

// The start of a text, cut to `max` characters.
function head(text, max = PREVIEW_CHARS) {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : text;
}

// The end of a text, cut to `max` characters: where the student got to.
function tail(text, max = PREVIEW_CHARS) {
  const chars = [...text];
  return chars.length > max ? `…${chars.slice(-(max - 1)).join("")}` : text;
}

function preview(text, cut) {
  const span = document.createElement("span");
  span.className = "preview";
  if (text === null || text === "") {
    span.textContent = "–";
    return span;
  }
  span.textContent = cut(text);
  span.title = text;
  return span;
}

function sessionRow(record) {
  const row = document.createElement("tr");
  row.dataset.sessionId = record.session_id;
  cell(row, shortDateTime(record.created_at));
  cell(row, record.class_code ?? "–");
  cell(row, preview(record.prompt, head)).className = "text-cell";
  cell(row, preview(record.prompt === null ? "" : record.current_text, tail)).className =
    "text-cell";
  cell(row, record.model_name);
  cell(row, t(`state.${record.status}`)).className = `state ${record.status}`;
  cell(row, count(record.generated_count)).className = "number";
  cell(row, count(record.undo_count)).className = "number";
  const open = document.createElement("button");
  open.type = "button";
  open.dataset.open = record.session_id;
  // visible "Open", and which session for a screen reader (what it is about, when)
  const more = document.createElement("span");
  more.className = "visually-hidden";
  more.textContent = ` ${t("list.openWhich", {
    prompt: record.prompt === null ? "–" : head(record.prompt, 40),
    created: shortDateTime(record.created_at),
  })}`;
  open.append(t("list.open"), more);
  open.addEventListener("click", () => attempt(() => openSession(record.session_id)));
  cell(row, open);
  return row;
}

function search(event) {
  event.preventDefault();
  clearMessage();
  state.query = {
    class_code: ui.filterClass.value.trim(),
    status: ui.filterStatus.value,
    model: ui.filterModel.value,
  };
  attempt(async () => {
    await loadSessions(1);
    await loadClass(state.total > 0 ? state.query.class_code : "");
  });
}

async function loadModels() {
  try {
    const result = await call("GET", "/api/models");
    for (const model of result.models) ui.filterModel.appendChild(new Option(model.name, model.id));
  } catch {
    // the filter still works without the list: "any" model
  }
}

// ---------------------------------------------------------------- the class

async function loadClass(classCode) {
  state.classCode = classCode || null;
  state.classStats = null;
  ui.classPanel.hidden = true;
  if (!classCode) return;
  state.classStats = await teacher(`/classes/${encodeURIComponent(classCode)}/statistics`);
  renderClass();
  ui.classPanel.hidden = false;
}

function renderClass() {
  const stats = state.classStats;
  if (!stats) return;
  ui.classTitle.textContent = t("class.title", { code: state.classCode });
  renderStatistics(ui.classStats, stats, true);
  renderFirstTokens(stats.first_tokens);
}

function renderFirstTokens(groups) {
  ui.firstTokens.replaceChildren();
  if (!groups.length) {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = t("class.noFirstTokens");
    ui.firstTokens.appendChild(note);
    return;
  }
  for (const group of groups) {
    const table = document.createElement("table");
    table.className = "first-token-table";
    const caption = table.createCaption();
    caption.textContent = t("class.firstTokens", {
      prompt: quotedText(group.prompt),
      model: group.model_name,
      temperature: decimal(group.temperature),
      count: group.session_count,
    });
    const headRow = table.createTHead().insertRow();
    for (const key of ["token", "chosen", "expected", "probability"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t(`class.column.${key}`);
      headRow.appendChild(th);
    }
    const body = table.createTBody();
    for (const token of group.tokens) {
      const row = body.insertRow();
      cell(row, firstToken(token));
      cell(row, count(token.observed)).className = "number";
      cell(row, decimal(token.expected, 2)).className = "number";
      cell(row, percent(token.probability)).className = "number";
    }
    const rest = body.insertRow();
    cell(rest, t("class.nobodyChose"));
    cell(rest, count(0)).className = "number";
    cell(rest, decimal(group.expected_unlisted, 2)).className = "number";
    cell(rest, "");
    ui.firstTokens.appendChild(table);
  }
}

// A first token of the class statistics. The server sends these counts with `token_text`
// only, no display fields: shown by its `display_text` once they come, until then as its
// plain text in quotes (no glyphs of the page's own: the glyphs are the server's).
function firstToken(token) {
  const text = document.createElement("span");
  if (token.display_text === undefined) {
    text.className = "token-plain";
    text.textContent = quotedText(token.token_text);
  } else {
    text.className = "token-text";
    showToken(text, token);
  }
  return text;
}

// ---------------------------------------------------------------- one session

async function openSession(sessionId) {
  clearMessage();
  setStatus(() => t("teacher.opening"));
  const [detail, stats] = await Promise.all([
    teacher(`/sessions/${sessionId}`),
    teacher(`/sessions/${sessionId}/statistics`),
  ]);
  const record = detail.session;
  state.session = {
    id: sessionId,
    latest: record.version,
    timeline: detail.timeline,
    record,
    prompt: detail.state.initial_prompt,
  };
  state.sessionStats = stats;
  document.body.dataset.session = sessionId;
  renderSessionHead();
  renderTimeline(detail.timeline);
  ui.step.max = String(record.version);
  ui.sessionPanel.hidden = false;
  await goTo(record.version);
  setStatus(() => t("teacher.stepHint"));
  ui.sessionPanel.scrollIntoView({ block: "start" });
  updateTimelineMore();
}

function renderSessionHead() {
  const session = state.session;
  if (!session) return;
  const { record } = session;
  ui.sessionTitle.textContent = session.prompt
    ? t("session.titlePrompt", { prompt: quotedText(head(session.prompt, 80)) })
    : t("session.titleNoPrompt", { id: session.id.slice(0, 8) });
  ui.sessionMeta.textContent = t(record.class_code ? "session.metaClass" : "session.meta", {
    model: record.model_name,
    code: record.class_code,
    status: t(`state.${record.status}`),
    created: dateTime(record.created_at),
    count: record.version,
    id: session.id.slice(0, 8),
  });
  renderStatistics(ui.sessionStats, state.sessionStats);
}

function shorten(text, max = 120) {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : text;
}

// What happened at one event, in words (and the token's own visible form).
function eventSummary(entry, parent) {
  const p = entry.payload;
  const say = (text) => parent.append(text);
  switch (entry.type) {
    case "SessionCreated":
      say(
        p.class_code
          ? t("event.createdClass", { model: p.model_name, code: p.class_code })
          : t("event.created", { model: p.model_name }),
      );
      break;
    case "SetPrompt": {
      const reset = state.session.timeline.some(
        (e) => e.type === "SetPrompt" && e.version < entry.version,
      );
      const prompt = quotedText(shorten(p.prompt));
      say(t(reset ? "event.promptReset" : "event.promptSet", { prompt }));
      break;
    }
    case "TokenAppended": {
      const token = document.createElement("span");
      token.className = "token-text";
      showToken(token, entry.token_display);
      say(`${t("event.token")} `);
      parent.appendChild(token);
      const facts = { share: percent(p.probability), rank: count(p.rank), how: chosen(p) };
      say(` ${t("event.tokenFacts", facts)}`);
      break;
    }
    case "Undone":
      say(
        entry.token_display
          ? t("event.undone", { token: quoted(entry.token_display), step: p.undone_version })
          : t("event.undoneUnknown", { step: p.undone_version }),
      );
      break;
    case "SessionDeleted":
      say(t("event.deleted"));
      break;
    default:
      say(entry.type);
  }
}

// Below the timeline's box: how many steps are further down, as a button that scrolls
// to them (the box scrolls on its own; without this a teacher may not see there is more).
function updateTimelineMore() {
  const box = ui.timeline;
  const bottom = box.getBoundingClientRect().bottom;
  const below = [...box.children].filter(
    (item) => item.getBoundingClientRect().bottom > bottom + 1,
  );
  ui.timelineMore.hidden = below.length === 0;
  ui.timelineMore.textContent = t("timeline.more", { count: below.length });
  box.classList.toggle("has-more", below.length > 0);
}

function renderTimeline(timeline) {
  ui.timeline.replaceChildren();
  for (const entry of timeline) {
    const item = document.createElement("li");
    item.dataset.version = String(entry.version);
    item.dataset.type = entry.type;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "jump";
    const number = document.createElement("span");
    number.className = "version";
    number.textContent = String(entry.version);
    const what = document.createElement("span");
    what.className = "what";
    eventSummary(entry, what);
    button.append(number, what);
    if (entry.undone) {
      item.classList.add("undone");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = t("timeline.undone");
      button.appendChild(badge);
    } else if (entry.in_final_text === false) {
      item.classList.add("cleared");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = t("timeline.cleared");
      button.appendChild(badge);
    }
    button.addEventListener("click", () => attempt(() => goTo(entry.version)));
    item.appendChild(button);
    ui.timeline.appendChild(item);
  }
  ui.timelineTitle.textContent = t("timeline.title", { count: timeline.length });
}

// ---------------------------------------------------------------- stepping

async function goTo(version) {
  const session = state.session;
  if (!session) return;
  version = Math.min(Math.max(1, version), session.latest);
  const ask = ++state.stepRequest;
  state.version = version;
  ui.step.value = String(version);
  const where = t("step.of", { step: version, count: session.latest });
  ui.stepValue.textContent = where;
  ui.step.setAttribute("aria-valuetext", where);
  ui.stepPrev.disabled = version <= 1;
  ui.stepNext.disabled = version >= session.latest;
  for (const item of ui.timeline.children) {
    const current = Number(item.dataset.version) === version;
    if (current) {
      item.setAttribute("aria-current", "step");
      keepInTimeline(item);
    } else item.removeAttribute("aria-current");
  }

  const replay = await teacher(`/sessions/${session.id}/replay`, { version });
  if (ask !== state.stepRequest) return; // a newer step is on its way
  state.replay = { replay };
  renderReplay();
  ui.tokenInfo.textContent = "";
  ui.replayText.dataset.version = String(version);
  await showWheel(ask, replay);
}

// The current step stays in sight inside the timeline's box (not the page).
function keepInTimeline(item) {
  const box = ui.timeline;
  const top = item.offsetTop - box.offsetTop;
  if (top < box.scrollTop) box.scrollTop = top;
  else if (top + item.offsetHeight > box.scrollTop + box.clientHeight) {
    box.scrollTop = top + item.offsetHeight - box.clientHeight;
  }
}

function renderReplay() {
  const { replay } = state.replay ?? {};
  if (!replay) return;
  const entry = replay.event;
  const when = dateTime(entry.occurred_at);
  ui.eventInfo.replaceChildren(`${t("step.when", { step: entry.version, when })} `);
  eventSummary(entry, ui.eventInfo);
  renderTokens(ui.replayText, replay.state.initial_prompt, replay.state.token_history, (token) => {
    ui.tokenInfo.textContent = describe(token);
  });
}

// Which wheel belongs to a step: for a token, the wheel it was chosen from (the text
// before it, at the settings it recorded); else the wheel after the step, at the settings
// of the student's next token (or their last, or the defaults).
function wheelPlan(replay) {
  const { event, state: at } = replay;
  if (event.type === "TokenAppended") {
    const p = event.payload;
    return {
      version: event.version - 1,
      settings: { threshold: p.threshold, temperature: p.temperature },
      chosen: { ...p, ...event.token_display }, // the recorded token, with how it is shown
      caption: "replay.captionChosen",
    };
  }
  if (at.deleted || at.initial_prompt === null) return null;
  const tokens = state.session.timeline.filter((e) => e.type === "TokenAppended");
  const next = tokens.find((e) => e.version > event.version);
  const last = tokens.filter((e) => e.version < event.version).pop();
  const source = next ?? last;
  const settings = source
    ? { threshold: source.payload.threshold, temperature: source.payload.temperature }
    : DEFAULTS;
  let caption = "replay.captionDefaults";
  if (source) caption = next ? "replay.captionNext" : "replay.captionLast";
  return { version: event.version, settings, chosen: null, caption };
}

async function showWheel(ask, replay) {
  const plan = wheelPlan(replay);
  wheel.svg.dataset.version = "";
  if (!plan) {
    state.replay = { replay, plan };
    renderWheelCaption();
    wheel.svg.dataset.version = String(replay.version);
    return;
  }
  const { threshold, temperature } = plan.settings;
  let probs;
  try {
    probs = await teacher(`/sessions/${state.session.id}/next-token-probs`, {
      version: plan.version,
      threshold,
      temperature,
      other_top_k: OTHER_TOP_K,
    });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 503) throw error;
    if (ask !== state.stepRequest) return;
    state.replay = { replay, plan, error };
    renderWheelCaption();
    return;
  }
  if (ask !== state.stepRequest) return;
  state.replay = { replay, plan, probs };
  drawReplayWheel();
  wheel.svg.dataset.version = String(replay.version);
}

function drawReplayWheel() {
  const { plan, probs } = state.replay ?? {};
  if (!probs) return;
  wheel.draw(probs);
  if (plan.chosen) {
    const c = plan.chosen;
    const index =
      c.category === "other"
        ? wheel.wedges.findIndex((w) => w.kind === "other")
        : wheel.wedges.findIndex((w) => w.token?.token_id === c.token_id);
    wheel.markLanded(index, c.token_id);
  }
  renderWheelCaption();
}

function renderWheelCaption() {
  const { replay, plan, probs, error } = state.replay ?? {};
  if (!replay) return;
  const frame = ui.wheelFrame;
  if (!plan) {
    frame.hidden = true;
    ui.wedgeInfo.textContent = "";
    ui.wheelCaption.textContent = t(replay.state.deleted ? "replay.deleted" : "replay.noPrompt");
    return;
  }
  const { threshold, temperature } = plan.settings;
  const settings = { temperature: decimal(temperature), threshold: thresholdText(threshold) };
  if (error) {
    frame.hidden = true;
    ui.wedgeInfo.textContent = "";
    const reason = t("replay.noModel", { reason: error.body.message ?? "" });
    const recorded = plan.chosen
      ? ` ${t("replay.recorded", { token: describe(plan.chosen) })}`
      : "";
    ui.wheelCaption.textContent = `${reason}${recorded}`;
    return;
  }
  frame.hidden = false;
  let marked = "";
  if (plan.chosen) {
    const key = plan.chosen.category === "other" ? "replay.markedOther" : "replay.marked";
    marked = ` ${t(key, { token: quoted(plan.chosen) })}`;
  }
  ui.wheelCaption.textContent = `${t(plan.caption, { ...settings, step: plan.version })}${marked}`;
  const other = probs.other_category;
  ui.wedgeInfo.textContent = t("replay.wedges", {
    count: probs.above_threshold_tokens.length,
    threshold: thresholdText(threshold),
    other: count(other.token_count),
    share: percent(other.total_probability),
  });
}

function showItem(item) {
  if (!item) return;
  if (item.kind === "rest") {
    const share = percent(item.rest.share);
    ui.wedgeInfo.textContent = t("wedge.rest", { count: item.rest.count, share });
    return;
  }
  ui.wedgeInfo.textContent = t(item.kind === "token" ? "replay.wedgeToken" : "replay.wedgeSample", {
    token: quoted(item.token),
    share: percent(item.token.probability),
    rank: item.rank,
  });
}

function step(delta) {
  if (state.session) attempt(() => goTo(state.version + delta));
}

let sliderTimer = 0;
function sliderMoved() {
  window.clearTimeout(sliderTimer);
  const version = Number(ui.step.value);
  ui.stepValue.textContent = t("step.of", { step: version, count: state.session.latest });
  sliderTimer = window.setTimeout(() => attempt(() => goTo(version)), 120);
}

function keydown(event) {
  if (!state.session || ui.sessionPanel.hidden) return;
  // these have keys of their own
  if (event.target.closest?.("input, select, textarea, .wheel, [role=listbox]")) return;
  const moves = {
    ArrowLeft: state.version - 1,
    ArrowRight: state.version + 1,
    Home: 1,
    End: state.session.latest,
  };
  if (!(event.key in moves) || event.altKey || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  attempt(() => goTo(moves[event.key]));
}

// ---------------------------------------------------------------- live

// Watch the class of the class-code field live: a grid of its students, kept up to date
// by the live stream (live.js reconnects by itself, resuming after the last event).
function watchLive() {
  const code = ui.filterClass.value.trim();
  if (!code) {
    ui.filterClass.focus();
    return;
  }
  stopLive();
  clearMessage();
  grid.clear();
  const path = `/api/teacher/classes/${encodeURIComponent(code)}/live`;
  const feed = new LiveFeed(path, state.token, {
    onEvent: (kind, id, data) => {
      if (kind === "snapshot") grid.snapshot(data.students);
      else grid.event(kind, data);
      ui.liveGrid.dataset.lastEventId = id ?? "";
      renderLiveState();
    },
    onState: (liveState, detail) => {
      if (!state.live || state.live.feed !== feed) return;
      state.live.state = liveState;
      state.live.detail = detail;
      if (liveState === "refused") liveRefused(detail);
      renderLiveState();
    },
  });
  state.live = { code, feed, state: "connecting", detail: null };
  ui.livePanel.hidden = false;
  renderLive();
  feed.start();
  ui.livePanel.scrollIntoView({ block: "start" });
}

function stopLive() {
  const live = state.live;
  if (!live) return;
  state.live = null;
  live.feed.stop();
  ui.livePanel.hidden = true;
  delete ui.livePanel.dataset.state;
}

function liveRefused(detail) {
  const error = new ApiError(detail.status, detail.body);
  stopLive();
  showError(error);
}

function renderLive() {
  if (!state.live) return;
  ui.liveTitle.textContent = t("live.title", { code: state.live.code });
  ui.liveGrid.setAttribute("aria-label", t("live.gridLabel", { code: state.live.code }));
  grid.redraw();
  renderLiveState();
}

function renderLiveState() {
  const live = state.live;
  if (!live) return;
  ui.livePanel.dataset.state = live.state;
  let words;
  if (live.state === "open") {
    words = grid.size ? t("live.open") : t("live.empty", { code: live.code });
  } else if (live.state === "waiting") {
    const key = live.detail?.busy ? "live.busy" : "live.waiting";
    words = t(key, { seconds: live.detail?.seconds ?? 0 });
  } else words = t("live.connecting");
  if (ui.liveState.textContent !== words) ui.liveState.textContent = words;
}

// ---------------------------------------------------------------- downloads

function download(button) {
  const { scope, format } = button.dataset;
  const path =
    scope === "class"
      ? `/api/teacher/classes/${encodeURIComponent(state.classCode)}/export?format=${format}`
      : `/api/teacher/sessions/${state.session.id}/export?format=${format}`;
  attempt(async () => {
    setStatus(() => t("downloads.preparing"));
    const { blob, filename } = await fetchFile(path, auth());
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    setStatus(() => t("downloads.done", { file: filename }));
  });
}

// ---------------------------------------------------------------- language

function relabel() {
  renderSessions();
  renderClass();
  renderLive();
  desk.relabel();
  if (state.session) {
    renderSessionHead();
    renderTimeline(state.session.timeline);
    for (const item of ui.timeline.children) {
      if (Number(item.dataset.version) === state.version) item.setAttribute("aria-current", "step");
    }
    const where = t("step.of", { step: state.version, count: state.session.latest });
    ui.stepValue.textContent = where;
    ui.step.setAttribute("aria-valuetext", where);
    renderReplay();
    if (state.replay?.probs) drawReplayWheel();
    else renderWheelCaption();
  }
  if (state.status) ui.status.textContent = state.status();
  if (state.error && !ui.message.hidden) {
    const info = explain(state.error, TEACHER_ERRORS);
    ui.messageTitle.textContent = info.title;
    ui.messageText.textContent = info.text;
  }
  updateTimelineMore();
}

// ---------------------------------------------------------------- start

translatePage();
languageSwitch(ui.language);
onLanguageChange(relabel);
ui.tokenForm.addEventListener("submit", signIn);
ui.forget.addEventListener("click", () => signOut());
ui.filters.addEventListener("submit", search);
ui.watchLive.addEventListener("click", watchLive);
ui.liveStop.addEventListener("click", () => {
  stopLive();
  ui.watchLive.focus();
});
ui.pagePrev.addEventListener("click", () => attempt(() => loadSessions(state.page - 1)));
ui.pageNext.addEventListener("click", () => attempt(() => loadSessions(state.page + 1)));
ui.stepPrev.addEventListener("click", () => step(-1));
ui.stepNext.addEventListener("click", () => step(1));
ui.step.addEventListener("input", sliderMoved);
ui.timeline.addEventListener("scroll", updateTimelineMore, { passive: true });
ui.timelineMore.addEventListener("click", () => {
  ui.timeline.scrollBy({ top: ui.timeline.clientHeight * 0.8 });
});
window.addEventListener("resize", updateTimelineMore);
document.addEventListener("keydown", keydown);
for (const button of document.querySelectorAll(".download")) {
  button.addEventListener("click", () => download(button));
}
// The forms' submit buttons come disabled in the HTML: a click before this script has
// attached its handlers would send the form natively (the token in the URL).
for (const id of ["sign-in", "search", "watch-live"]) $(id).disabled = false;
document.body.dataset.busy = "false";
loadModels();
if (state.token) {
  ui.forget.hidden = false;
  attempt(async () => {
    await loadSessions(1);
    await desk.show();
  });
}
