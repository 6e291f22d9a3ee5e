// The URL is the state: a view's whole state is in the hash (#/ns/NAME?tx=5&prefix=a&key=k), so a
// link reopens it.

import { el } from "./dom.js?v={{v:dom.js}}";

/** The view, namespace and parameters the hash names. */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  const path = (at < 0 ? raw : raw.slice(0, at)).split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
  return { view: path[0] || "namespaces", ns: path[1] || null, params };
}

/** The hash of a view: link("ns", "sample", {tx: 3}) -> "#/ns/sample?tx=3" (empty values left out). */
export function link(view, ns, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const q = query.toString();
  return `#/${view}${ns ? "/" + encodeURIComponent(ns) : ""}${q ? "?" + q : ""}`;
}

/** The tabs of a namespace's views, the current one marked. */
export function nsTabs(ns, current) {
  const items = [["ns", "Keys"], ["history", "Key history"], ["diff", "Diff"], ["live", "Live feed"]];
  return el("nav", { class: "tabs", "aria-label": `Views of ${ns}` }, items.map(([view, label]) =>
    el("a", { href: link(view, ns), "aria-current": view === current ? "page" : null }, label)));
}
