// A record's value on screen: JSON as text, bytes as size, hex and base64.

import { el } from "./dom.js?v={{v:dom.js}}";
import { jsonText } from "./json.js?v={{v:json.js}}";

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
export function preview(record) {
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
export function valueBlock(record) {
  if (!("value" in record)) return el("p", {}, el("span", { class: "badge cleared" }, "cleared"), " (the key exists, without a value)");
  if (!record.binary) return el("pre", { class: "value" }, jsonText(record.value, 2));
  const bytes = bytesOf(record.value);
  return el("div", { class: "binary" },
    el("p", {}, `Binary value, ${bytes.length} bytes`),
    el("h4", {}, "Hex"), el("pre", { class: "value hex" }, hexDump(bytes, 4096)),
    el("h4", {}, "Base64"), el("pre", { class: "value b64" }, record.value.length > 65536
      ? record.value.slice(0, 65536) + "…" : record.value));
}
