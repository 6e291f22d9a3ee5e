// A key's history: its versions, newest first, each with what changed from the one before.

import { api, enc, storage } from "./api.js?v={{v:api.js}}";
import { el, timeNode } from "./dom.js?v={{v:dom.js}}";
import { jsonText } from "./json.js?v={{v:json.js}}";
import { link, nsTabs } from "./router.js?v={{v:router.js}}";
import { preview, valueBlock } from "./values.js?v={{v:values.js}}";

const HISTORY_PAGE = 50;   // versions per history page

/** What changed from one version of a key to the next (older may be undefined: the first one seen). */
function change(version, older) {
  if (version.op === "delete") return el("span", { class: "badge deleted" }, "deleted");
  if (version.op === "clear") return el("span", { class: "badge cleared" }, "cleared");
  if (!older) return el("span", { class: "badge added" }, "first version on record");
  if (older.op !== "put") return el("span", { class: "badge added" }, `set again after ${older.op}`);
  const before = older.value, after = version.value;
  const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (!version.binary && !older.binary && isObject(before) && isObject(after)) {
    const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    const lines = names.filter((n) => jsonText(before[n]) !== jsonText(after[n])).map((n) => el("li", {},
      el("code", {}, n), ": ", n in before ? el("del", {}, jsonText(before[n])) : el("span", { class: "muted" }, "(none)"),
      " → ", n in after ? el("ins", {}, jsonText(after[n])) : el("span", { class: "muted" }, "(removed)")));
    return lines.length ? el("ul", { class: "changes" }, lines) : el("span", { class: "muted" }, "same value (metadata or expiry changed)");
  }
  return el("span", {}, el("del", {}, preview(older)), " → ", el("ins", {}, preview(version)));
}

export async function viewHistory(route) {
  const ns = route.ns, p = route.params;
  const key = p.get("key");
  const form = el("form", { class: "point", onsubmit: (e) => {
    e.preventDefault();
    location.hash = link("history", ns, { key: e.target.key.value });
  } }, el("label", {}, "Key ", el("input", { name: "key", id: "history-key", type: "text", value: key || "", required: true })),
  el("button", { type: "submit" }, "Show history"));
  const out = [el("h2", {}, key ? ["History of ", el("code", {}, key)] : `Key history in ${ns}`), nsTabs(ns, "history"), form];
  if (!key) return out;
  // One version more than shown: the oldest one shown still gets its change from the one before.
  const query = `key=${enc(key)}&limit=${HISTORY_PAGE + 1}${p.get("before") ? "&before=" + enc(p.get("before")) : ""}`;
  const answer = await api("GET", `${storage(ns, "history")}?${query}`);
  const versions = answer.data.slice(0, HISTORY_PAGE);
  const items = versions.map((v, i) => el("li", { class: "version", "data-tx": v.tx },
    el("div", { class: "version-head" },
      el("a", { href: link("ns", ns, { tx: v.tx, key }), class: "tx" }, `tx ${v.tx}`), " ",
      el("span", { class: `badge op-${v.op}` }, v.op), " ", timeNode(v.time)),
    v.note ? el("p", { class: "note" }, "Note: ", el("code", {}, jsonText(v.note))) : el("p", { class: "note muted" }, "No note"),
    el("div", { class: "change" }, change(v, answer.data[i + 1])),
    v.op === "put" ? el("details", {}, el("summary", {}, "Value"), valueBlock(v)) : null));
  out.push(versions.length ? el("ol", { class: "timeline", id: "timeline" }, items)
    : el("p", { class: "muted" }, "No versions: this key was never written."));
  const more = answer.data.length > HISTORY_PAGE;
  out.push(el("p", { class: "pager" },
    p.get("before") ? el("a", { href: link("history", ns, { key }), class: "button" }, "Newest") : null,
    more ? el("a", { href: link("history", ns, { key, before: versions[versions.length - 1].tx }), class: "button",
      id: "older" }, "Older versions") : null));
  return out;
}
