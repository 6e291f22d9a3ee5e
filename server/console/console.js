// Strata console: a read-mostly view of a Strata store at any point of its history. This is the
// entry module: sign-in, and the view the URL hash names. Each view is its own module.
//
// Contracts the modules keep together:
// - They call only the public HTTP API (paths relative to the page, so a proxy prefix works).
// - The API key lives in sessionStorage (this tab only) and travels only in the Authorization
//   header; it is never put in a URL, the page's or an API call's (api.js).
// - Every piece of data from the store is rendered as text (textContent, text nodes), never parsed
//   as HTML: a value holding "<script>" shows those characters (dom.js).
// - A view's whole state is in the URL hash (#/ns/NAME?tx=5&prefix=a&key=k), so a link reopens it
//   (router.js).
// - Controls that need more than the key's scope (write: revert; admin: verify) are not rendered.
// - Each import names its file with the file's version (a placeholder the server fills in with the
//   file's ETag), so every module can be cached for a year and a release is picked up at the next load.

import { KEY_ITEM } from "./api.js?v={{v:api.js}}";
import { viewDiff } from "./diff.js?v={{v:diff.js}}";
import { $, el, showError } from "./dom.js?v={{v:dom.js}}";
import { viewHistory } from "./history.js?v={{v:history.js}}";
import { viewIntegrity } from "./integrity.js?v={{v:integrity.js}}";
import { stopLive, viewLive } from "./live.js?v={{v:live.js}}";
import { viewNamespace } from "./namespace.js?v={{v:namespace.js}}";
import { viewNamespaces } from "./namespaces.js?v={{v:namespaces.js}}";
import { parseHash } from "./router.js?v={{v:router.js}}";
import { forgetKey, session, showLogin, signIn } from "./session.js?v={{v:session.js}}";

const VIEWS = { namespaces: viewNamespaces, ns: viewNamespace, history: viewHistory, diff: viewDiff,
  live: viewLive, integrity: viewIntegrity };
let renderId = 0;

async function render() {
  const id = ++renderId;
  const used = sessionStorage.getItem(KEY_ITEM);
  stopLive();
  showError("");
  if (!session.who && !(await signIn())) return;
  const route = parseHash();
  const main = $("main");
  const view = VIEWS[route.view] || viewNamespaces;
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.dataset.view === route.view);
  }
  main.replaceChildren(el("p", { class: "muted", "aria-live": "polite" }, "Loading…"));
  try {
    const content = await view(route);
    if (id !== renderId) return;  // a later navigation won
    main.replaceChildren(...content);
    main.dataset.view = route.view;
    performance.mark("console:rendered", { detail: location.hash });  // what the 100,000-key figure measures
    const heading = main.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (err) {
    if (id !== renderId) return;
    if (err.status === 401) { session.who = null; forgetKey(used); showLogin(); }
    main.replaceChildren(el("h2", {}, "Could not load this view"));
    showError(err.message);
  }
}

function start() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("api-key");
    sessionStorage.setItem(KEY_ITEM, input.value.trim());
    input.value = "";
    showError("");
    if (await signIn().catch((err) => { showError(err.message); return false; })) render();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    session.who = null;
    showLogin();
  });
  document.querySelector(".skip").addEventListener("click", (e) => { e.preventDefault(); $("main").focus(); });
  window.addEventListener("hashchange", render);
  render();
}

document.addEventListener("DOMContentLoaded", start);
