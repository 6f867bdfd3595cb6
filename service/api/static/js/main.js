// Start-up: find out whether the service wants keys, ask for them if so, then show the tabs.
//
// config.json (served beside this page, open like the page itself) says only whether keys
// are required and whether the admin endpoints are on; no data is requested until the page
// has a key to send, so a visitor without one sees the key prompt and nothing else.

import { ApiError, call, keys } from "./api.js";
import { initDashboard, startDashboard } from "./dashboard.js";
import { $, announce } from "./dom.js";
import { initExplorer, showAdmin, showExplorer } from "./explorer.js";
import { initPlayground } from "./playground.js";
import { loadRoutes, state } from "./state.js";

const TABS = ["playground", "dashboard", "routes"];
let config = { keys_required: false, admin_enabled: false };
let started = false;

function selectTab(name, focus = false) {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    const chosen = tab === name;
    button.setAttribute("aria-selected", String(chosen));
    button.tabIndex = chosen ? 0 : -1;
    $(`#${tab}`).hidden = !chosen;
    if (chosen && focus) button.focus();
  }
  if (name === "routes") showExplorer();
  if (window.location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function initTabs() {
  for (const tab of TABS) {
    $(`#tab-${tab}`).addEventListener("click", () => selectTab(tab));
  }
  $("#tabs").addEventListener("keydown", (event) => {
    const current = TABS.findIndex((tab) => $(`#tab-${tab}`).getAttribute("aria-selected")
      === "true");
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -current, End: TABS.length - 1 - current };
    if (!(event.key in moves)) return;
    event.preventDefault();
    selectTab(TABS[(current + moves[event.key] + TABS.length) % TABS.length], true);
  });
}

function askForKeys(message = "") {
  $("#auth").hidden = false;
  $("#auth-error").textContent = message;
  $("#api-key").value = keys.api;
  $("#admin-key").value = keys.admin;
  if (config.keys_required) {
    $("#main").hidden = true;
    $("#api-key").focus();
  } else {
    $("#admin-key").focus();
  }
}

async function checkAdmin() {
  state.admin = false;
  if (config.admin_enabled && keys.admin) {
    try {
      await call("admin/status", { admin: true });
      state.admin = true;
    } catch (error) {
      $("#auth-error").textContent = error instanceof ApiError && error.status === 401
        ? "The admin key was refused; reload stays hidden."
        : error.message;
    }
  }
  showAdmin(state.admin);
}

/** Load the routes with the current keys; shows the console when they are accepted. */
async function start() {
  try {
    await loadRoutes();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the prompt is shown
    announce(`The service did not answer: ${error.message}`);
    return;
  }
  $("#auth").hidden = true;
  $("#main").hidden = false;
  await checkAdmin();
  if (!started) {
    started = true;
    startDashboard();
    const wanted = window.location.hash.slice(1);
    selectTab(TABS.includes(wanted) ? wanted : "playground");
  }
  announce("");
}

async function boot() {
  initTabs();
  initPlayground();
  initDashboard();
  initExplorer();
  window.addEventListener("semroute:unauthorized", () => {
    askForKeys(keys.api ? "That key was refused: enter a valid API key." : "");
  });
  $("#auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    keys.set($("#api-key").value.trim(), $("#admin-key").value.trim());
    $("#auth-error").textContent = "";
    start();
  });
  $("#auth-forget").addEventListener("click", () => {
    keys.set("", "");
    showAdmin(false);
    askForKeys();
  });
  $("#keys-button").addEventListener("click", () => askForKeys());
  try {
    config = await call("ui/config.json");
  } catch (error) {
    announce(`The service did not answer: ${error.message}`);
    return;
  }
  $("#keys-button").hidden = !(config.keys_required || config.admin_enabled);
  if (config.keys_required && !keys.api) {
    askForKeys();
    return;
  }
  await start();
}

boot();
