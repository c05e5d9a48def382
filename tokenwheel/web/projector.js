// The projector view (/teacher/projector?class=CODE): full screen, read-only, large type
// for the back of a room. It shows the class's current round: before the reveal its
// prompt and how many guesses came in; after it the round's wheel with the class's
// guesses marked (rounds.js) and the guesses no wedge holds. It polls the class every
// 2 s (GET /api/teacher/classes/{code}); a revealed round's wheel is read with a GET of
// its reveal route, which changes nothing. The token is
// the teacher page's (this tab's session storage), or typed here.
//
// With &session=ID it shows one student's live wheel instead: their nickname, their text
// and the wheel they face now (GET /api/teacher/sessions/{id}, then the wheel at its
// latest version, at the threshold and temperature of their last token).

import { ApiError, call, explain, showMessage } from "./api.js";
import { decimal, quotedText } from "./format.js";
import { onLanguageChange, t, translatePage } from "./i18n.js";
import { drawRevealed, listRevealed } from "./rounds.js";
import { OTHER_TOP_K, Wheel } from "./wheel.js";

const TOKEN_KEY = "tokenwheel.teacherToken"; // as teacher.js keeps it
const POLL_MS = 2000;
const DEFAULTS = { threshold: 0.01, temperature: 1.0 }; // the student API's defaults

const $ = (id) => document.getElementById(id);
const ui = {
  tokenForm: $("token-form"),
  token: $("token"),
  message: $("message"),
  messageTitle: $("message-title"),
  messageText: $("message-text"),
  title: $("projector-class"),
  join: $("projector-join"),
  round: $("projector-round"),
  prompt: $("projector-prompt"),
  count: $("projector-count"),
  revealed: $("projector-revealed"),
  tokens: $("projector-tokens"),
  unlisted: $("projector-unlisted"),
  empty: $("projector-empty"),
  student: $("projector-student"),
  text: $("projector-text"),
  note: $("projector-student-note"),
};

const params = new URLSearchParams(window.location.search);
const code = params.get("class") ?? "";
const sessionId = params.get("session") ?? "";
const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  room: null, // the class's detail
  result: null, // {round_id, ...the reveal's answer} of the round shown
  error: null,
  timer: 0,
  student: null, // {detail, probs}: the student shown (with &session=ID)
};
const wheel = new Wheel($("projector-wheel"), { onShow: () => {} });
const studentWheel = new Wheel($("projector-student-wheel"), { onShow: () => {} });

const ERRORS = {
  401: () => ({ kind: "token", title: t("error.token.title"), text: t("error.token.text") }),
  403: () => ({ kind: "off", title: t("error.off.title"), text: t("error.off.text") }),
  404: () => ({
    kind: "missing",
    title: t("error.missing.title"),
    text: t("projector.noClass", { code }),
  }),
};

function teacher(path, query = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const search = new URLSearchParams(query).toString();
  return call("GET", `/api/teacher${path}${search ? `?${search}` : ""}`, undefined, headers);
}

function request(method, path) {
  const headers = { Authorization: `Bearer ${state.token}` };
  return call(method, `/api/teacher/classes/${encodeURIComponent(code)}${path}`, undefined, headers);
}

function showError(error) {
  state.error = error;
  const info = explain(error, ERRORS);
  showMessage(ui, error, info);
  if (info.kind === "token" || info.kind === "off") {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    ui.tokenForm.hidden = false;
  }
}

// The student shown: their session now and, when it changed, the wheel they face
// (true: something changed).
async function refreshStudent() {
  const path = `/sessions/${encodeURIComponent(sessionId)}`;
  const detail = await teacher(path);
  if (state.student?.detail.session.version === detail.session.version) return false;
  let probs = null;
  if (detail.state.initial_prompt !== null && !detail.state.deleted) {
    const last = detail.timeline.filter((e) => e.type === "TokenAppended").pop();
    const settings = last
      ? { threshold: last.payload.threshold, temperature: last.payload.temperature }
      : DEFAULTS;
    probs = await teacher(`${path}/next-token-probs`, {
      version: detail.session.version,
      ...settings,
      other_top_k: OTHER_TOP_K,
    });
  }
  state.student = { detail, probs };
  return true;
}

async function refresh() {
  window.clearTimeout(state.timer);
  if (!state.token || !(code || sessionId)) return;
  try {
    if (sessionId) {
      const changed = await refreshStudent();
      state.error = null;
      ui.message.hidden = true;
      if (changed) renderStudent();
      schedule();
      return;
    }
    const room = await request("GET", "");
    const last = room.rounds.at(-1);
    if (last?.status === "revealed" && state.result?.round_id !== last.round_id) {
      state.result = await request("GET", `/rounds/${last.round_id}/reveal`);
    }
    state.room = room;
    state.error = null;
    ui.message.hidden = true;
    render();
  } catch (error) {
    showError(error);
    if (!(error instanceof ApiError) || ![401, 403, 404].includes(error.status)) schedule();
    return;
  }
  schedule();
}

function schedule() {
  state.timer = window.setTimeout(refresh, POLL_MS);
}

function renderStudent() {
  if (!state.student) return;
  const { detail, probs } = state.student;
  const nickname = detail.timeline[0]?.payload.nickname;
  ui.title.textContent = nickname ?? t("live.anonymous", { id: sessionId.slice(0, 4) });
  const klass = detail.session.class_code;
  ui.join.textContent = klass ? t("projector.join", { code: klass }) : "";
  ui.round.hidden = true;
  ui.empty.hidden = true;
  ui.student.hidden = false;
  ui.student.dataset.version = String(detail.session.version);
  ui.text.textContent = detail.state.current_text;
  if (detail.state.deleted) ui.note.textContent = t("live.left");
  else if (!probs) ui.note.textContent = t("live.noPrompt");
  else {
    ui.note.textContent = t("projector.studentTokens", {
      count: detail.state.generation_count,
      temperature: decimal(probs.temperature),
    });
  }
  $("projector-student-wheel").parentElement.hidden = !probs;
  if (probs) studentWheel.draw(probs);
}

function render() {
  if (sessionId) {
    renderStudent();
    return;
  }
  if (!code) {
    ui.empty.hidden = false;
    ui.empty.textContent = t("projector.noCode");
    return;
  }
  const room = state.room;
  document.body.dataset.classCode = code;
  if (!room) return;
  ui.title.textContent = t("projector.title", { name: room.name });
  ui.join.textContent = t("projector.join", { code: room.class_code });
  const round = room.rounds.at(-1) ?? null;
  ui.round.hidden = round === null;
  ui.empty.hidden = round !== null;
  if (!round) {
    ui.empty.textContent = t("projector.noRound");
    return;
  }
  ui.round.dataset.roundId = round.round_id;
  ui.round.dataset.status = round.status;
  ui.round.dataset.guesses = String(round.guess_count);
  ui.prompt.textContent = quotedText(round.prompt);
  const revealed = round.status === "revealed" && state.result?.round_id === round.round_id;
  ui.count.textContent = revealed
    ? t("projector.revealedCount", {
        count: round.guess_count,
        temperature: decimal(round.temperature),
        model: round.model_name,
      })
    : t("projector.guesses", { count: round.guess_count });
  ui.revealed.hidden = !revealed;
  if (revealed) {
    drawRevealed(wheel, state.result);
    listRevealed(ui.tokens, ui.unlisted, state.result, 3);
  }
}

function signIn(event) {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    ui.token.focus();
    return;
  }
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  ui.token.value = "";
  ui.tokenForm.hidden = true;
  refresh();
}

translatePage();
onLanguageChange(() => {
  render();
  if (state.error && !ui.message.hidden) showError(state.error);
});
ui.tokenForm.addEventListener("submit", signIn);
$("sign-in").disabled = false;
ui.tokenForm.hidden = Boolean(state.token);
render();
refresh();
