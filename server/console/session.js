// Who is signed in: the key's name, scope and namespaces (GET /v4/whoami), so that controls needing
// more than the key's scope (write: revert; admin: verify) are not rendered.

import { KEY_ITEM, api } from "./api.js?v={{v:api.js}}";
import { $, showError } from "./dom.js?v={{v:dom.js}}";
import { stopLive } from "./live.js?v={{v:live.js}}";

const SCOPES = { read: 1, write: 2, admin: 3 };

/** session.who: the whoami answer of the key in use, or null when signed out. */
export const session = { who: null };

export const can = (scope) => session.who && SCOPES[session.who.scope] >= SCOPES[scope];

/** Forget the key a refused request was sent with, unless another one was typed meanwhile. */
export function forgetKey(used) {
  if (sessionStorage.getItem(KEY_ITEM) === used) sessionStorage.removeItem(KEY_ITEM);
}

/** Ask who the kept key is; true when signed in, false (the sign-in form shown) when it is refused. */
export async function signIn() {
  const used = sessionStorage.getItem(KEY_ITEM);
  try {
    session.who = await api("GET", "v4/whoami");
  } catch (err) {
    session.who = null;
    if (err.status === 401) {
      if (used) showError("That API key is not known to this server.");
      forgetKey(used);
      showLogin();
      return false;
    }
    throw err;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  const who = session.who;
  $("who-text").textContent = who.auth
    ? `Key ${who.name} · ${who.scope}${who.namespaces ? " · " + who.namespaces.join(", ") : ""}`
    : "No API keys on this server (auth off)";
  $("sign-out").hidden = !who.auth;
  return true;
}

export function showLogin() {
  stopLive();
  $("main").replaceChildren();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("api-key").focus();
}
