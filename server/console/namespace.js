// A namespace at a point in time: its keys (a page of a scan at a tx), and one record in full.

import { api, enc, storage } from "./api.js?v={{v:api.js}}";
import { dl, el, table, timeNode } from "./dom.js?v={{v:dom.js}}";
import { jsonText } from "./json.js?v={{v:json.js}}";
import { resolvePoint } from "./point.js?v={{v:point.js}}";
import { revertControl } from "./revert.js?v={{v:revert.js}}";
import { link, nsTabs } from "./router.js?v={{v:router.js}}";
import { can } from "./session.js?v={{v:session.js}}";
import { preview, valueBlock } from "./values.js?v={{v:values.js}}";

const PAGE = 100;          // keys per scan page

export async function viewNamespace(route) {
  const ns = route.ns, p = route.params;
  const point = await resolvePoint(p.get("tx"), p.get("at"));
  const body = { prefix: p.get("prefix") || "", limit: PAGE };
  if (point.tx !== null) body.tx = point.tx;
  if (p.get("after")) body.after = p.get("after");
  const [page, info] = await Promise.all([api("POST", storage(ns, "scan"), body),
    api("GET", `v4/namespace/storage/${enc(ns)}`).catch(() => null)]);
  const latest = info ? info.data.tx : null;
  const pinned = { tx: page.tx, prefix: p.get("prefix") };
  const form = el("form", { class: "point", id: "point-form", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    // A time typed (or changed) wins over the tx box, which shows the tx on screen.
    const byTime = f.at.value.trim() !== "" && (f.at.value !== (p.get("at") || "") || !f.tx.value);
    location.hash = link("ns", ns, { tx: byTime ? "" : f.tx.value, at: byTime ? f.at.value.trim() : "",
      prefix: f.prefix.value, key: p.get("key") });
  } },
  el("label", {}, "At tx ", el("input", { name: "tx", id: "at-tx", type: "number", min: 0, step: 1,
    value: p.get("tx") || (p.get("at") ? "" : page.tx), inputmode: "numeric" })),
  el("label", {}, "or at time ", el("input", { name: "at", id: "at-time", type: "text", value: p.get("at") || "",
    placeholder: "2026-11-23T09:00:00Z", title: "RFC 3339; UTC unless an offset is given" })),
  el("label", {}, "Key prefix ", el("input", { name: "prefix", id: "prefix", type: "text", value: p.get("prefix") || "" })),
  el("button", { type: "submit" }, "Show"),
  el("a", { href: link("ns", ns, { prefix: p.get("prefix") }), class: "button" }, "Latest"));
  const rows = page.data.map((r) => el("tr", { "data-key": r.key, class: r.key === p.get("key") ? "selected" : null },
    el("th", { scope: "row" }, el("a", { href: link("ns", ns, { ...pinned, after: p.get("after"), key: r.key }),
      class: "key-link" }, r.key)),
    el("td", { class: "num" }, String(r.tx)), el("td", { class: "value-cell" }, preview(r))));
  const pager = el("p", { class: "pager" },
    p.get("after") ? el("a", { href: link("ns", ns, pinned), class: "button" }, "First page") : null,
    page.cursor ? el("a", { href: link("ns", ns, { ...pinned, after: page.cursor }), class: "button", id: "next-page" },
      "Next page") : null);
  const heading = el("h2", {}, `${ns} at tx ${page.tx}`, latest !== null && page.tx < latest
    ? [" ", el("span", { class: "badge past" }, `past: latest is ${latest}`)] : null);
  const out = [heading, nsTabs(ns, "ns"), form];
  if (point.note) out.push(point.note);
  if (info) out.push(dl([["Live keys now", info.data.stat.key_count.toLocaleString("en")],
    ["Bytes now", info.data.stat.size_bytes.toLocaleString("en")], ["Created", timeNode(info.data.created_at)],
    ["Updated", timeNode(info.data.updated_at)]]));
  if (can("write") && latest !== null && page.tx < latest) out.push(revertControl(ns, page.tx));
  out.push(el("p", { class: "muted", id: "page-count" }, `${page.count} key${page.count === 1 ? "" : "s"} on this page`
    + (p.get("prefix") ? ` with prefix “${p.get("prefix")}”` : "")));
  out.push(table(["Key", "Record tx", "Value"], rows, { id: "keys" }), pager);
  if (p.get("key")) out.push(await recordPanel(ns, p.get("key"), page.tx));
  return out;
}

async function recordPanel(ns, key, tx) {
  const answer = await api("POST", storage(ns, "read"), { keys: [key], tx, metadata: true,
    fields: ["created_at", "updated_at", "expire_time"] });
  const panel = el("section", { class: "record", id: "record", "aria-label": `Record ${key}` },
    el("h3", {}, "Record ", el("code", {}, key), ` at tx ${tx}`));
  const record = answer.data[0];
  if (!record) {
    panel.append(el("p", {}, "No record: the key is absent or deleted at this tx."));
  } else {
    panel.append(dl([["Record tx", String(record.tx)], ["Created", timeNode(record.created_at)],
      ["Updated", timeNode(record.updated_at)], ["Expires", timeNode(record.expire_time)]]));
    panel.append(el("h4", {}, "Value"), valueBlock(record));
    panel.append(el("h4", {}, "Metadata"), record.metadata === null || record.metadata === undefined
      ? el("p", { class: "muted" }, "none") : el("pre", { class: "value" }, jsonText(record.metadata, 2)));
  }
  panel.append(el("p", {}, el("a", { href: link("history", ns, { key }), id: "history-link" }, "History of this key")));
  return panel;
}
