// A point in the store's history, given as a tx or as a time.

import { api, enc } from "./api.js?v={{v:api.js}}";
import { el, timeNode } from "./dom.js?v={{v:dom.js}}";

/** Resolve a point in time given as a tx or an RFC 3339 time (UTC when it names no offset):
 *  {tx, note}, where note (or null) says which tx a time resolved to. */
export async function resolvePoint(tx, at) {
  if (tx !== null && tx !== "") return { tx: Number(tx), note: null };
  if (!at) return { tx: null, note: null };
  const iso = /([zZ]|[+-]\d\d:\d\d)$/.test(at) ? at : at + "Z";
  const found = await api("GET", `v4/tx?at=${enc(iso)}`);
  return { tx: found.tx, note: el("p", { class: "resolved" }, `At ${found.at}: tx ${found.tx}`,
    found.time ? [" (committed ", timeNode(found.time), ")"] : " (before the first tx)") };
}
