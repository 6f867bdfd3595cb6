// HTTP calls to the service, with the keys the user gave this tab.
//
// The console is served at <base>/ui/, so every endpoint is resolved against <base>/: it
// keeps working behind a reverse proxy that mounts the service under a path prefix.

const API_KEY = "semroute.apiKey";
const ADMIN_KEY = "semroute.adminKey";

export const base = new URL("../", window.location.href);

export const keys = {
  get api() { return sessionStorage.getItem(API_KEY) || ""; },
  get admin() { return sessionStorage.getItem(ADMIN_KEY) || ""; },
  set(api, admin) {
    for (const [name, value] of [[API_KEY, api], [ADMIN_KEY, admin]]) {
      if (value) sessionStorage.setItem(name, value);
      else sessionStorage.removeItem(name);
    }
  },
};

/** An answer other than 2xx, with the service's error type and message. */
export class ApiError extends Error {
  constructor(status, type, message, detail = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.detail = detail; // the whole error object: 502 and 504 carry the attempts
  }
}

/**
 * Call an endpoint; resolves to the parsed JSON (or text with `text: true`).
 * `admin: true` sends the admin key instead of the API key.
 */
export async function call(path, { method = "GET", body, admin = false, text = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  const key = admin ? keys.admin : keys.api;
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, base), init);
  } catch (error) {
    throw new ApiError(0, "unreachable", `the service did not answer (${error.message})`);
  }
  if (!response.ok) {
    let type = "http_error";
    let message = `${response.status} ${response.statusText}`;
    let detail = null;
    try {
      detail = (await response.json()).error || null;
      if (detail && detail.type) type = detail.type;
      if (detail && detail.message) message = detail.message;
    } catch {
      // not a JSON error body: keep the status line
    }
    const error = new ApiError(response.status, type, message, detail);
    if (response.status === 401 && !admin) {
      window.dispatchEvent(new CustomEvent("semroute:unauthorized", { detail: error }));
    }
    throw error;
  }
  return text ? response.text() : response.json();
}
