// The live feed view: each committed tx that touches a namespace, newest first (SSE read over
// fetch, so that the key travels in a header, never in the URL). One feed runs at a time.

import { ApiError, api, authHeaders, storage } from "./api.js?v={{v:api.js}}";
import { el, timeNode } from "./dom.js?v={{v:dom.js}}";
import { parseJSON, jsonText } from "./json.js?v={{v:json.js}}";
import { link, nsTabs } from "./router.js?v={{v:router.js}}";
import { preview } from "./values.js?v={{v:values.js}}";

const LIVE_KEEP = 500;     // live events kept on screen
let current = null;        // the feed on screen, if any

/** Stop the feed on screen (leaving a view, signing out). */
export function stopLive() {
  if (current && current.controller) current.controller.abort();
  current = null;
}

export async function viewLive(route) {
  const ns = route.ns;
  const since = route.params.get("since");
  const start = since !== null ? Number(since) : (await api("POST", storage(ns, "read"), {})).tx;
  const list = el("ol", { class: "feed", id: "feed", "aria-live": "polite" });
  const status = el("p", { class: "live-status", id: "live-status", role: "status" });
  const toggle = el("button", { type: "button", id: "live-toggle" });
  const live = { ns, lastId: String(start), controller: null, list, status, toggle, paused: false };
  toggle.addEventListener("click", () => { live.paused = !live.paused; live.paused ? pauseLive(live) : runLive(live); });
  current = live;
  queueMicrotask(() => { if (current === live) runLive(live); });
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
  if (current !== live || live.paused) return;
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
  if (current === live && !live.paused && live.controller === controller) setTimeout(() => runLive(live), 2000);
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
