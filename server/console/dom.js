// The page, built as text only: every string from the store becomes a text node (textContent),
// never parsed as HTML, so a value holding "<script>" shows those characters.

/** el("td", {class: "k"}, "text", node, ...): an element whose string children become text nodes. */
export function el(tag, attrs, ...children) {
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

export const $ = (id) => document.getElementById(id);

/** Replace a node's children (null and false children are left out, as in el()). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** Show a message in the page's alert box (empty: hide it). */
export function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

/** A time as UTC, with the viewer's local time beside it. */
export function timeNode(iso) {
  if (!iso) return el("span", { class: "muted" }, "never");
  const date = new Date(iso);
  const local = isNaN(date) ? "" : date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  });
  return el("time", { datetime: iso, class: "time" }, el("span", { class: "utc" }, iso.replace("T", " ")),
    el("span", { class: "local" }, local ? `local ${local}` : ""));
}

export function table(headings, rows, attrs) {
  return el("div", { class: "scroll" }, el("table", attrs || {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)));
}

export function dl(pairs) {
  return el("dl", { class: "facts" }, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}
