// Strata console: a read-mostly view of a Strata store at any point of its history.
//
// Contracts this file keeps:
// - It calls only the public HTTP API (paths relative to the page, so a proxy prefix works).
// - The API key lives in sessionStorage (this tab only) and travels only in the Authorization
//   header; it is never put in a URL, the page's or an API call's.
// - Every piece of data from the store is rendered as text (textContent, text nodes), never parsed
//   as HTML: a value holding "<script>" shows those characters.
// - A view's whole state is in the URL hash (#/ns/NAME?tx=5&prefix=a&key=k), so a link reopens it.
// - Controls that need more than the key's scope (write: revert; admin: verify) are not rendered.
"use strict";

const KEY_ITEM = "strata.console.key";
const PAGE = 100;          // keys per scan page
const HISTORY_PAGE = 50;   // versions per history page
const LIVE_KEEP = 500;     // live events kept on screen
const SCOPES = { read: 1, write: 2, admin: 3 };

const state = { who: null, live: null, renderId: 0 };

// ---------------------------------------------------------------- DOM, as text only

/** el("td", {class: "k"}, "text", node, ...): an element whose string children become text nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

/** Replace a node's children (null and false children are left out, as in el()). */
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ---------------------------------------------------------------- JSON, exactly

// Integers beyond 2^53 would be rounded by JSON.parse; with source-text access they stay exact.
function parseJSON(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

function jsonText(value, indent) {
  return JSON.stringify(value, (key, v) => (typeof v === "bigint"
    ? (JSON.rawJSON ? JSON.rawJSON(v.toString()) : v.toString()) : v), indent);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, problem, text) {
    const detail = problem && problem.detail ? problem.detail : (text || "").slice(0, 300);
    super(`${status}${problem && problem.code ? " " + problem.code : ""}: ${detail}`);
    this.status = status;
    this.problem = problem;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_ITEM);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(method, path, body, extra) {
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

const enc = encodeURIComponent;
const storage = (ns, op) => `v4/storage/${enc(ns)}/${op}`;

// ---------------------------------------------------------------- formatting

/** A time as UTC, with the viewer's local time beside it. */
function timeNode(iso) {
  if (!iso) return el("span", { class: "muted" }, "never");
  const date = new Date(iso);
  const local = isNaN(date) ? "" : date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  });
  return el("time", { datetime: iso, class: "time" }, el("span", { class: "utc" }, iso.replace("T", " ")),
    el("span", { class: "local" }, local ? `local ${local}` : ""));
}

function bytesOf(base64) {
  const raw = atob(base64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function hexDump(bytes, limit) {
  const lines = [];
  const shown = Math.min(bytes.length, limit);
  for (let off = 0; off < shown; off += 16) {
    const row = Array.from(bytes.subarray(off, Math.min(off + 16, shown)), (b) => b.toString(16).padStart(2, "0"));
    lines.push(off.toString(16).padStart(8, "0") + "  " + row.join(" "));
  }
  if (bytes.length > shown) lines.push(`… ${bytes.length - shown} more bytes`);
  return lines.join("\n");
}

/** A one-line preview of a record's value (what a table cell shows). */
function preview(record) {
  if (!record) return el("span", { class: "muted" }, "absent");
  if (!("value" in record)) return el("span", { class: "badge cleared" }, "cleared");
  if (record.binary) return el("span", { class: "muted" }, `binary, ${bytesOf(record.value).length} bytes`);
  const text = jsonText(record.value);
  if (text.length <= 120) return el("code", { class: "preview" }, text);
  // Too long for a cell: the start, and the whole value pretty-printed one click away.
  return el("details", { class: "long" }, el("summary", {}, el("code", { class: "preview" }, text.slice(0, 119) + "…")),
    el("pre", { class: "value" }, jsonText(record.value, 2)));
}

/** A record's value in full: JSON pretty-printed; bytes as size, hex and base64. */
function valueBlock(record) {
  if (!("value" in record)) return el("p", {}, el("span", { class: "badge cleared" }, "cleared"), " (the key exists, without a value)");
  if (!record.binary) return el("pre", { class: "value" }, jsonText(record.value, 2));
  const bytes = bytesOf(record.value);
  return el("div", { class: "binary" },
    el("p", {}, `Binary value, ${bytes.length} bytes`),
    el("h4", {}, "Hex"), el("pre", { class: "value hex" }, hexDump(bytes, 4096)),
    el("h4", {}, "Base64"), el("pre", { class: "value b64" }, record.value.length > 65536
      ? record.value.slice(0, 65536) + "…" : record.value));
}

function table(headings, rows, attrs) {
  return el("div", { class: "scroll" }, el("table", attrs || {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)));
}

function dl(pairs) {
  return el("dl", { class: "facts" }, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

// ---------------------------------------------------------------- the URL is the state

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  const path = (at < 0 ? raw : raw.slice(0, at)).split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
  return { view: path[0] || "namespaces", ns: path[1] || null, params };
}

/** The hash of a view: link("ns", "sample", {tx: 3}) -> "#/ns/sample?tx=3" (empty values left out). */
function link(view, ns, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const q = query.toString();
  return `#/${view}${ns ? "/" + enc(ns) : ""}${q ? "?" + q : ""}`;
}

const can = (scope) => state.who && SCOPES[state.who.scope] >= SCOPES[scope];

// ---------------------------------------------------------------- sign-in

/** Forget the key a refused request was sent with, unless another one was typed meanwhile. */
function forgetKey(used) {
  if (sessionStorage.getItem(KEY_ITEM) === used) sessionStorage.removeItem(KEY_ITEM);
}

async function signIn() {
  const used = sessionStorage.getItem(KEY_ITEM);
  try {
    state.who = await api("GET", "v4/whoami");
  } catch (err) {
    state.who = null;
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
  const who = state.who;
  $("who-text").textContent = who.auth
    ? `Key ${who.name} · ${who.scope}${who.namespaces ? " · " + who.namespaces.join(", ") : ""}`
    : "No API keys on this server (auth off)";
  $("sign-out").hidden = !who.auth;
  return true;
}

function showLogin() {
  stopLive();
  $("main").replaceChildren();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("api-key").focus();
}

// ---------------------------------------------------------------- views

async function render() {
  const id = ++state.renderId;
  const used = sessionStorage.getItem(KEY_ITEM);
  stopLive();
  showError("");
  if (!state.who && !(await signIn())) return;
  const route = parseHash();
  const main = $("main");
  const views = { namespaces: viewNamespaces, ns: viewNamespace, history: viewHistory, diff: viewDiff,
    live: viewLive, integrity: viewIntegrity };
  const view = views[route.view] || viewNamespaces;
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.dataset.view === route.view);
  }
  main.replaceChildren(el("p", { class: "muted", "aria-live": "polite" }, "Loading…"));
  try {
    const content = await view(route);
    if (id !== state.renderId) return;  // a later navigation won
    main.replaceChildren(...content);
    main.dataset.view = route.view;
    performance.mark("console:rendered", { detail: location.hash });  // what the 100,000-key figure measures
    const heading = main.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (err) {
    if (id !== state.renderId) return;
    if (err.status === 401) { state.who = null; forgetKey(used); showLogin(); }
    main.replaceChildren(el("h2", {}, "Could not load this view"));
    showError(err.message);
  }
}

function nsTabs(ns, current) {
  const items = [["ns", "Keys"], ["history", "Key history"], ["diff", "Diff"], ["live", "Live feed"]];
  return el("nav", { class: "tabs", "aria-label": `Views of ${ns}` }, items.map(([view, label]) =>
    el("a", { href: link(view, ns), "aria-current": view === current ? "page" : null }, label)));
}

async function viewNamespaces() {
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

/** Resolve a point in time given as a tx or an RFC 3339 time (UTC when it names no offset). */
async function resolvePoint(tx, at) {
  if (tx !== null && tx !== "") return { tx: Number(tx), note: null };
  if (!at) return { tx: null, note: null };
  const iso = /([zZ]|[+-]\d\d:\d\d)$/.test(at) ? at : at + "Z";
  const found = await api("GET", `v4/tx?at=${enc(iso)}`);
  return { tx: found.tx, note: el("p", { class: "resolved" }, `At ${found.at}: tx ${found.tx}`,
    found.time ? [" (committed ", timeNode(found.time), ")"] : " (before the first tx)") };
}

async function viewNamespace(route) {
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

/** Write scope only: revert the namespace to the tx on screen, after a dry run shows what changes. */
function revertControl(ns, tx) {
  const box = el("div", { class: "write-control revert", id: "revert" });
  const start = el("button", { type: "button", id: "revert-preview", onclick: async () => {
    start.disabled = true;
    try {
      const plan = await api("POST", storage(ns, "revert"), { to_tx: tx, dry_run: true });
      const apply = el("button", { type: "button", id: "revert-apply", class: "danger", onclick: async () => {
        apply.disabled = true;
        try {
          const note = { by: state.who.name || "console", via: "console" };
          const done = await api("POST", storage(ns, "revert"), { to_tx: tx },
            { "X-Strata-Note": jsonText(note), "Idempotency-Key": crypto.randomUUID() });
          box.replaceChildren(el("p", { role: "status" }, done.count
            ? `Reverted ${done.count} key(s) in tx ${done.tx}. ` : "Nothing to revert. ",
          el("a", { href: link("ns", ns) }, "Show the latest state")));
        } catch (err) { showError(err.message); apply.disabled = false; }
      } }, `Apply: revert ${plan.count} key(s) to tx ${tx}`);
      fill(box, el("p", {}, `A revert to tx ${tx} would change ${plan.count} key(s):`),
        diffTable(plan.data, ns), plan.count ? apply : null,
        el("button", { type: "button", onclick: () => box.replaceWith(revertControl(ns, tx)) }, "Cancel"));
    } catch (err) { showError(err.message); start.disabled = false; }
  } }, `Revert ${ns} to tx ${tx}…`);
  box.append(start);
  return box;
}

// ---------------------------------------------------------------- history

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

async function viewHistory(route) {
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

// ---------------------------------------------------------------- diff

function diffTable(entries, ns) {
  const rows = entries.map((d) => el("tr", { "data-key": d.key, "data-kind": d.kind },
    el("th", { scope: "row" }, ns ? el("a", { href: link("history", ns, { key: d.key }), title: "History of this key" },
      el("code", {}, d.key)) : el("code", {}, d.key)), el("td", {}, el("span", { class: `badge ${d.kind}` }, d.kind)),
    el("td", { class: "value-cell" }, preview(d.before)), el("td", { class: "value-cell" }, preview(d.after))));
  return table(["Key", "Change", "Before", "After"], rows, { class: "diff" });
}

async function viewDiff(route) {
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

// ---------------------------------------------------------------- live feed (SSE over fetch, to send the key)

function stopLive() {
  if (state.live && state.live.controller) state.live.controller.abort();
  state.live = null;
}

async function viewLive(route) {
  const ns = route.ns;
  const since = route.params.get("since");
  const start = since !== null ? Number(since) : (await api("POST", storage(ns, "read"), {})).tx;
  const list = el("ol", { class: "feed", id: "feed", "aria-live": "polite" });
  const status = el("p", { class: "live-status", id: "live-status", role: "status" });
  const toggle = el("button", { type: "button", id: "live-toggle" });
  const live = { ns, lastId: String(start), controller: null, list, status, toggle, paused: false };
  toggle.addEventListener("click", () => { live.paused = !live.paused; live.paused ? pauseLive(live) : runLive(live); });
  state.live = live;
  queueMicrotask(() => { if (state.live === live) runLive(live); });
  return [el("h2", {}, `Live feed of ${ns}`), nsTabs(ns, "live"),
    el("p", { class: "muted" }, `Each committed tx that touches ${ns}, newest first, from after tx ${start}.`),
    el("div", { class: "live-bar" }, toggle, status), list];
}

function pauseLive(live) {
  if (live.controller) live.controller.abort();
  live.controller = null;
  live.toggle.textContent = "Resume";
  live.status.textContent = `Paused after tx ${live.lastId}; resuming picks up from there.`;
}

async function runLive(live) {
  if (state.live !== live || live.paused) return;
  const controller = new AbortController();
  live.controller = controller;
  live.toggle.textContent = "Pause";
  live.status.textContent = `Live: following after tx ${live.lastId}…`;
  try {
    const response = await fetch(storage(live.ns, "sse"), { signal: controller.signal, cache: "no-store",
      credentials: "omit", headers: { Accept: "text/event-stream", "Last-Event-ID": live.lastId, ...authHeaders() } });
    if (!response.ok) {
      const text = await response.text();
      let problem = null;
      try { problem = JSON.parse(text); } catch (e) { problem = null; }
      throw new ApiError(response.status, problem, text);
    }
    live.status.textContent = `Live: connected, after tx ${live.lastId}.`;
    live.status.dataset.connected = "true";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        liveMessage(live, block);
      }
    }
  } catch (err) {
    if (controller.signal.aborted) return;
    live.status.textContent = `Disconnected (${err.message}); retrying in 2 s from after tx ${live.lastId}.`;
  }
  live.status.dataset.connected = "false";
  if (state.live === live && !live.paused && live.controller === controller) setTimeout(() => runLive(live), 2000);
}

function liveMessage(live, block) {
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  const event = parseJSON(data.join("\n"));
  if (id !== null) live.lastId = id;
  live.status.textContent = `Live: last event tx ${live.lastId}.`;
  const ops = event.operations.map((op) => el("li", {}, el("code", {}, op.key), " ",
    el("span", { class: `badge op-${op.op}` }, op.op), op.op === "put" ? [" ", preview(op)] : null));
  live.list.prepend(el("li", { class: "event", "data-tx": event.tx },
    el("div", { class: "version-head" }, el("a", { href: link("ns", live.ns, { tx: event.tx }), class: "tx" }, `tx ${event.tx}`),
      " ", timeNode(event.time)),
    event.note ? el("p", { class: "note" }, "Note: ", el("code", {}, jsonText(event.note))) : null,
    el("ul", { class: "ops" }, ops),
    el("p", { class: "hash muted" }, "hash ", el("code", {}, event.hash))));
  while (live.list.children.length > LIVE_KEEP) live.list.lastChild.remove();
}

// ---------------------------------------------------------------- integrity

// The console shows the signature but cannot check it: only a public key the auditor already trusts
// proves who signed, and that check belongs to `strata verify --from-head --public-key` or the client.
function signature(signed) {
  if (!signed) return el("span", { class: "muted", id: "head-unsigned" }, "not signed (this server signs no heads)");
  return el("span", {}, "Ed25519 by key ", el("code", { id: "head-key-id" }, signed.key_id), " over tx ",
    el("span", { id: "head-signed-size" }, String(signed.size)), " at ", timeNode(signed.time), " ",
    el("code", { class: "hash", id: "head-signature" }, signed.signature));
}

async function viewIntegrity() {
  const head = await api("GET", "v4/head");
  const out = [el("h2", {}, "Integrity"),
    el("p", {}, "The head is a receipt: keep its tx and hash; a later verify proves the history up to it was not rewritten."),
    dl([["Head tx", el("span", { id: "head-tx" }, String(head.tx))], ["Hash", el("code", { id: "head-hash", class: "hash" }, head.hash || "none")],
      ["Committed", timeNode(head.time)], ["Merkle tree size", String(head.size)],
      ["Merkle root", el("code", { class: "hash", id: "head-root" }, head.root || "none")],
      ["Signature", signature(head.signed)]])];
  if (!can("admin") || (state.who.namespaces && state.who.auth)) {
    out.push(el("p", { class: "muted" }, "Verifying the whole chain needs an admin key for every namespace."));
    return out;
  }
  const result = el("div", { id: "verify-result", role: "status" });
  const form = el("form", { class: "point admin-control", id: "verify-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target;
    const q = f.rtx.value || f.rhash.value ? `?receipt_tx=${enc(f.rtx.value)}&receipt_hash=${enc(f.rhash.value)}` : "";
    f.querySelector("button").disabled = true;
    result.replaceChildren(el("p", { class: "muted" }, "Verifying every tx…"));
    try {
      const v = await api("GET", `v4/verify${q}`);
      fill(result, el("p", { class: v.ok ? "ok" : "bad", id: "verify-verdict" },
        v.ok ? `Intact: ${v.checked} tx(s) checked, head tx ${v.head_tx}.`
          : `NOT intact: the first bad tx is ${v.bad_tx}: ${v.problem} (${v.checked} tx(s) checked before it).`),
      v.receipt ? el("p", { id: "verify-receipt" }, `Against the receipt of tx ${v.receipt.tx} (hash ${v.receipt.hash}).`) : null);
    } catch (err) { result.replaceChildren(); showError(err.message); }
    f.querySelector("button").disabled = false;
  } },
  el("label", {}, "Receipt tx (optional) ", el("input", { name: "rtx", type: "number", min: 1 })),
  el("label", {}, "Receipt hash ", el("input", { name: "rhash", type: "text", size: 64, spellcheck: "false" })),
  el("button", { type: "submit", id: "verify" }, "Verify the chain"));
  out.push(form, result);
  return out;
}

// ---------------------------------------------------------------- start

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
    state.who = null;
    showLogin();
  });
  document.querySelector(".skip").addEventListener("click", (e) => { e.preventDefault(); $("main").focus(); });
  window.addEventListener("hashchange", render);
  render();
}

document.addEventListener("DOMContentLoaded", start);
