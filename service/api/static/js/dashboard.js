// Dashboard: /stats and /metrics, polled on a timer, as figures, tables and charts.
//
// Every figure that comes from /stats carries its JSON path in data-stat and the raw value
// in data-value, so what the page shows can be checked against the endpoint itself.
// Rates and latency over time come from differences between consecutive polls.

import { call } from "./api.js";
import { lineChart } from "./charts.js";
import {
  $, bars, colour, el, fmtInt, fmtMs, fmtNumber, fmtPercent, fmtUsd, raw, replaceChildren,
} from "./dom.js";
import { histogramQuantile, parseMetrics, sumBy } from "./prometheus.js";
import { routePosition } from "./state.js";

const HISTORY = 180; // polls kept for the charts
const history = [];
let timer = null;
let refreshes = 0;
let inFlight = false;

function statCell(path, value, text, tag = "td", cls = "num") {
  return el(tag, { class: cls, dataset: { stat: JSON.stringify(path), value: raw(value) } }, text);
}

function tile(label, path, value, text, note = "") {
  const figure = path
    ? el("span", { class: "figure", dataset: { stat: JSON.stringify(path), value: raw(value) } },
      text)
    : el("span", { class: "figure", dataset: { value: raw(value) } }, text);
  return el("li", { dataset: { tile: label } }, el("span", { class: "label" }, label), figure,
    note ? el("span", { class: "hint" }, note) : null);
}

function total(routes, field) {
  return Object.values(routes).reduce((sum, entry) => sum + (entry[field] || 0), 0);
}

/** Samples of `now` minus those of `before` with the same name and labels (counters only). */
function delta(now, before) {
  const previous = new Map(before.map((s) => [`${s.name}${JSON.stringify(s.labels)}`, s.value]));
  return now.map((s) => ({
    ...s, value: s.value - (previous.get(`${s.name}${JSON.stringify(s.labels)}`) || 0),
  }));
}

function renderTiles(stats, samples) {
  const fallbacks = sumBy(samples, "semroute_fallbacks_total");
  const tiebreaks = sumBy(samples, "semroute_tiebreaker_calls_total");
  const p50 = histogramQuantile(samples, "semroute_completion_request_seconds", 0.5);
  const p95 = histogramQuantile(samples, "semroute_completion_request_seconds", 0.95);
  const decisions = total(stats.routes, "decisions");
  replaceChildren($("#tiles"), [
    tile("Decisions", null, decisions, fmtInt(decisions)),
    tile("Completions", ["requests"], stats.requests, fmtInt(stats.requests)),
    tile("Success rate", ["success_rate"], stats.success_rate, fmtPercent(stats.success_rate)),
    tile("Latency p50", null, p50, p50 === null ? "–" : `${fmtMs(p50 * 1000)} ms`,
      "from histogram buckets"),
    tile("Latency p95", null, p95, p95 === null ? "–" : `${fmtMs(p95 * 1000)} ms`,
      "from histogram buckets"),
    tile("Cost", ["cost_usd"], stats.cost_usd, `$${fmtUsd(stats.cost_usd)}`),
    tile("Baseline cost", ["baseline_cost_usd"], stats.baseline_cost_usd,
      stats.baseline_cost_usd === null ? "–" : `$${fmtUsd(stats.baseline_cost_usd)}`,
      stats.baseline_model ? `all on ${stats.baseline_model}` : "no priced model"),
    tile("Saving", ["saving_usd"], stats.saving_usd,
      stats.saving_usd === null ? "–" : `$${fmtUsd(stats.saving_usd)}`),
    tile("Saving ratio", ["saving_ratio"], stats.saving_ratio, fmtPercent(stats.saving_ratio)),
    tile("Fallbacks", null, fallbacks, fmtInt(fallbacks)),
    tile("Tie-breaker calls", null, tiebreaks, fmtInt(tiebreaks)),
    tile("Feedback", null, total(stats.routes, "feedback"), fmtInt(total(stats.routes, "feedback")),
      `${fmtInt(total(stats.routes, "corrections"))} corrections`),
  ]);
}

function renderTables(stats, samples) {
  const fallbacks = sumBy(samples, "semroute_fallbacks_total", "route");
  const names = Object.keys(stats.routes);
  replaceChildren($("#per-route tbody"), names.length ? names.map((name) => {
    const r = stats.routes[name];
    const at = (field) => ["routes", name, field];
    return el("tr", { dataset: { route: name } },
      el("th", { scope: "row" },
        el("span", { class: "swatch", style: `background:${colour(routePosition(name))}` }),
        name),
      statCell(at("decisions"), r.decisions, fmtInt(r.decisions)),
      statCell(at("requests"), r.requests, fmtInt(r.requests)),
      statCell(at("success_rate"), r.success_rate, fmtPercent(r.success_rate)),
      statCell(at("latency_p50_ms"), r.latency_p50_ms, fmtMs(r.latency_p50_ms)),
      statCell(at("latency_p95_ms"), r.latency_p95_ms, fmtMs(r.latency_p95_ms)),
      statCell(at("cost_usd"), r.cost_usd, fmtUsd(r.cost_usd)),
      statCell(at("saving_usd"), r.saving_usd, fmtUsd(r.saving_usd)),
      el("td", { class: "num", dataset: { value: raw(fallbacks[name] || 0) } },
        fmtInt(fallbacks[name] || 0)),
      statCell(at("feedback"), r.feedback, fmtInt(r.feedback)),
      statCell(at("mean_rating"), r.mean_rating, fmtNumber(r.mean_rating, 2)),
      statCell(at("corrections"), r.corrections, fmtInt(r.corrections)));
  }) : el("tr", {}, el("td", { colspan: 12, class: "hint" }, "no traffic yet")));

  const models = Object.keys(stats.models);
  replaceChildren($("#per-model tbody"), models.length ? models.map((name) => {
    const m = stats.models[name];
    const at = (field) => ["models", name, field];
    return el("tr", { dataset: { model: name } },
      el("th", { scope: "row" }, name),
      statCell(at("requests"), m.requests, fmtInt(m.requests)),
      statCell(at("success_rate"), m.success_rate, fmtPercent(m.success_rate)),
      statCell(at("latency_p50_ms"), m.latency_p50_ms, fmtMs(m.latency_p50_ms)),
      statCell(at("latency_p95_ms"), m.latency_p95_ms, fmtMs(m.latency_p95_ms)),
      statCell(at("cost_usd"), m.cost_usd, fmtUsd(m.cost_usd)));
  }) : el("tr", {}, el("td", { colspan: 6, class: "hint" }, "no model called yet")));

  const outcomes = sumBy(samples, "semroute_tiebreaker_calls_total", "outcome");
  bars($("#tiebreak"), Object.entries(outcomes).map(([name, value]) =>
    ({ name, value, label: fmtInt(value) })));
  const methods = sumBy(samples, "semroute_decisions_total", "method");
  bars($("#methods"), Object.entries(methods).sort((a, b) => b[1] - a[1]).map(([name, value]) =>
    ({ name, value, label: fmtInt(value) })));
}

/** Per-minute rates between consecutive polls, one series per key of `pick(snapshot)`. */
function rateSeries(pick, colourOf) {
  const keys = new Set(history.flatMap((h) => Object.keys(pick(h))));
  return [...keys].sort().map((key, i) => ({
    name: key,
    colour: colourOf(key, i),
    points: history.slice(1).map((h, j) => {
      const before = history[j];
      const minutes = (h.time - before.time) / 60000;
      const change = (pick(h)[key] || 0) - (pick(before)[key] || 0);
      return [h.time, minutes > 0 && change >= 0 ? change / minutes : null];
    }),
  }));
}

function renderCharts() {
  const byRoute = (key) => colour(routePosition(key));
  const byIndex = (_, i) => colour(i);
  lineChart($("#chart-routes"), rateSeries((h) => h.decisionsByRoute, byRoute));
  lineChart($("#chart-methods"), rateSeries((h) => h.decisionsByMethod, byIndex));
  lineChart($("#chart-requests"), rateSeries((h) => h.requestsByRoute, byRoute));
  const latency = history.slice(1).map((h, j) => {
    const window = delta(h.samples, history[j].samples);
    const at = (q) => histogramQuantile(window, "semroute_completion_request_seconds", q);
    const [p50, p95] = [at(0.5), at(0.95)];
    return [h.time, p50 === null ? null : p50 * 1000, p95 === null ? null : p95 * 1000];
  });
  lineChart($("#chart-latency"), [
    { name: "p50", colour: colour(0), points: latency.map(([t, p50]) => [t, p50]) },
    { name: "p95", colour: colour(1), points: latency.map(([t, , p95]) => [t, p95]) },
  ], { unit: " ms" });
}

export async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const [stats, text] = await Promise.all([
      call("stats"), call("metrics", { text: true }),
    ]);
    const samples = parseMetrics(text);
    const routes = Object.entries(stats.routes);
    history.push({
      time: Date.now(),
      samples: samples.filter((s) => s.name.startsWith("semroute_completion_request_seconds")),
      decisionsByRoute: Object.fromEntries(routes.map(([n, r]) => [n, r.decisions])),
      requestsByRoute: Object.fromEntries(routes.map(([n, r]) => [n, r.requests])),
      decisionsByMethod: sumBy(samples, "semroute_decisions_total", "method"),
    });
    if (history.length > HISTORY) history.shift();
    renderTiles(stats, samples);
    renderTables(stats, samples);
    renderCharts();
    refreshes += 1;
    const updated = $("#updated-at");
    updated.dateTime = new Date().toISOString();
    updated.textContent = new Date().toLocaleTimeString("en-GB", { hour12: false });
    $("#dashboard").dataset.refreshes = String(refreshes);
  } catch (error) {
    $("#updated-at").textContent = `failed: ${error.message}`;
  } finally {
    inFlight = false;
  }
}

function schedule() {
  clearInterval(timer);
  const every = Number($("#refresh-every").value);
  timer = every > 0 ? setInterval(refresh, every) : null;
}

export function initDashboard() {
  $("#refresh-every").addEventListener("change", schedule);
  $("#refresh-now").addEventListener("click", refresh);
}

/** Start polling (once the keys are known to work). */
export function startDashboard() {
  refresh();
  schedule();
}
