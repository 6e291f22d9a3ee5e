// The public HTTP API, called with the user's key. Paths are relative to the page, so a proxy
// prefix works. The key lives in sessionStorage (this tab only) and travels only in the
// Authorization header: never in a URL, the page's or an API call's.

import { jsonText, parseJSON } from "./json.js?v={{v:json.js}}";

export const KEY_ITEM = "strata.console.key";

/** A refused call: its status, and the problem+json body when there is one. */
export class ApiError extends Error {
  constructor(status, problem, text) {
    const detail = problem && problem.detail ? problem.detail : (text || "").slice(0, 300);
    super(`${status}${problem && problem.code ? " " + problem.code : ""}: ${detail}`);
    this.status = status;
    this.problem = problem;
  }
}

export function authHeaders() {
  const key = sessionStorage.getItem(KEY_ITEM);
  return key ? { Authorization: "Bearer " + key } : {};
}

/** Call the API; the parsed JSON answer, or an ApiError. */
export async function api(method, path, body, extra) {
  const headers = { Accept: "application/json", ...authHeaders(), ...(extra || {}) };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = jsonText(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? parseJSON(text) : null; } catch (e) { data = null; }
  if (!response.ok) throw new ApiError(response.status, data, text);
  return data;
}

export const enc = encodeURIComponent;
export const storage = (ns, op) => `v4/storage/${enc(ns)}/${op}`;
