// What every view reads: the configured routes (GET /console/routes) and whether the admin
// key was accepted. Views subscribe to changes instead of fetching the routes each.

import { call } from "./api.js";

export const state = {
  routes: [], // [{name, description, model, fallbacks, models, threshold, accept_threshold,
  //            utterances}]
  scoring: "classifier",
  prices: {}, // model -> blended USD per 1k tokens, or null
  admin: false,
};

const listeners = new Set();

export function onRoutes(listener) {
  listeners.add(listener);
}

export async function loadRoutes() {
  const answer = await call("console/routes");
  state.routes = answer.routes;
  state.scoring = answer.scoring;
  state.prices = answer.prices;
  for (const listener of listeners) listener(state);
  return state;
}

export function routePosition(name) {
  return state.routes.findIndex((route) => route.name === name);
}
