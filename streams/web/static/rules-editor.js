// The rule editor: line numbers, validation as you type (POST /v1/rules:validate, debounced) with the
// errors' lines and columns highlighted, a backtest with its score distribution drawn as an SVG
// histogram (POST /v1/rules:backtest), and publishing (POST /v1/rules).
"use strict";

const VALIDATE_DELAY_MS = 350;
let errors = [];          // [{line, column, message, code}] of the current source
let validFor = null;      // the source the last successful validation was for
let validateSeq = 0;
let validateTimer = null;

const $ = (id) => document.getElementById(id);

function source() { return $("source").value; }

function errorLines() {
  const lines = new Map();
  for (const e of errors) if (e.line > 0) lines.set(e.line, (lines.get(e.line) || []).concat([e.column]));
  return lines;
}

function renderGutter() {
  const count = source().split("\n").length;
  const bad = errorLines();
  const gutter = $("gutter");
  gutter.replaceChildren(...Array.from({ length: count }, (_, i) => {
    const n = i + 1;
    return el("div", { class: bad.has(n) ? "err" : "", text: String(n), title: bad.has(n) ? "error on line " + n : "" });
  }));
  gutter.scrollTop = $("source").scrollTop;
}

// The backdrop sits under the transparent textarea and paints error lines and error columns.
function renderBackdrop() {
  const bad = errorLines();
  const lines = source().split("\n");
  const backdrop = $("backdrop");
  backdrop.replaceChildren(...lines.map((text, i) => {
    const n = i + 1;
    const line = el("div", { class: bad.has(n) ? "line err" : "line", "data-line": String(n) });
    const cols = (bad.get(n) || []).filter((c) => c > 0).sort((a, b) => a - b);
    let at = 0;
    for (const col of cols) {
      const index = Math.min(col - 1, text.length);
      if (index < at) continue;
      line.append(text.slice(at, index));
      line.append(el("span", { class: "col", text: text.slice(index, index + 1) || " " }));
      at = index + 1;
    }
    line.append(text.slice(at) || (cols.length ? "" : "\u200b"));
    return line;
  }));
  syncScroll();
}

function syncScroll() {
  const ta = $("source");
  $("backdrop").scrollTop = ta.scrollTop;
  $("backdrop").scrollLeft = ta.scrollLeft;
  $("gutter").scrollTop = ta.scrollTop;
}

function setValidity(kind, text) {
  const v = $("validity");
  v.className = "validity " + kind;
  v.textContent = text;
}

function goTo(line, column) {
  const ta = $("source");
  const lines = source().split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
  offset += Math.max(0, Math.min((column || 1) - 1, (lines[line - 1] || "").length));
  ta.focus();
  ta.setSelectionRange(offset, offset);
  ta.scrollTop = Math.max(0, (line - 5) * 20);
  syncScroll();
}

function renderProblems() {
  const list = $("problems");
  if (!errors.length) {
    list.replaceChildren(validFor === source() ? el("li", { class: "none", text: "No problems found." }) : "");
    return;
  }
  list.replaceChildren(...errors.map((e) => {
    const where = e.line > 0 ? "Line " + e.line + (e.column > 0 ? ", col " + e.column : "") : "Rule";
    const item = el("li", { class: "problem", "data-line": String(e.line), "data-column": String(e.column) },
      el("span", { class: "where", text: where }),
      el("span", { class: "msg", text: e.message }),
      el("span", { class: "code-name", text: e.code || "" }));
    item.addEventListener("click", () => { if (e.line > 0) goTo(e.line, e.column); });
    return item;
  }));
}

function setErrors(list) {
  errors = list || [];
  renderGutter();
  renderBackdrop();
  renderProblems();
  $("publish").disabled = !(validFor === source() && errors.length === 0);
}

async function validate() {
  const text = source();
  const seq = ++validateSeq;
  if (!apiKey()) {
    setValidity("pending", "Enter an API key to check the rule");
    return;
  }
  setValidity("pending", "Checking…");
  const res = await apiJson("POST", "/v1/rules:validate", { source: text });
  if (seq !== validateSeq || text !== source()) return; // an older answer: the text has changed since
  if (!res.ok) {
    validFor = null;
    setValidity("bad", "Could not check");
    showBanner("banner", "error", "Validation failed: " + res.message);
    setErrors([]);
    return;
  }
  showBanner("banner", "error", "");
  validFor = res.body.valid ? text : null;
  const found = res.body.errors || [];
  setValidity(res.body.valid ? "ok" : "bad",
    res.body.valid ? "✓ Valid rule" : found.length + (found.length === 1 ? " problem" : " problems"));
  setErrors(found);
}

function scheduleValidate() {
  clearTimeout(validateTimer);
  validFor = null;
  $("publish").disabled = true;
  setValidity("pending", "Typing…");
  renderGutter();
  renderBackdrop();
  validateTimer = setTimeout(validate, VALIDATE_DELAY_MS);
}

// -- backtest ---------------------------------------------------------------------------------------------
const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(x) { return Number(x).toFixed(2).replace(/\.?0+$/, "") || "0"; }

function histogram(bins) {
  const W = 460, H = 230, left = 36, right = 12, top = 18, bottom = 34;
  const plotW = W - left - right, plotH = H - top - bottom;
  const max = Math.max(1, ...bins.map((b) => b.count));
  const chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Score distribution of the customers the rule fired for" });
  for (let i = 0; i <= 4; i++) {
    const value = Math.round((max * i) / 4);
    const y = top + plotH - (plotH * value) / max;
    chart.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "axis", "stroke-dasharray": i ? "2 3" : "" }));
    chart.append(svg("text", { x: left - 6, y: y + 3, "text-anchor": "end" }, String(value)));
  }
  const slot = plotW / Math.max(1, bins.length);
  bins.forEach((b, i) => {
    const h = (plotH * b.count) / max;
    const x = left + i * slot + 2;
    const bar = svg("rect", { x, y: top + plotH - h, width: Math.max(1, slot - 4), height: h, rx: 3, class: "bar", "data-count": b.count });
    bar.append(svg("title", {}, fmt(b.low) + "–" + fmt(b.high) + ": " + b.count + " customer" + (b.count === 1 ? "" : "s")));
    chart.append(bar);
    if (b.count > 0) chart.append(svg("text", { x: x + (slot - 4) / 2, y: top + plotH - h - 4, "text-anchor": "middle", class: "count" }, String(b.count)));
    chart.append(svg("text", { x: left + i * slot, y: H - bottom + 14, "text-anchor": "middle" }, fmt(b.low)));
  });
  if (bins.length) chart.append(svg("text", { x: left + plotW, y: H - bottom + 14, "text-anchor": "middle" }, fmt(bins[bins.length - 1].high)));
  chart.append(svg("text", { x: left + plotW / 2, y: H - 4, "text-anchor": "middle" }, "score"));
  return chart;
}

function stat(value, label) {
  return el("div", { class: "stat" }, el("div", { class: "v", text: value }), el("div", { class: "k", text: label }));
}

async function runBacktest() {
  const box = $("backtest-result");
  const customers = Number($("customers").value);
  if (!Number.isInteger(customers) || customers < 1 || customers > 5000) {
    box.replaceChildren(el("p", { class: "result bad", text: "Choose a whole number of customers from 1 to 5000." }));
    return;
  }
  const button = $("run-backtest");
  button.disabled = true;
  box.replaceChildren(el("p", { class: "hint" }, el("span", { class: "spin" }), " Running the draft over " + customers + " customers…"));
  const res = await apiJson("POST", "/v1/rules:backtest", { source: source(), customers });
  button.disabled = false;
  if (!res.ok) {
    if (res.body && res.body.errors) setErrors(res.body.errors);
    box.replaceChildren(el("p", { class: "result bad", text: "Backtest failed: " + res.message }));
    return;
  }
  const r = res.body;
  const rate = (Number(r.hit_rate) * 100).toFixed(1) + "%";
  box.replaceChildren(
    el("div", { class: "stats" }, stat(String(r.customers), "customers"), stat(String(r.fired), "fired"), stat(rate, "hit rate")),
    el("div", { class: "chart", id: "chart" }, histogram(r.histogram || [])),
    el("p", { class: "hint", text: r.fired ? "Scores of the customers it fired for." : "The rule fired for nobody in this sample." }));
}

// -- publish ----------------------------------------------------------------------------------------------
async function publish() {
  const out = $("publish-result");
  const button = $("publish");
  button.disabled = true;
  out.className = "result";
  out.replaceChildren(el("span", { class: "spin" }), " Publishing…");
  const res = await apiJson("POST", "/v1/rules", { source: source() });
  if (!res.ok) {
    if (res.body && res.body.errors) setErrors(res.body.errors);
    out.className = "result bad";
    out.textContent = "Not published: " + res.message;
    button.disabled = false;
    return;
  }
  out.className = "result ok";
  out.textContent = "Published " + res.body.rule_id + " version " + res.body.version + ".";
  button.disabled = false;
}

document.addEventListener("DOMContentLoaded", () => {
  const ta = $("source");
  ta.addEventListener("input", () => { $("publish-result").textContent = ""; scheduleValidate(); });
  ta.addEventListener("scroll", syncScroll);
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Tab" && !e.shiftKey) {  // indent with two spaces instead of leaving the editor
      e.preventDefault();
      const { selectionStart: s, selectionEnd: t } = ta;
      ta.setRangeText("  ", s, t, "end");
      scheduleValidate();
    }
  });
  $("run-backtest").addEventListener("click", runBacktest);
  $("publish").addEventListener("click", publish);
  setupKeyBox(() => validate());
  renderGutter();
  renderBackdrop();
  validate();
});
