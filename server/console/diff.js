// The diff of a namespace between two moments (txs or times).

import { api, storage } from "./api.js?v={{v:api.js}}";
import { el, table } from "./dom.js?v={{v:dom.js}}";
import { resolvePoint } from "./point.js?v={{v:point.js}}";
import { link, nsTabs } from "./router.js?v={{v:router.js}}";
import { preview } from "./values.js?v={{v:values.js}}";

/** The table of a diff's entries (also the dry run of a revert); keys link to their history when ns is given. */
export function diffTable(entries, ns) {
  const rows = entries.map((d) => el("tr", { "data-key": d.key, "data-kind": d.kind },
    el("th", { scope: "row" }, ns ? el("a", { href: link("history", ns, { key: d.key }), title: "History of this key" },
      el("code", {}, d.key)) : el("code", {}, d.key)), el("td", {}, el("span", { class: `badge ${d.kind}` }, d.kind)),
    el("td", { class: "value-cell" }, preview(d.before)), el("td", { class: "value-cell" }, preview(d.after))));
  return table(["Key", "Change", "Before", "After"], rows, { class: "diff" });
}

export async function viewDiff(route) {
  const ns = route.ns, p = route.params;
  const form = el("form", { class: "point", id: "diff-form", onsubmit: (e) => {
    e.preventDefault();
    location.hash = link("diff", ns, { from: e.target.from.value, to: e.target.to.value });
  } },
  el("label", {}, "From (tx or time) ", el("input", { name: "from", id: "diff-from", type: "text", required: true, value: p.get("from") || "" })),
  el("label", {}, "To (tx or time; empty: latest) ", el("input", { name: "to", id: "diff-to", type: "text", value: p.get("to") || "" })),
  el("button", { type: "submit" }, "Compare"));
  const out = [el("h2", {}, `Diff of ${ns}`), nsTabs(ns, "diff"), form];
  if (!p.get("from")) return out;
  const asTx = async (v) => (/^\d+$/.test(v) ? { tx: Number(v), note: null } : resolvePoint(null, v));
  const from = await asTx(p.get("from"));
  const to = p.get("to") ? await asTx(p.get("to")) : { tx: null, note: null };
  const body = { from_tx: from.tx };
  if (to.tx !== null) body.to_tx = to.tx;
  const answer = await api("POST", storage(ns, "diff"), body);
  for (const point of [from, to]) if (point.note) out.push(point.note);
  const counts = {};
  for (const d of answer.data) counts[d.kind] = (counts[d.kind] || 0) + 1;
  out.push(el("p", { id: "diff-summary" }, `From tx ${answer.from_tx} to tx ${answer.to_tx}: ${answer.count} key(s) differ`,
    Object.keys(counts).length ? ` (${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ")})` : ""));
  if (answer.count) out.push(diffTable(answer.data, ns));
  return out;
}
