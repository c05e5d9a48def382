// "Spin many": the wheel spun 10, 100 or 1000 times by the server (POST
// /api/sessions/{id}/sample), nothing appended, shown in a dialog as a table: for each
// wedge and Other, its probability, the spins that landed on it and their share, with a
// bar for the share and a line at the probability. With sampling rules on, the spins
// follow them (the page sends its rules): a column gives each wedge's share with the
// rules (`sampling_probability`, what its share of spins tends to), the line marks that
// share, and a cut wedge's row is greyed and says "cut" (it has 0 spins). The numbers are
// the table's text; the bars are a picture of them (hidden from screen readers, which
// read the table).

import { call } from "./api.js";
import { count, percent, showToken } from "./format.js";
import { t } from "./i18n.js";
import { rulesOf } from "./rules.js";
import { rulesOn } from "./wheel.js";

export const SPINS = [10, 100, 1000];

// A seed the page can show exactly: the server's own seeds go up to 2**63, past what a
// JavaScript number holds, so the page picks one below 2**53 and sends it.
function newSeed() {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high % 2 ** 21) * 2 ** 32 + low;
}

function cell(row, text, className = "") {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text !== null) td.textContent = text;
  row.appendChild(td);
  return td;
}

export class SampleChart {
  // `ui`: {dialog, title, summary, note, legend, kept (the "with the rules" column's
  // heading), rows (a <tbody>), again (a button)}
  constructor(ui) {
    this.ui = ui;
    this.result = null;
    this.opener = null;
    ui.dialog.addEventListener("close", () => this.opener?.focus());
  }

  // Spin the wheel of `probs` `n` times (at its temperature, threshold and sampling
  // rules) and show the counts; `opener` gets the focus back when the dialog closes.
  async run(sessionId, probs, n, opener = null) {
    const body = {
      n,
      seed: newSeed(),
      temperature: probs.temperature,
      threshold: probs.threshold,
      ...rulesOf(probs),
    };
    const result = await call("POST", `/api/sessions/${sessionId}/sample`, body);
    this.result = result;
    if (opener) this.opener = opener;
    this.render();
    if (!this.ui.dialog.open) this.ui.dialog.showModal();
  }

  render() {
    const { result, ui } = this;
    if (!result) return;
    // the rules the spins were drawn with (the answer's, not the sliders' now)
    const rules = rulesOn(result);
    ui.title.textContent = t("many.title", { n: count(result.n) });
    ui.summary.textContent = t("many.summary", { n: count(result.n), seed: String(result.seed) });
    ui.note.hidden = !rules;
    ui.note.textContent = t("many.rules");
    ui.legend.textContent = t(rules ? "many.legendRules" : "many.legend");
    ui.kept.hidden = !rules;
    ui.again.textContent = t("many.again", { n: count(result.n) });
    ui.again.dataset.n = String(result.n);
    ui.dialog.dataset.seed = String(result.seed);
    ui.dialog.dataset.n = String(result.n);
    ui.dialog.dataset.rules = String(rules);
    const other = result.other;
    const rows = [
      ...result.tokens.map((token) => ({
        token,
        probability: token.probability,
        kept: token.kept,
        share: token.sampling_probability,
        hits: token.count,
      })),
      {
        token: null,
        probability: other.probability,
        kept: other.kept_token_count > 0,
        share: other.sampling_probability,
        hits: other.count,
      },
    ];
    // the line marks what the share of spins tends to: the probability, or with the rules
    // the share the rules give
    const expected = (r) => (rules ? r.share : r.probability);
    const scale = Math.max(...rows.map((r) => Math.max(expected(r), r.hits / result.n)), 1e-9);
    ui.rows.replaceChildren();
    for (const r of rows) {
      const row = document.createElement("tr");
      row.dataset.tokenId = r.token ? String(r.token.token_id) : "other";
      row.dataset.count = String(r.hits);
      row.dataset.kept = String(r.kept);
      if (rules && !r.kept) row.className = "cut";
      const name = document.createElement("th");
      name.scope = "row";
      if (r.token) {
        name.className = "token-plain";
        showToken(name, r.token);
      } else name.textContent = t("wheel.other");
      row.appendChild(name);
      const share = r.hits / result.n;
      cell(row, percent(r.probability), "number");
      const kept = cell(row, r.kept ? percent(r.share) : t("many.cut"), "number");
      kept.hidden = !rules;
      cell(row, count(r.hits), "number").dataset.count = String(r.hits);
      cell(row, percent(share), "number");
      const chart = cell(row, null, "bar-cell");
      chart.setAttribute("aria-hidden", "true");
      const track = document.createElement("div");
      track.className = "bar-track";
      const bar = document.createElement("div");
      bar.className = "bar-observed";
      bar.style.width = `${(100 * share) / scale}%`;
      track.appendChild(bar);
      if (!rules || r.kept) {
        const mark = document.createElement("div");
        mark.className = "bar-expected";
        mark.style.left = `${(100 * expected(r)) / scale}%`;
        track.appendChild(mark);
      }
      chart.appendChild(track);
      ui.rows.appendChild(row);
    }
  }
}
