// The chosen class's charts on the teacher page (issue 15, item 5), plain SVG drawn here:
// (a) first tokens chosen against expected, for every wheel two or more sessions shared;
// (b) each student's average probability and Other rate; (c) for each revealed round,
// the model's probability of its top tokens against the share of the class's guesses
// that named each. The numbers come from GET /api/teacher/classes/{code}/statistics and
// the reveal route (a revealed round answers the same again and stores nothing).
//
// Every chart is horizontal grouped bars: one row per token or student, one bar per
// series. Each has a title, a line in plain words, a legend, axis labels, and a table of
// its numbers for screen readers (visually hidden); the SVG is an image named by its
// title. Every bar carries its number unrounded (data-series, data-key, data-value), as
// does every cell of the table, so a test can hold them to the API's answers.

import { count, decimal, percent, quotedText, showToken } from "./format.js";
import { numberFormat, t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const MAX_ROUNDS = 6; // the latest revealed rounds, newest first
const TOP_TOKENS = 8; // the model's most likely tokens a round's chart shows

// The layout, in SVG user units (the SVG scales to its box).
const WIDTH = 480;
const CATEGORY_W = 20; // the rotated category label
const LABEL_W = 118; // row labels, right-aligned against the plot
const VALUE_W = 58; // room for the value after the longest bar
const PLOT_X = CATEGORY_W + LABEL_W;
const PLOT_W = WIDTH - PLOT_X - VALUE_W;
const BAR_H = 14;
const BAR_GAP = 2;
const ROW_GAP = 10;
const TOP = 6;
const AXIS_H = 44;
const LABEL_CHARS = 14;

const $ = (id) => document.getElementById(id);
let serial = 0;
const newId = (what) => `chart-${what}-${++serial}`;
const classes = (...names) => names.join(" ");

function svgEl(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  parent.appendChild(node);
  return node;
}

function htmlEl(name, className, parent, text = null) {
  const node = document.createElement(name);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  parent.appendChild(node);
  return node;
}

// ---------------------------------------------------------------- scales

function wholePercent(p) {
  return numberFormat({ style: "percent", maximumFractionDigits: 0 }).format(p);
}

const PERCENT_SCALE = { max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], format: wholePercent };

// Counts of sessions: whole steps of 1, 2 or 5 (times a power of ten), about four of them.
function countScale(largest) {
  const top = Math.max(1, largest);
  const rough = top / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough));
  const max = Math.ceil(top / step) * step;
  const ticks = [];
  for (let v = 0; v <= max; v += step) ticks.push(v);
  return { max, ticks, format: count };
}

// ---------------------------------------------------------------- one plot

// A row's label: a token (shown by the server's display fields) or a plain text.
function label(parent, row, svg) {
  if (row.token && row.token.display_text !== undefined) {
    showToken(parent, row.token, { max: LABEL_CHARS, svg });
  } else if (row.token) {
    parent.textContent = quotedText(row.token.token_text);
  } else {
    const text = [...row.text];
    parent.textContent =
      text.length > LABEL_CHARS && svg ? `${text.slice(0, LABEL_CHARS - 1).join("")}…` : row.text;
  }
}

function drawAxes(svg, spec, height, bottom) {
  const { scale } = spec;
  for (const tick of scale.ticks) {
    const x = PLOT_X + (PLOT_W * tick) / scale.max;
    svgEl("line", { class: "chart-grid", x1: x, x2: x, y1: TOP - 2, y2: bottom }, svg);
    const text = svgEl("text", { class: "chart-tick", x, y: bottom + 16 }, svg);
    text.setAttribute("text-anchor", "middle");
    text.textContent = scale.format(tick);
  }
  svgEl("line", { class: "chart-axis", x1: PLOT_X, x2: PLOT_X + PLOT_W, y1: bottom, y2: bottom }, svg);
  svgEl("line", { class: "chart-axis", x1: PLOT_X, x2: PLOT_X, y1: TOP - 2, y2: bottom }, svg);
  const axis = svgEl("text", { class: "chart-axis-label", x: PLOT_X + PLOT_W / 2, y: height - 6 }, svg);
  axis.setAttribute("text-anchor", "middle");
  axis.textContent = spec.axisLabel;
  const middle = TOP + (bottom - TOP) / 2;
  const category = svgEl(
    "text",
    { class: "chart-axis-label", transform: `translate(12 ${middle}) rotate(-90)` },
    svg,
  );
  category.setAttribute("text-anchor", "middle");
  category.textContent = spec.categoryLabel;
}

function drawRows(svg, spec, rowHeight) {
  const { scale, series } = spec;
  const middle = (series.length * (BAR_H + BAR_GAP) - BAR_GAP) / 2 + 4.5; // a label's baseline
  spec.rows.forEach((row, i) => {
    const y0 = TOP + i * rowHeight;
    const group = svgEl("g", { class: "chart-row", "data-key": row.key }, svg);
    const name = svgEl("text", { class: "chart-label", x: PLOT_X - 6, y: y0 + middle }, group);
    name.setAttribute("text-anchor", "end");
    label(name, row, true);
    if (row.note) {
      const note = svgEl("text", { class: "chart-note", x: PLOT_X + 6, y: y0 + middle }, group);
      note.textContent = row.note;
      return;
    }
    series.forEach((s, j) => {
      const value = row.values[j];
      const y = y0 + j * (BAR_H + BAR_GAP);
      const text = svgEl("text", { class: "chart-value", y: y + BAR_H - 3 }, group);
      if (value === null || value === undefined) {
        text.setAttribute("x", PLOT_X + 4);
        text.textContent = "–";
        return;
      }
      const width = Math.max(0, Math.min(1, value / scale.max)) * PLOT_W;
      svgEl(
        "rect",
        {
          class: classes("chart-bar", `series-${j}`),
          x: PLOT_X,
          y,
          width: width.toFixed(2),
          height: BAR_H,
          "data-series": s.key,
          "data-key": row.key,
          "data-value": String(value),
        },
        group,
      );
      text.setAttribute("x", (PLOT_X + width + 4).toFixed(2));
      text.textContent = s.format(value);
    });
  });
}

// The numbers as a table (visually hidden: what a screen reader reads for the chart).
function numbersTable(parent, spec, caption) {
  const table = htmlEl("table", classes("visually-hidden", "chart-table"), parent);
  table.createCaption().textContent = t("charts.table", { title: caption });
  const head = table.createTHead().insertRow();
  const columns = [spec.categoryLabel, ...spec.series.map((s) => s.label)];
  if (spec.detail) columns.push(spec.detail.label);
  for (const text of columns) {
    const th = htmlEl("th", "", head, text);
    th.scope = "col";
  }
  const body = table.createTBody();
  for (const row of spec.rows) {
    const tr = body.insertRow();
    tr.dataset.key = row.key;
    const th = htmlEl("th", row.token ? "token-text" : "", tr);
    th.scope = "row";
    label(th, row, false);
    spec.series.forEach((s, j) => {
      const value = row.values[j];
      const td = tr.insertCell();
      td.dataset.series = s.key;
      if (value === null || value === undefined) {
        td.textContent = row.note ?? "–";
      } else {
        td.dataset.value = String(value);
        td.textContent = s.format(value);
      }
    });
    if (spec.detail) tr.insertCell().textContent = spec.detail.text(row);
  }
}

// One chart: an optional subtitle, the legend, the SVG and its table. `titleId` and
// `explainId` name and describe the SVG.
function plot(parent, spec, { titleId, explainId, title }) {
  const box = htmlEl("div", "chart-plot", parent);
  box.dataset.chart = spec.name;
  if (spec.key) box.dataset.key = spec.key;
  const labelledBy = [titleId];
  if (spec.subtitle) {
    const sub = htmlEl("p", "chart-subtitle", box, spec.subtitle);
    sub.id = newId("subtitle");
    labelledBy.push(sub.id);
  }
  const legend = htmlEl("ul", "chart-legend", box);
  spec.series.forEach((s, j) => {
    const item = htmlEl("li", "", legend);
    const swatch = htmlEl("span", classes("chart-swatch", `series-${j}`), item);
    swatch.setAttribute("aria-hidden", "true");
    item.append(s.label);
  });
  const rowHeight = spec.series.length * (BAR_H + BAR_GAP) - BAR_GAP + ROW_GAP;
  const bottom = TOP + spec.rows.length * rowHeight;
  const height = bottom + AXIS_H;
  const svg = svgEl(
    "svg",
    {
      class: "chart-svg",
      viewBox: `0 0 ${WIDTH} ${height}`,
      role: "img",
      "aria-labelledby": labelledBy.join(" "),
      "aria-describedby": explainId,
    },
    box,
  );
  drawAxes(svg, spec, height, bottom);
  drawRows(svg, spec, rowHeight);
  numbersTable(box, spec, spec.subtitle ? `${title} · ${spec.subtitle}` : title);
}

// A chart's section: its title (a heading), the line in plain words, then its plots, or
// why there is nothing to draw yet.
function block(parent, name, specs, emptyText) {
  const section = htmlEl("section", "chart-block", parent);
  section.dataset.chart = name;
  const title = t(`charts.${name}.title`);
  const heading = htmlEl("h4", "", section, title);
  heading.id = newId("title");
  section.setAttribute("aria-labelledby", heading.id);
  const explain = htmlEl("p", classes("hint", "chart-explain"), section, t(`charts.${name}.explain`));
  explain.id = newId("explain");
  if (!specs.length) {
    htmlEl("p", "chart-empty", section, emptyText).dataset.empty = "true";
    return section;
  }
  for (const spec of specs) plot(section, spec, { titleId: heading.id, explainId: explain.id, title });
  return section;
}

// ---------------------------------------------------------------- the three charts

function firstTokenSpecs(groups) {
  return groups.map((group, i) => {
    const rows = group.tokens.map((token) => ({
      key: String(token.token_id),
      token,
      values: [token.observed, token.expected],
    }));
    rows.push({
      key: "unlisted",
      text: t("charts.firstTokens.nobody"),
      values: [0, group.expected_unlisted],
    });
    const largest = Math.max(...rows.flatMap((row) => row.values));
    return {
      name: "firstTokens",
      key: String(i),
      subtitle: t("charts.firstTokens.wheel", {
        prompt: quotedText(group.prompt),
        model: group.model_name,
        temperature: decimal(group.temperature),
        count: group.session_count,
      }),
      categoryLabel: t("charts.firstTokens.category"),
      axisLabel: t("charts.firstTokens.axis"),
      series: [
        { key: "chosen", label: t("charts.firstTokens.chosen"), format: count },
        { key: "expected", label: t("charts.firstTokens.expected"), format: (v) => decimal(v, 2) },
      ],
      scale: countScale(largest),
      rows,
    };
  });
}

function studentSpecs(students) {
  if (!students.length) return [];
  const rows = students.map((student) => ({
    key: student.session_id,
    text: student.nickname ?? t("charts.students.unnamed"),
    tokens: student.tokens_generated,
    values: [student.average_probability, student.other_rate],
    note: student.tokens_generated ? null : t("charts.noTokens"),
  }));
  return [
    {
      name: "students",
      categoryLabel: t("charts.students.category"),
      axisLabel: t("charts.percentAxis"),
      series: [
        { key: "average", label: t("charts.students.average"), format: percent },
        { key: "other", label: t("charts.students.other"), format: percent },
      ],
      detail: { label: t("charts.students.tokens"), text: (row) => count(row.tokens) },
      scale: PERCENT_SCALE,
      rows,
    },
  ];
}

// A revealed round: its top tokens (the wheel's wedges, most likely first) and everything
// else, each with the model's probability and the share of the round's guesses.
export function roundRows(revealed) {
  const total = revealed.guess_count;
  const share = (n) => (total ? n / total : null);
  const top = revealed.wheel.above_threshold_tokens.slice(0, TOP_TOKENS);
  const rows = top.map((token) => ({
    key: String(token.token_id),
    token,
    values: [token.probability, share(token.guess_count)],
  }));
  const probability = top.reduce((sum, token) => sum + token.probability, 0);
  const guessed = top.reduce((sum, token) => sum + token.guess_count, 0);
  rows.push({
    key: "outside",
    text: t("charts.rounds.outside"),
    values: [Math.max(0, 1 - probability), share(total - guessed)],
  });
  return rows;
}

function roundSpecs(rounds) {
  return rounds.map((revealed) => ({
    name: "rounds",
    key: revealed.round_id,
    subtitle: t("charts.rounds.round", {
      prompt: quotedText(revealed.prompt),
      count: revealed.guess_count,
    }),
    categoryLabel: t("charts.rounds.category"),
    axisLabel: t("charts.percentAxis"),
    series: [
      { key: "model", label: t("charts.rounds.model"), format: percent },
      { key: "guesses", label: t("charts.rounds.guesses"), format: percent },
    ],
    scale: PERCENT_SCALE,
    rows: roundRows(revealed),
  }));
}

// ---------------------------------------------------------------- the section

export class ClassCharts {
  // request(method, path): the teacher API under /api/teacher/classes; attempt(work):
  // runs work, showing its error.
  constructor({ request, attempt }) {
    this.request = request;
    this.ui = { section: $("class-charts"), show: $("charts-show"), body: $("charts-body") };
    this.code = null; // the class in the room
    this.data = null; // {statistics, rounds (reveal answers, newest first), revealedCount}
    this.ui.show.addEventListener("click", () => attempt(() => this.load()));
    this.ui.show.disabled = false;
  }

  // The class in the room; another class's charts are dropped.
  forClass(code) {
    if (code === this.code) return;
    this.code = code;
    this.data = null;
    this.render();
  }

  async load() {
    const code = this.code;
    if (!code) return;
    const statistics = await this.request("GET", `/${code}/statistics`);
    const listed = await this.request("GET", `/${code}/rounds`);
    const revealed = listed.rounds.filter((round) => round.status === "revealed");
    const rounds = [];
    for (const round of revealed.slice(-MAX_ROUNDS).reverse()) {
      rounds.push(await this.request("GET", `/${code}/rounds/${round.round_id}/reveal`));
    }
    if (code !== this.code) return; // another class was chosen meanwhile
    this.data = { statistics, rounds, revealedCount: revealed.length };
    this.render();
  }

  render() {
    const { ui, data } = this;
    ui.show.textContent = t(data ? "charts.refresh" : "charts.show");
    ui.body.hidden = data === null;
    ui.body.replaceChildren();
    if (!data) return;
    const { statistics, rounds, revealedCount } = data;
    ui.section.dataset.sessions = String(statistics.session_count);
    block(
      ui.body,
      "firstTokens",
      firstTokenSpecs(statistics.first_tokens),
      t("charts.firstTokens.empty"),
    );
    block(ui.body, "students", studentSpecs(statistics.students), t("charts.students.empty"));
    const section = block(ui.body, "rounds", roundSpecs(rounds), t("charts.rounds.empty"));
    if (revealedCount > rounds.length) {
      const more = t("charts.rounds.more", { shown: rounds.length, count: revealedCount });
      htmlEl("p", "hint", section, more);
    }
  }
}
