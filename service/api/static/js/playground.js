// Playground: route a prompt or a short conversation, see why, run it, and correct it.

import { call } from "./api.js";
import {
  $, announce, bars, el, facts, fmtMs, fmtNumber, fmtPercent, fmtUsd, raw, replaceChildren,
} from "./dom.js";
import { onRoutes, state } from "./state.js";

let lastDecision = null;
let turnCount = 0;

function addTurn(role = "user", text = "") {
  turnCount += 1;
  const id = `turn-${turnCount}`;
  const roleSelect = el("select", { id: `${id}-role`, class: "turn-role" },
    ["user", "assistant", "system"].map((r) =>
      el("option", { value: r, selected: r === role }, r)));
  const textarea = el("textarea", { id: `${id}-text`, class: "turn-text", rows: 3,
    placeholder: "e.g. why does my python script raise KeyError on line 3?" });
  textarea.value = text;
  const remove = el("button", { type: "button", class: "link remove-turn",
    "aria-label": `Remove turn ${turnCount}` }, "Remove");
  const item = el("li", { class: "turn" },
    el("div", { class: "role" }, el("label", { for: roleSelect.id }, "Role"), roleSelect),
    el("div", { class: "role" }, el("label", { for: textarea.id }, "Message"), textarea),
    remove);
  remove.addEventListener("click", () => {
    if ($("#turns").children.length > 1) {
      item.remove();
      syncRemoveButtons();
      $("#turns .turn-text").focus();
    }
  });
  $("#turns").append(item);
  syncRemoveButtons();
  return textarea;
}

function syncRemoveButtons() {
  const only = $("#turns").children.length === 1;
  for (const button of document.querySelectorAll("#turns .remove-turn")) button.hidden = only;
}

/** The request body from the form, or null (with a message) when there is nothing to route. */
function requestBody() {
  const turns = [...document.querySelectorAll("#turns .turn")].map((item) => ({
    role: item.querySelector(".turn-role").value,
    content: item.querySelector(".turn-text").value,
  })).filter((turn) => turn.content.trim());
  if (!turns.some((turn) => turn.role === "user")) {
    $("#route-error").textContent = "Type a prompt (a user message) first.";
    $("#turns .turn-text").focus();
    return null;
  }
  const body = turns.length === 1 ? { prompt: turns[0].content } : { messages: turns };
  body.explain = true;
  body.tiebreak = $("#opt-tiebreak").checked;
  if ($("#opt-route").value) body.route = $("#opt-route").value;
  if ($("#opt-quality").value) body.quality = $("#opt-quality").value;
  return body;
}

function routableText(body) {
  if (body.prompt !== undefined) return body.prompt;
  return [...body.messages].reverse().find((m) => m.role === "user").content;
}

function showDecision(decision) {
  lastDecision = decision;
  const price = state.prices[decision.model];
  const entries = [
    ["Route", decision.route, { id: "route" }],
    ["Model", decision.model, { id: "model" }],
    ["Method", decision.method, { id: "method" }],
    ["Confidence", fmtPercent(decision.confidence),
      { id: "confidence", value: decision.confidence }],
    ["Score", fmtNumber(decision.score), { id: "score", value: decision.score }],
    ["Margin", fmtNumber(decision.margin), { id: "margin", value: decision.margin }],
  ];
  if (decision.tier) entries.push(["Tier", decision.tier, { id: "tier" }]);
  if (decision.complexity !== null && decision.complexity !== undefined) {
    entries.push(["Complexity (P hard)", fmtNumber(decision.complexity, 2),
      { id: "complexity" }]);
  }
  if (price !== undefined && price !== null) {
    entries.push(["Expected cost", `$${fmtUsd(price)} per 1k tokens`, { id: "expected-cost" }]);
  }
  entries.push(["Decided in", `${fmtMs(decision.latency_ms)} ms`, { id: "latency" }]);
  if (decision.fallbacks.length) {
    entries.push(["Fallbacks", decision.fallbacks.join(" → "), { id: "fallbacks", wide: true }]);
  }
  if (decision.reason) {
    const term = decision.method === "rule" ? "Rule" : "Why not the top match";
    entries.push([term, decision.reason, { id: "reason", wide: true }]);
  }
  entries.push(["Decision id", decision.decision_id, { id: "decision-id", wide: true }]);
  facts($("#decision"), entries);

  const top = Math.max(1, ...decision.candidates.map((c) => c.score));
  bars($("#candidates"), decision.candidates.map((c) => ({
    name: c.route, value: c.score, label: fmtNumber(c.score), chosen: c.route === decision.route,
  })), top);

  const matches = decision.matches || [];
  replaceChildren($("#matches tbody"), matches.length
    ? matches.map((m) => el("tr", { dataset: { route: m.route } },
      el("td", {}, m.utterance), el("td", { class: "route-name" }, m.route),
      el("td", { class: "num", dataset: { value: raw(m.similarity) } }, fmtNumber(m.similarity))))
    : el("tr", {}, el("td", { colspan: 3, class: "hint" },
      decision.method === "semantic" || decision.method === "llm" || decision.method === "default"
        ? "no example matched" : `no semantic search: method ${decision.method}`)));

  const others = state.routes.map((r) => r.name).filter((name) => name !== decision.route);
  replaceChildren($("#feedback-route"), others.map((name) => el("option", { value: name }, name)));
  $("#feedback-correct").hidden = true;
  $("#feedback-result").textContent = "";
  for (const id of ["#feedback-good", "#feedback-wrong", "#feedback-send"]) $(id).disabled = false;
  $("#decision-panel").hidden = false;
}

function showCompletion(result) {
  $("#answer").textContent = result.answer ?? "(no answer)";
  facts($("#completion-facts"), [
    ["Answered by", result.model, { id: "answer-model" }],
    ["Total cost", result.cost_usd === null ? "not priced" : `$${fmtUsd(result.cost_usd)}`,
      { id: "total-cost", value: result.cost_usd }],
    ["Latency", `${fmtMs(result.latency_ms)} ms`,
      { id: "completion-latency", value: result.latency_ms }],
    ["Tokens", result.usage
      ? `${result.usage.prompt_tokens ?? "?"} in, ${result.usage.completion_tokens ?? "?"} out`
      : "–", { id: "tokens" }],
    ["Finish reason", result.finish_reason ?? "–", { id: "finish-reason" }],
  ]);
  showAttempts(result.attempts);
  $("#completion-panel").hidden = false;
}

function showAttempts(attempts) {
  replaceChildren($("#attempts tbody"), attempts.map((a, i) => el("tr", {},
    el("td", { class: "num" }, i + 1),
    el("td", {}, a.model),
    el("td", {}, a.role),
    el("td", { class: a.outcome === "ok" ? "outcome-ok" : "outcome-bad",
      title: a.message || "" }, a.outcome + (a.error_type ? ` (${a.error_type})` : "")),
    el("td", { class: "num" }, `${fmtMs(a.latency_ms)} ms`),
    el("td", { class: "num", dataset: { value: raw(a.cost_usd) } },
      a.cost_usd === null || a.cost_usd === undefined ? "–" : `$${fmtUsd(a.cost_usd)}`))));
}

async function busy(buttons, work) {
  for (const button of buttons) button.disabled = true;
  try {
    return await work();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

async function route() {
  $("#route-error").textContent = "";
  const body = requestBody();
  if (!body) return;
  await busy([$("#route-button"), $("#complete-button")], async () => {
    try {
      const decision = await call("route", { method: "POST", body });
      showDecision(decision);
      $("#completion-panel").hidden = true;
      announce(`Routed to ${decision.route} (${decision.method}).`);
      window.dispatchEvent(new CustomEvent("semroute:routed",
        { detail: { text: routableText(body), decision } }));
    } catch (error) {
      $("#route-error").textContent = error.message;
    }
  });
}

async function complete() {
  $("#route-error").textContent = "";
  const body = requestBody();
  if (!body) return;
  const maxTokens = Number($("#opt-max-tokens").value);
  if (maxTokens > 0) body.max_tokens = Math.floor(maxTokens);
  await busy([$("#route-button"), $("#complete-button")], async () => {
    announce("Waiting for the model…");
    try {
      const result = await call("complete", { method: "POST", body });
      showDecision(result.decision);
      showCompletion(result);
      announce(`Answered by ${result.model}.`);
      window.dispatchEvent(new CustomEvent("semroute:routed",
        { detail: { text: routableText(body), decision: result.decision } }));
    } catch (error) {
      $("#route-error").textContent = error.message;
      const attempts = error.detail && error.detail.attempts;
      if (attempts && attempts.length) {
        $("#answer").textContent = `(failed: ${error.type})`;
        replaceChildren($("#completion-facts"));
        showAttempts(attempts);
        $("#completion-panel").hidden = false;
      }
      announce("");
    }
  });
}

async function sendFeedback(rating, correctRoute) {
  if (!lastDecision) return;
  const body = { decision_id: lastDecision.decision_id, rating };
  if (correctRoute) body.correct_route = correctRoute;
  const result = $("#feedback-result");
  try {
    await call("feedback", { method: "POST", body });
    result.className = "ok";
    result.textContent = correctRoute
      ? `Recorded: this belonged to ${correctRoute}, not ${lastDecision.route}.`
      : `Recorded: ${lastDecision.route} was right.`;
    for (const id of ["#feedback-good", "#feedback-wrong", "#feedback-send"]) {
      $(id).disabled = true;
    }
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  }
}

export function initPlayground() {
  addTurn();
  $("#add-turn").addEventListener("click", () => {
    const last = [...document.querySelectorAll("#turns .turn-role")].pop();
    addTurn(last && last.value === "user" ? "assistant" : "user").focus();
  });
  $("#route-form").addEventListener("submit", (event) => {
    event.preventDefault();
    route();
  });
  $("#route-form").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      route();
    }
  });
  $("#complete-button").addEventListener("click", complete);
  $("#feedback-good").addEventListener("click", () => sendFeedback(1, null));
  $("#feedback-wrong").addEventListener("click", () => {
    $("#feedback-correct").hidden = false;
    $("#feedback-route").focus();
  });
  $("#feedback-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFeedback(0, $("#feedback-route").value);
  });
  onRoutes(() => {
    const select = $("#opt-route");
    const chosen = select.value;
    replaceChildren(select, el("option", { value: "" }, "decide"),
      state.routes.map((r) => el("option", { value: r.name, selected: r.name === chosen },
        r.name)));
  });
}
