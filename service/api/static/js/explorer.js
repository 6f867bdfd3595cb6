// Route explorer: the routes, a 2-D map of every example utterance (computed when the index
// was built), the pairs of routes most likely to be confused, and reload for admins.

import { call } from "./api.js";
import { scatter } from "./charts.js";
import { $, announce, colour, el, fmtNumber, fmtPercent, fmtUsd, replaceChildren } from "./dom.js";
import { loadRoutes, onRoutes, routePosition, state } from "./state.js";

let map = null; // the last GET /console/map answer
let placed = null; // {x, y, label}
let loading = null;
let pending = null; // the playground's latest prompt, placed once the map is there

function modelsCell(route) {
  const price = (model) => {
    const usd = state.prices[model];
    return usd === null || usd === undefined ? "" : ` ($${fmtUsd(usd)}/1k)`;
  };
  const lines = route.models.length
    ? route.models.map((m) => `${m.tier}: ${m.model}${price(m.model)}`)
    : [`${route.model}${price(route.model)}`];
  if (route.fallbacks.length) lines.push(`fallbacks: ${route.fallbacks.join(", ")}`);
  return el("td", {}, lines.map((line, i) => [i ? el("br") : null, line]));
}

/** The threshold that applies: the calibrated in-scope score with classifier scoring. */
function thresholdCell(route) {
  const calibrated = route.accept_threshold !== null && route.accept_threshold !== undefined;
  const value = calibrated ? route.accept_threshold : route.threshold;
  return el("td", { class: "num", dataset: { value },
    title: calibrated ? "in-scope score (calibrated at index build)" : "cosine similarity" },
  fmtNumber(value, 2));
}

function renderRoutes() {
  $("#threshold-kind").textContent = state.scoring === "classifier"
    ? "Threshold: the in-scope score a route's top match must reach, calibrated when the " +
      "index was built (classifier scoring)."
    : "Threshold: the cosine similarity a route's nearest examples must reach (knn scoring).";
  replaceChildren($("#route-table tbody"), state.routes.map((route, i) =>
    el("tr", { dataset: { route: route.name } },
      el("th", { scope: "row" }, el("span", { class: "swatch", style: `background:${colour(i)}` }),
        route.name),
      el("td", {}, route.description),
      modelsCell(route),
      thresholdCell(route),
      el("td", { class: "num", dataset: { value: route.utterances } }, route.utterances))));
}

function renderMap() {
  if (!map) return;
  const names = map.routes;
  const points = map.points.map(([x, y, r, utterance]) => ({
    x, y, colour: colour(routePosition(names[r])), title: `${names[r]}: ${utterance}`,
  }));
  scatter($("#map"), points, placed ? [placed] : []);
  const kept = fmtPercent(map.explained_variance.reduce((a, b) => a + b, 0));
  const axes = map.method === "discriminant"
    ? `the axes are the two directions that best separate the routes (${kept} of their ` +
      "separation)"
    : `the axes are the two of largest variance (${kept} of it)`;
  $("#map-summary").textContent =
    `${map.points.length.toLocaleString("en-US")} of ${map.total.toLocaleString("en-US")} ` +
    `utterances in ${names.length} routes; ${axes}.` +
    (placed ? ` The ringed point is “${placed.label}”.` : "");
  replaceChildren($("#map-legend"), names.map((name) =>
    el("li", {}, el("span", { class: "swatch", style: `background:${colour(routePosition(name))}` }),
      name)));
  replaceChildren($("#confusable tbody"), map.confusable.length
    ? map.confusable.map((pair) => el("tr", { dataset: { pair: pair.routes.join("|") } },
      el("td", {}, `${pair.routes[0]} ↔ ${pair.routes[1]}`),
      el("td", { class: "num" }, fmtPercent(pair.overlap)),
      el("td", { class: "num" }, fmtNumber(pair.centroid_similarity))))
    : el("tr", {}, el("td", { colspan: 3, class: "hint" }, "fewer than two routes")));
}

async function loadMap() {
  try {
    map = await call("console/map");
    renderMap();
    if (pending) await place(pending).catch(() => {});
  } catch (error) {
    replaceChildren($("#map"), el("p", { class: "chart-empty" }, error.message));
    $("#map-summary").textContent = "";
  }
}

/** Load the map once, when the explorer is first shown. */
export function showExplorer() {
  loading = loading || loadMap();
  return loading;
}

async function place(text) {
  const label = text.length > 40 ? `${text.slice(0, 39)}…` : text;
  const at = await call("console/locate", { method: "POST", body: { prompt: text } });
  placed = { x: at.x, y: at.y, label };
  renderMap();
}

async function reload() {
  const button = $("#reload-button");
  const result = $("#reload-result");
  button.disabled = true;
  result.textContent = "Reloading…";
  try {
    const answer = await call("admin/reload", { method: "POST", admin: true });
    result.className = "ok";
    result.textContent = `Reloaded: ${answer.routes} routes, ${answer.vectors} vectors ` +
      `(index ${answer.index_fingerprint.slice(0, 12)}).`;
    await loadRoutes();
    loading = null;
    map = null;
    await showExplorer();
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

export function initExplorer() {
  onRoutes(renderRoutes);
  $("#locate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("#locate-prompt").value.trim();
    if (!text) return;
    try {
      await showExplorer();
      await place(text);
      announce("Prompt placed on the map.");
    } catch (error) {
      announce(error.message);
    }
  });
  // The playground's latest prompt appears on the map too.
  window.addEventListener("semroute:routed", (event) => {
    pending = event.detail.text;
    if (map) place(pending).catch(() => {});
  });
  $("#reload-button").addEventListener("click", reload);
}

export function showAdmin(admin) {
  $("#admin-actions").hidden = !admin;
}
