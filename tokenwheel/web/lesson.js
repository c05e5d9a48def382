// Guess-first rounds on the student page (issue 15): in a class a teacher opened, the
// page asks for the class's current round (GET /api/sessions/{id}/round) every few
// seconds. An open round the student has not guessed covers their wheel with the round's
// prompt and a guess form (predict, then see); after the guess the page waits for the
// teacher; after the reveal it draws the round's wheel with how many in the class
// guessed each token, and the student's own and the unlisted guesses, scored.

import { ApiError, call } from "./api.js";
import { count, percent, quotedText } from "./format.js";
import { t } from "./i18n.js";
import { Wheel } from "./wheel.js";

const POLL_MS = 2000; // while a round is open, or none has started
const POLL_REVEALED_MS = 10000; // after a reveal: only to notice the next round
const R = 100; // the wheel's radius (wheel.js)
const BADGE_RADIUS = 86;

// The text a student guessed, as they would write it (the server scores it with the
// leading space the model writes before a word).
const guessText = (guess) => quotedText(guess.text.trim());

export class Lesson {
  // ui: {panel, prompt, form, input, submit, waiting, reveal, wheel, info, own, counts,
  // unlisted}; onCover(covered): hide or show the student's own wheel; onGuessed(version):
  // the session's version after its GuessMade event; onError(error).
  constructor(ui, { onCover, onGuessed, onError }) {
    this.ui = ui;
    this.onCover = onCover;
    this.onGuessed = onGuessed;
    this.onError = onError;
    this.session = null;
    this.round = null;
    this.timer = 0;
    this.asking = false;
    this.sending = false;
    this.drawn = null; // the round_id of the revealed wheel on screen
    this.wheel = new Wheel(ui.wheel, {
      onShow: (item) => {
        ui.info.textContent = item ? this.itemInfo(item) : "";
      },
    });
    // nothing spins here: no pointer (and the page's one data-testid="pointer" is the
    // student's own wheel's)
    ui.wheel.querySelector(".pointer").remove();
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.guess();
    });
  }

  // Whether the student's own wheel is covered now (an open round, not guessed yet).
  get covers() {
    const r = this.round;
    return Boolean(r && r.status === "open" && !r.your_guess);
  }

  // A session in an opened class: ask for its round now, then every few seconds.
  async join(sessionId) {
    this.leave();
    this.session = sessionId;
    await this.poll();
  }

  // No class session any more (a new session, an expired one): stop asking.
  leave() {
    window.clearTimeout(this.timer);
    this.session = null;
    this.round = null;
    this.drawn = null;
    this.render();
  }

  async poll() {
    window.clearTimeout(this.timer);
    const session = this.session;
    if (!session) return;
    if (!this.asking) {
      this.asking = true;
      try {
        const answer = await call("GET", `/api/sessions/${session}/round`);
        if (session !== this.session) return;
        this.round = answer.round;
        this.render();
      } catch (error) {
        if (session !== this.session) return;
        if (error instanceof ApiError && error.status === 404) {
          this.leave(); // no longer a session of an opened class
          return;
        }
        // a busy server or a lost answer: ask again at the next tick
      } finally {
        this.asking = false;
      }
    }
    if (session !== this.session) return;
    const wait = this.round?.status === "revealed" ? POLL_REVEALED_MS : POLL_MS;
    this.timer = window.setTimeout(() => this.poll(), wait);
  }

  async guess() {
    const ui = this.ui;
    const text = ui.input.value.trim();
    if (!text || this.sending || !this.covers) {
      if (!text) ui.input.focus();
      return;
    }
    this.sending = true;
    ui.submit.setAttribute("aria-disabled", "true");
    const session = this.session;
    try {
      const guess = await call("POST", `/api/sessions/${session}/guess`, {
        round_id: this.round.round_id,
        text,
      });
      if (session !== this.session) return;
      this.onGuessed(guess.version);
      this.round = { ...this.round, your_guess: guess };
      ui.input.value = "";
      this.render();
      ui.waiting.focus();
      this.poll(); // the class's count of guesses, with this one
    } catch (error) {
      this.onError(error);
      await this.poll(); // Already guessed, Round not open: show the round as it is
    } finally {
      this.sending = false;
      ui.submit.setAttribute("aria-disabled", "false");
    }
  }

  // ------------------------------------------------------------ showing it

  render() {
    const ui = this.ui;
    const r = this.round;
    ui.panel.hidden = !this.session || !r;
    // the page grows past one screen for the round (style.css: body.in-round)
    document.body.classList.toggle("in-round", !ui.panel.hidden);
    let shown = "none";
    if (r) shown = r.status === "revealed" ? "revealed" : r.your_guess ? "waiting" : "guessing";
    ui.panel.dataset.state = shown;
    if (r) this.renderRound(r);
    this.onCover(this.covers); // last: the guess form is shown by then, to take the focus
  }

  renderRound(r) {
    const ui = this.ui;
    ui.prompt.textContent = t("lesson.prompt", { prompt: quotedText(r.prompt) });
    ui.form.hidden = !this.covers;
    ui.waiting.hidden = !(r.status === "open" && r.your_guess);
    if (r.status === "open" && r.your_guess) {
      ui.waiting.textContent = t("lesson.waiting", {
        guess: guessText(r.your_guess),
        count: r.guess_count,
      });
    }
    ui.reveal.hidden = r.status !== "revealed" || !r.revealed;
    if (r.status === "revealed" && r.revealed) this.renderReveal(r);
    else this.drawn = null;
  }

  // A new language: the wedges' names, the badges and the lists again.
  relabel() {
    this.drawn = null;
    this.ui.info.textContent = "";
    this.render();
  }

  renderReveal(r) {
    const ui = this.ui;
    const { wheel, unlisted_guesses: unlisted } = r.revealed;
    if (this.drawn !== r.round_id) {
      // drawn once per round (and language): a poll must not move the keyboard's place
      this.wheel.draw(wheel);
      this.badges();
      this.drawn = r.round_id;
    }
    ui.own.textContent = r.your_guess
      ? this.guessLine("lesson.yourGuess", r.your_guess)
      : t("lesson.noGuess");

    const counted = [...wheel.above_threshold_tokens, ...wheel.other_category.sample_tokens]
      .filter((token) => token.guess_count > 0)
      .sort((a, b) => b.guess_count - a.guess_count || b.probability - a.probability);
    ui.counts.replaceChildren();
    for (const token of counted) {
      const item = document.createElement("li");
      item.dataset.tokenId = String(token.token_id);
      item.dataset.guessCount = String(token.guess_count);
      item.textContent = t("lesson.onWheel", {
        token: quotedText(token.display_text),
        count: token.guess_count,
        share: percent(token.probability),
      });
      ui.counts.appendChild(item);
    }
    const otherCount = wheel.other_category.guess_count;
    const listedInOther = wheel.other_category.sample_tokens.reduce((n, x) => n + x.guess_count, 0);
    if (otherCount > listedInOther) {
      const item = document.createElement("li");
      item.textContent = t("lesson.inOther", { count: otherCount - listedInOther });
      ui.counts.appendChild(item);
    }
    ui.unlisted.replaceChildren();
    for (const guess of unlisted) {
      const item = document.createElement("li");
      item.dataset.guessCount = String(guess.count);
      item.textContent = this.guessLine("lesson.unlisted", guess);
      ui.unlisted.appendChild(item);
    }
    ui.noCounts.hidden = counted.length > 0 || unlisted.length > 0 || otherCount > 0;
  }

  // One guess scored: one token (its probability and rank), or several (the first
  // piece's, and the whole text's).
  guessLine(key, guess) {
    const params = {
      guess: guessText(guess),
      count: guess.count ?? 1,
      share: percent(guess.first_token_probability),
      rank: guess.first_token_rank,
      pieces: guess.token_ids.length,
      whole: percent(guess.text_probability),
    };
    // GET .../round's own guess has no `single_token`: its tokens say it
    const single = guess.single_token ?? guess.token_ids.length === 1;
    return t(single ? `${key}.one` : `${key}.pieces`, params);
  }

  // Each wedge someone guessed: a badge with the count near the rim, and the count in the
  // wedge's name.
  badges() {
    const svg = this.ui.wheel;
    const layer = svg.querySelector(".labels");
    this.wheel.items.forEach((item, i) => {
      const node = this.wheel.nodes[i];
      const guesses = item.token ? item.token.guess_count : 0;
      node.dataset.guessCount = String(guesses);
      if (!guesses) return;
      const name = `${node.getAttribute("aria-label")}; ${t("lesson.guesses", { count: guesses })}`;
      node.setAttribute("aria-label", name);
      node.querySelector("title").textContent = name;
      const a = Math.PI * (item.start + item.end);
      const [x, y] = [BADGE_RADIUS * Math.sin(a), -BADGE_RADIUS * Math.cos(a)];
      const ns = "http://www.w3.org/2000/svg";
      const badge = document.createElementNS(ns, "g");
      badge.setAttribute("class", "guess-badge");
      badge.setAttribute("transform", `translate(${x.toFixed(2)} ${y.toFixed(2)})`);
      const circle = document.createElementNS(ns, "circle");
      circle.setAttribute("r", String(R / 12));
      const text = document.createElementNS(ns, "text");
      text.setAttribute("dy", "0.35em");
      text.textContent = count(guesses);
      badge.append(circle, text);
      layer.appendChild(badge);
    });
  }

  itemInfo(item) {
    if (!item.token) {
      const share = item.rest?.share ?? item.other?.total_probability ?? 0;
      return t("lesson.restInfo", { share: percent(share) });
    }
    return t("lesson.wedgeInfo", {
      token: quotedText(item.token.display_text),
      share: percent(item.token.probability),
      rank: item.rank,
      count: item.token.guess_count,
    });
  }
}
