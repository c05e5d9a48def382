// The teacher page: a token, a class's sessions, one session stepped through version by
// version with the wheel the student faced at each step, class statistics, downloads.
// It uses only the REST API under /api; the token stays in this tab's sessionStorage.

import { ApiError, STUDENT_ERRORS, call, explain, fetchFile, showMessage } from "./api.js";
import {
  count,
  percent,
  quoted,
  quotedText,
  showToken,
  threshold as thresholdText,
} from "./format.js";
import { chosen, describe, renderTokens } from "./tokens.js";
import { Wheel } from "./wheel.js";

const TOKEN_KEY = "tokenwheel.teacherToken";
const PAGE_SIZE = 20;
const DEFAULTS = { threshold: 0.01, temperature: 1.0 }; // the student API's defaults
const OTHER_TOP_K = 0; // the teacher's wheel lists no Other tokens

const $ = (id) => document.getElementById(id);
const ui = {
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
};

const wheel = new Wheel($("wheel"), { onShow: (wedge) => showWedge(wedge) });

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
  401: () => ({
    kind: "token",
    title: "Wrong teacher token",
    text: "The server did not accept this token. Type the value of TOKENWHEEL_TEACHER_TOKEN exactly.",
  }),
  403: () => ({
    kind: "off",
    title: "The teacher API is off",
    text:
      "This server has no teacher token. To enable the teacher page, start the server " +
      "with TOKENWHEEL_TEACHER_TOKEN set to a long random secret, then type that secret here.",
  }),
  404: (error, message) => ({
    kind: "missing",
    title: "Not found",
    text: message || "No such session or class: it may have been purged.",
  }),
  429: STUDENT_ERRORS[429], // says how long to wait (Retry-After)
};

function setStatus(text) {
  ui.status.textContent = text;
}

function clearMessage() {
  ui.message.hidden = true;
}

function showError(error) {
  const info = explain(error, TEACHER_ERRORS);
  showMessage(ui, error, info);
  setStatus("");
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

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function stat(list, label, value) {
  const pair = document.createElement("div"); // a dt and its dd, one cell of the grid
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  pair.append(dt, dd);
  list.appendChild(pair);
}

const maybe = (value, show) => (value === null || value === undefined ? "–" : show(value));

function renderStatistics(list, stats, extra = []) {
  list.replaceChildren();
  for (const [label, value] of extra) stat(list, label, value);
  stat(list, "Tokens in the texts", count(stats.tokens_generated));
  stat(list, "Tokens appended", count(stats.tokens_appended));
  stat(list, "Undos", count(stats.undo_count));
  stat(list, "Prompts set", count(stats.prompt_count));
  stat(list, "Average probability", maybe(stats.average_probability, percent));
  stat(list, "From Other", `${count(stats.other_count)} (${maybe(stats.other_rate, percent)})`);
  // every pick from the Other wedge, undone and reset ones too: how often Other was chosen
  stat(list, "Other picked", `${count(stats.other_picks)} of ${count(stats.tokens_appended)}`);
  stat(
    list,
    "Most likely token chosen",
    `${count(stats.top_choice_count)} (${maybe(stats.top_choice_rate, percent)})`,
  );
  stat(list, "Perplexity", maybe(stats.perplexity, (p) => p.toFixed(2)));
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
    ui.token.value = "";
    ui.forget.hidden = false;
    setStatus("Signed in. Filter by class code to see a class's statistics.");
  });
}

function signOut(clearNotice = true) {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  ui.forget.hidden = true;
  ui.find.hidden = true;
  ui.classPanel.hidden = true;
  ui.sessionPanel.hidden = true;
  state.session = null;
  if (clearNotice) {
    clearMessage();
    setStatus("The token is forgotten.");
  }
  ui.token.focus();
}

// ---------------------------------------------------------------- the list

async function loadSessions(page) {
  const result = await teacher("/sessions", { ...state.query, page, page_size: PAGE_SIZE });
  state.page = result.page;
  state.total = result.total;
  ui.find.hidden = false;
  ui.rows.replaceChildren();
  for (const record of result.sessions) ui.rows.appendChild(sessionRow(record));
  if (!result.sessions.length) {
    const row = document.createElement("tr");
    cell(row, "No sessions match these filters.").colSpan = 7;
    ui.rows.appendChild(row);
  }
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
  ui.pageInfo.textContent = `Page ${state.page} of ${pages} · ${count(result.total)} sessions`;
  ui.pagePrev.disabled = state.page <= 1;
  ui.pageNext.disabled = state.page >= pages;
}

function sessionRow(record) {
  const row = document.createElement("tr");
  row.dataset.sessionId = record.session_id;
  cell(row, when(record.created_at));
  cell(row, record.class_code ?? "–");
  cell(row, record.model_name);
  cell(row, record.status).className = `state ${record.status}`;
  cell(row, count(record.generated_count)).className = "number";
  cell(row, count(record.undo_count)).className = "number";
  const open = document.createElement("button");
  open.type = "button";
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open session ${record.session_id.slice(0, 8)}`);
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
  ui.classPanel.hidden = true;
  if (!classCode) return;
  const stats = await teacher(`/classes/${encodeURIComponent(classCode)}/statistics`);
  ui.classTitle.textContent = `Class ${classCode}`;
  renderStatistics(ui.classStats, stats, [["Sessions", count(stats.session_count)]]);
  renderFirstTokens(stats.first_tokens);
  ui.classPanel.hidden = false;
}

function renderFirstTokens(groups) {
  ui.firstTokens.replaceChildren();
  if (!groups.length) {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent =
      "First tokens are compared once two sessions share a wheel (same model, prompt and temperature).";
    ui.firstTokens.appendChild(note);
    return;
  }
  for (const group of groups) {
    const table = document.createElement("table");
    table.className = "first-token-table";
    const caption = table.createCaption();
    caption.textContent =
      `First tokens after ${quotedText(group.prompt)} on ${group.model_name} at temperature ` +
      `${group.temperature}: ${count(group.session_count)} sessions`;
    const head = table.createTHead().insertRow();
    for (const title of ["Token", "Chosen", "Expected", "Probability"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const token of group.tokens) {
      const row = body.insertRow();
      cell(row, firstToken(token));
      cell(row, count(token.observed)).className = "number";
      cell(row, token.expected.toFixed(2)).className = "number";
      cell(row, percent(token.probability)).className = "number";
    }
    const rest = body.insertRow();
    cell(rest, "tokens nobody chose");
    cell(rest, "0").className = "number";
    cell(rest, group.expected_unlisted.toFixed(2)).className = "number";
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
  setStatus("Opening the session…");
  const [detail, stats] = await Promise.all([
    teacher(`/sessions/${sessionId}`),
    teacher(`/sessions/${sessionId}/statistics`),
  ]);
  const record = detail.session;
  state.session = { id: sessionId, latest: record.version, timeline: detail.timeline };
  document.body.dataset.session = sessionId;
  ui.sessionTitle.textContent = `Session ${sessionId.slice(0, 8)}`;
  ui.sessionMeta.textContent =
    `${record.model_name}${record.class_code ? ` · class ${record.class_code}` : ""} · ` +
    `${record.status} · created ${when(record.created_at)} · ${count(record.version)} events`;
  renderStatistics(ui.sessionStats, stats);
  renderTimeline(detail.timeline);
  ui.step.max = String(record.version);
  ui.sessionPanel.hidden = false;
  await goTo(record.version);
  setStatus("Step through the session with Previous and Next, the slider or the arrow keys.");
  ui.sessionPanel.scrollIntoView({ block: "start" });
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
      say(`Session created on ${p.model_name}${p.class_code ? `, class ${p.class_code}` : ""}`);
      break;
    case "SetPrompt": {
      const reset = state.session.timeline.some(
        (e) => e.type === "SetPrompt" && e.version < entry.version,
      );
      say(`${reset ? "Prompt reset" : "Prompt set"}: ${quotedText(shorten(p.prompt))}`);
      break;
    }
    case "TokenAppended": {
      const token = document.createElement("span");
      token.className = "token-text";
      showToken(token, entry.token_display);
      say("Token ");
      parent.appendChild(token);
      say(` ${percent(p.probability)}, rank ${count(p.rank)}, ${chosen(p)}`);
      break;
    }
    case "Undone": {
      const removed = entry.token_display ? ` ${quoted(entry.token_display)}` : "";
      say(`Undo: removed${removed} (step ${p.undone_version})`);
      break;
    }
    case "SessionDeleted":
      say("Deleted by the student");
      break;
    default:
      say(entry.type);
  }
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
      badge.textContent = "undone";
      button.appendChild(badge);
    } else if (entry.in_final_text === false) {
      item.classList.add("cleared");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "cleared by a new prompt";
      button.appendChild(badge);
    }
    button.addEventListener("click", () => attempt(() => goTo(entry.version)));
    item.appendChild(button);
    ui.timeline.appendChild(item);
  }
}

// ---------------------------------------------------------------- stepping

async function goTo(version) {
  const session = state.session;
  if (!session) return;
  version = Math.min(Math.max(1, version), session.latest);
  const ask = ++state.stepRequest;
  state.version = version;
  ui.step.value = String(version);
  ui.stepValue.textContent = `Step ${version} of ${session.latest}`;
  ui.step.setAttribute("aria-valuetext", `Step ${version} of ${session.latest}`);
  ui.stepPrev.disabled = version <= 1;
  ui.stepNext.disabled = version >= session.latest;
  for (const item of ui.timeline.children) {
    const current = Number(item.dataset.version) === version;
    if (current) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }

  const replay = await teacher(`/sessions/${session.id}/replay`, { version });
  if (ask !== state.stepRequest) return; // a newer step is on its way
  const entry = replay.event;
  ui.eventInfo.replaceChildren(`Step ${version}, ${when(entry.occurred_at)}: `);
  eventSummary(entry, ui.eventInfo);
  renderTokens(ui.replayText, replay.state.initial_prompt, replay.state.token_history, (t) => {
    ui.tokenInfo.textContent = describe(t);
  });
  ui.tokenInfo.textContent = "";
  ui.replayText.dataset.version = String(version);
  await showWheel(ask, replay);
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
      caption: `The wheel this token was chosen from`,
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
  return {
    version: event.version,
    settings,
    chosen: null,
    caption: `The wheel after this step, at the settings of the student's ${
      next ? "next" : source ? "last" : "(no)"
    } token`,
  };
}

async function showWheel(ask, replay) {
  const plan = wheelPlan(replay);
  const frame = ui.wheelFrame;
  wheel.svg.dataset.version = "";
  if (!plan) {
    frame.hidden = true;
    ui.wedgeInfo.textContent = "";
    ui.wheelCaption.textContent = replay.state.deleted
      ? "The student deleted the session here: no wheel."
      : "No prompt yet: no wheel.";
    wheel.svg.dataset.version = String(replay.version);
    return;
  }
  const { threshold, temperature } = plan.settings;
  const settingsText = `temperature ${temperature.toFixed(1)}, threshold ${thresholdText(threshold)}`;
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
    frame.hidden = true;
    ui.wheelCaption.textContent =
      `The model cannot load here now, so the wheel cannot be drawn again (${error.body.message}). ` +
      (plan.chosen ? `Recorded: ${describe(plan.chosen)}.` : "");
    return;
  }
  if (ask !== state.stepRequest) return;
  frame.hidden = false;
  wheel.draw(probs);
  let marked = "";
  if (plan.chosen) {
    const c = plan.chosen;
    const index = wheel.wedges.findIndex((w) =>
      c.category === "other" ? w.kind === "other" : w.token?.token_id === c.token_id,
    );
    wheel.markLanded(index);
    marked =
      c.category === "other"
        ? ` The Other wedge is outlined: ${quoted(c)} came from it.`
        : ` The chosen wedge, ${quoted(c)}, is outlined.`;
  }
  ui.wheelCaption.textContent =
    `${plan.caption} (${settingsText}), computed again by the model for the text at step ` +
    `${plan.version}; the events record only the chosen token.${marked}`;
  ui.wedgeInfo.textContent = `${probs.above_threshold_tokens.length} wedges at or above ${thresholdText(
    threshold,
  )} and Other: ${count(probs.other_category.token_count)} tokens, ${percent(
    probs.other_category.total_probability,
  )} together.`;
  wheel.svg.dataset.version = String(replay.version);
}

function showWedge(wedge) {
  if (!wedge) return;
  ui.wedgeInfo.textContent =
    wedge.kind === "token"
      ? `${quoted(wedge.token)}: ${percent(wedge.token.probability)}, number ${
          wedge.index + 1
        } on the wheel`
      : `Other: ${count(wedge.other.token_count)} tokens, ${percent(
          wedge.other.total_probability,
        )} together`;
}

function step(delta) {
  if (state.session) attempt(() => goTo(state.version + delta));
}

let sliderTimer = 0;
function sliderMoved() {
  window.clearTimeout(sliderTimer);
  const version = Number(ui.step.value);
  ui.stepValue.textContent = `Step ${version} of ${state.session.latest}`;
  sliderTimer = window.setTimeout(() => attempt(() => goTo(version)), 120);
}

function keydown(event) {
  if (!state.session || ui.sessionPanel.hidden) return;
  if (event.target.closest?.("input, select, textarea, .wheel")) return; // their own keys
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

// ---------------------------------------------------------------- downloads

function download(button) {
  const { scope, format } = button.dataset;
  const path =
    scope === "class"
      ? `/api/teacher/classes/${encodeURIComponent(state.classCode)}/export?format=${format}`
      : `/api/teacher/sessions/${state.session.id}/export?format=${format}`;
  attempt(async () => {
    setStatus("Preparing the download…");
    const { blob, filename } = await fetchFile(path, auth());
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    setStatus(`Downloaded ${filename}.`);
  });
}

// ---------------------------------------------------------------- start

ui.tokenForm.addEventListener("submit", signIn);
ui.forget.addEventListener("click", () => signOut());
ui.filters.addEventListener("submit", search);
ui.pagePrev.addEventListener("click", () => attempt(() => loadSessions(state.page - 1)));
ui.pageNext.addEventListener("click", () => attempt(() => loadSessions(state.page + 1)));
ui.stepPrev.addEventListener("click", () => step(-1));
ui.stepNext.addEventListener("click", () => step(1));
ui.step.addEventListener("input", sliderMoved);
document.addEventListener("keydown", keydown);
for (const button of document.querySelectorAll(".download")) {
  button.addEventListener("click", () => download(button));
}
document.body.dataset.busy = "false";
loadModels();
if (state.token) {
  ui.forget.hidden = false;
  attempt(() => loadSessions(1));
}
