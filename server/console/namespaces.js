// The namespaces view: every namespace the key may use, with its stats.

import { api } from "./api.js?v={{v:api.js}}";
import { el, table, timeNode } from "./dom.js?v={{v:dom.js}}";
import { link } from "./router.js?v={{v:router.js}}";

export async function viewNamespaces() {
  const answer = await api("GET", "v4/namespace/storage");
  const rows = answer.data.map((ns) => el("tr", {},
    el("th", { scope: "row" }, el("a", { href: link("ns", ns.name), class: "ns-link" }, ns.name)),
    el("td", { class: "num" }, ns.stat.key_count.toLocaleString("en")),
    el("td", { class: "num" }, ns.stat.size_bytes.toLocaleString("en")),
    el("td", { class: "num" }, el("a", { href: link("ns", ns.name, { tx: ns.tx }) }, String(ns.tx))),
    el("td", {}, timeNode(ns.created_at)), el("td", {}, timeNode(ns.updated_at)),
    el("td", {}, el("a", { href: link("diff", ns.name) }, "diff"), " ", el("a", { href: link("live", ns.name) }, "live"))));
  return [el("h2", {}, "Namespaces"),
    answer.data.length ? table(["Namespace", "Keys", "Bytes", "Last tx", "Created", "Updated", ""], rows, { id: "namespaces" })
      : el("p", { class: "muted" }, "No namespaces yet.")];
}
