// The teacher page's classes: open a class (its join code shown large, and spelled out
// to read aloud), the teacher's classes with close and reopen, and one class chosen: its
// students, its rounds, a guess-first round started, followed (the guesses come in, polled
// every 2 s) and revealed (rounds.js draws the wheel with the guesses marked). Links to
// the class's live grid and to the projector view; the class's charts (class-charts.js).
// Only the teacher API, with the token the teacher page holds.

import { call } from "./api.js";
import { count, decimal, quotedText, shortDateTime } from "./format.js";
import { ClassCharts } from "./class-charts.js";
import { t } from "./i18n.js";
import { drawRevealed, listRevealed } from "./rounds.js";
import { Wheel } from "./wheel.js";

const POLL_MS = 2000;
const LIST_SIZE = 20;

const $ = (id) => document.getElementById(id);

export class ClassDesk {
  // token(): the teacher token; attempt(work): runs work, showing its error;
  // watchLive(code): opens the live grid of a class.
  constructor({ token, attempt, watchLive }) {
    this.token = token;
    this.attempt = attempt;
    this.watchLive = watchLive;
    this.ui = {
      panel: $("classes"),
      form: $("open-class"),
      name: $("class-name"),
      joinBox: $("join-box"),
      joinCode: $("join-code"),
      joinSpoken: $("join-spoken"),
      rows: $("class-rows"),
      room: $("class-room"),
      roomTitle: $("room-title"),
      roomMeta: $("room-meta"),
      roomLive: $("room-live"),
      roomProjector: $("room-projector"),
      studentsTitle: $("students-title"),
      students: $("room-students"),
      startForm: $("start-round"),
      prompt: $("round-prompt-input"),
      temperature: $("round-temperature"),
      roundList: $("round-list"),
      round: $("round"),
      roundTitle: $("round-title"),
      roundPrompt: $("round-prompt"),
      roundCount: $("round-count"),
      guessers: $("round-guessers"),
      reveal: $("reveal"),
      revealed: $("round-revealed"),
      tokens: $("round-tokens"),
      unlisted: $("round-unlisted"),
    };
    this.classes = []; // [{class, students}] as listed
    this.opened = null; // the class just opened: its join code is shown
    this.room = null; // the chosen class's detail
    this.current = null; // the round shown: its detail (with guesses)
    this.result = null; // its reveal answer
    this.timer = 0;
    this.wheel = new Wheel($("round-wheel"), { onShow: () => {} });
    // the chosen class's charts (class-charts.js), drawn when the teacher asks
    this.charts = new ClassCharts({ request: (...args) => this.request(...args), attempt });

    this.ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.open());
    });
    this.ui.startForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.startRound());
    });
    this.ui.reveal.addEventListener("click", () => this.attempt(() => this.revealRound()));
    this.ui.roomLive.addEventListener("click", () => this.watchLive(this.room.class_code));
    for (const id of ["open-class-button", "start-round-button"]) $(id).disabled = false;
  }

  request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token()}` };
    return call(method, `/api/teacher/classes${path}`, body, headers);
  }

  // ------------------------------------------------------------ the list

  async show() {
    const list = await this.request("GET", `?page_size=${LIST_SIZE}`);
    // the list has no students: each class's detail says who joined
    this.classes = await Promise.all(
      list.classes.map((klass) => this.request("GET", `/${klass.class_code}`)),
    );
    this.ui.panel.hidden = false;
    this.renderList();
  }

  hide() {
    this.stopPolling();
    this.ui.panel.hidden = true;
    this.ui.room.hidden = true;
    this.room = null;
    this.current = null;
    this.result = null;
    this.charts.forClass(null); // signed out: no class's numbers stay on the page
  }

  async open() {
    const name = this.ui.name.value.trim();
    if (!name) {
      this.ui.name.focus();
      return;
    }
    const opened = await this.request("POST", "", { name });
    this.ui.name.value = "";
    this.opened = opened.class_code;
    await this.show();
    this.renderJoin();
    await this.choose(opened.class_code);
  }

  renderJoin() {
    this.ui.joinBox.hidden = this.opened === null;
    if (this.opened === null) return;
    this.ui.joinCode.textContent = this.opened;
    // one character at a time, with the name of each digit: easy to read out loud
    this.ui.joinSpoken.textContent = t("classes.spoken", { letters: [...this.opened].join(" · ") });
  }

  renderList() {
    this.ui.rows.replaceChildren();
    for (const klass of this.classes) this.ui.rows.appendChild(this.row(klass));
    if (!this.classes.length) {
      const row = document.createElement("tr");
      const td = row.insertCell();
      td.colSpan = 5;
      td.textContent = t("classes.none");
      this.ui.rows.appendChild(row);
    }
  }

  row(klass) {
    const row = document.createElement("tr");
    row.dataset.classCode = klass.class_code;
    row.insertCell().textContent = klass.name;
    const code = row.insertCell();
    code.className = "class-code";
    code.textContent = klass.class_code;
    const status = row.insertCell();
    status.className = `state ${klass.status}`;
    status.textContent = t(`classes.status.${klass.status}`);
    const students = row.insertCell();
    students.className = "number";
    students.textContent = count(klass.students.length);
    const actions = row.insertCell();
    actions.className = "actions";
    const which = (key) => {
      const span = document.createElement("span");
      span.className = "visually-hidden";
      span.textContent = ` ${t("classes.which", { name: klass.name })}`;
      const button = document.createElement("button");
      button.type = "button";
      button.append(t(key), span);
      actions.appendChild(button);
      return button;
    };
    which("classes.choose").addEventListener("click", () =>
      this.attempt(() => this.choose(klass.class_code)),
    );
    const change = klass.status === "open" ? "close" : "reopen";
    const toggle = which(`classes.${change}`);
    toggle.dataset.action = change;
    toggle.addEventListener("click", () => this.attempt(() => this.change(klass.class_code, change)));
    return row;
  }

  async change(code, action) {
    await this.request("POST", `/${code}/${action}`);
    await this.show();
    if (this.room?.class_code === code) await this.choose(code);
  }

  // ------------------------------------------------------------ one class

  async choose(code) {
    this.room = await this.request("GET", `/${code}`);
    const last = this.room.rounds.at(-1) ?? null;
    if (last && last.round_id !== this.current?.round_id) {
      this.result = null;
      this.current = await this.request("GET", `/${code}/rounds/${last.round_id}`);
      if (this.current.status === "revealed") await this.revealRound(); // answers the same
    } else if (!last) {
      this.current = null;
      this.result = null;
    }
    // the list's row of this class says who joined as of now too
    const listed = this.classes.findIndex((klass) => klass.class_code === code);
    if (listed >= 0) {
      this.classes[listed] = this.room;
      this.renderList();
    }
    this.ui.room.hidden = false;
    this.renderRoom();
    this.follow();
  }

  renderRoom() {
    const room = this.room;
    if (!room) return;
    this.ui.room.dataset.classCode = room.class_code;
    this.charts.forClass(room.class_code);
    this.ui.roomTitle.textContent = t("classes.roomTitle", { name: room.name, code: room.class_code });
    this.ui.roomMeta.textContent = t("classes.roomMeta", {
      status: t(`classes.status.${room.status}`),
      created: shortDateTime(room.created_at),
    });
    this.ui.roomProjector.href = `/teacher/projector?class=${encodeURIComponent(room.class_code)}`;
    this.ui.studentsTitle.textContent = t("classes.students", { count: room.students.length });
    this.ui.students.replaceChildren();
    for (const student of room.students) {
      const item = document.createElement("li");
      item.dataset.sessionId = student.session_id;
      // the student's own wheel on the projector
      const link = document.createElement("a");
      link.className = "project-student";
      const query = new URLSearchParams({ class: room.class_code, session: student.session_id });
      link.href = `/teacher/projector?${query}`;
      link.textContent = t("classes.projectStudent");
      const which = document.createElement("span");
      which.className = "visually-hidden";
      which.textContent = ` ${t("classes.projectWhich", { name: student.nickname })}`;
      link.appendChild(which);
      const name = document.createElement("span");
      name.className = "nickname";
      name.textContent = student.nickname;
      item.append(name, " ", link);
      this.ui.students.appendChild(item);
    }
    if (!room.students.length) {
      const item = document.createElement("li");
      item.className = "hint";
      item.textContent = t("classes.noStudents", { code: room.class_code });
      this.ui.students.appendChild(item);
    }
    this.ui.roundList.replaceChildren();
    for (const round of room.rounds) {
      const item = document.createElement("li");
      item.dataset.roundId = round.round_id;
      item.textContent = t("rounds.listed", {
        prompt: quotedText(round.prompt),
        status: t(`rounds.status.${round.status}`),
        count: round.guess_count,
      });
      this.ui.roundList.appendChild(item);
    }
    this.renderRound();
  }

  // ------------------------------------------------------------ rounds

  async startRound() {
    const prompt = this.ui.prompt.value;
    if (!prompt.trim()) {
      this.ui.prompt.focus();
      return;
    }
    const body = { prompt };
    const temperature = this.ui.temperature.valueAsNumber;
    if (Number.isFinite(temperature)) body.temperature = temperature;
    const code = this.room.class_code;
    const round = await this.request("POST", `/${code}/rounds`, body);
    this.ui.prompt.value = "";
    this.current = { ...round, guesses: [] };
    this.result = null;
    await this.choose(code);
  }

  // While the round shown is open, ask for its guesses every POLL_MS.
  follow() {
    this.stopPolling();
    if (!this.current || this.current.status !== "open" || this.ui.room.hidden) return;
    this.timer = window.setTimeout(() => this.poll(), POLL_MS);
  }

  stopPolling() {
    window.clearTimeout(this.timer);
    this.timer = 0;
  }

  async poll() {
    const shown = this.current;
    if (!shown || !this.room) return;
    try {
      const fresh = await this.request("GET", `/${this.room.class_code}/rounds/${shown.round_id}`);
      if (this.current?.round_id !== shown.round_id) return;
      this.current = fresh;
      this.renderRound();
    } catch {
      // a missed poll: the next one tries again
    }
    this.follow();
  }

  async revealRound() {
    const round = this.current;
    const path = `/${this.room?.class_code ?? round.class_code}/rounds/${round.round_id}/reveal`;
    this.result = await this.request("POST", path);
    this.current = {
      ...this.current,
      ...this.result,
      guesses: this.current.guesses,
      guess_count: this.result.guess_count,
    };
    this.stopPolling();
    if (this.room && !this.ui.room.hidden) {
      this.room = await this.request("GET", `/${this.room.class_code}`);
      this.renderRoom();
    }
  }

  renderRound() {
    const round = this.current;
    this.ui.round.hidden = round === null;
    if (!round) return;
    this.ui.round.dataset.roundId = round.round_id;
    this.ui.round.dataset.status = round.status;
    this.ui.round.dataset.guesses = String(round.guess_count);
    this.ui.roundTitle.textContent = t(`rounds.heading.${round.status}`);
    this.ui.roundPrompt.textContent = t("rounds.promptShown", {
      prompt: quotedText(round.prompt),
      model: round.model_name,
      temperature: decimal(round.temperature),
    });
    this.ui.roundCount.textContent = t("rounds.guesses", { count: round.guess_count });
    this.ui.guessers.replaceChildren();
    for (const guess of round.guesses ?? []) {
      const item = document.createElement("li");
      item.dataset.sessionId = guess.session_id;
      // before the reveal, who guessed; after it, what they guessed too
      item.textContent =
        round.status === "revealed"
          ? t("rounds.guessedWhat", { name: guess.nickname, text: quotedText(guess.text) })
          : guess.nickname;
      this.ui.guessers.appendChild(item);
    }
    this.ui.reveal.hidden = round.status !== "open";
    this.ui.revealed.hidden = this.result === null;
    if (this.result) {
      drawRevealed(this.wheel, this.result);
      listRevealed(this.ui.tokens, this.ui.unlisted, this.result);
    }
  }

  relabel() {
    this.renderList();
    this.renderJoin();
    this.renderRoom();
    this.charts.render();
  }
}
