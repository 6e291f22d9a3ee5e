// Write scope only: revert a namespace to an earlier tx, after a dry run shows what changes.

import { api, storage } from "./api.js?v={{v:api.js}}";
import { el, fill, showError } from "./dom.js?v={{v:dom.js}}";
import { diffTable } from "./diff.js?v={{v:diff.js}}";
import { jsonText } from "./json.js?v={{v:json.js}}";
import { link } from "./router.js?v={{v:router.js}}";
import { session } from "./session.js?v={{v:session.js}}";

/** Write scope only: revert the namespace to the tx on screen, after a dry run shows what changes. */
export function revertControl(ns, tx) {
  const box = el("div", { class: "write-control revert", id: "revert" });
  const start = el("button", { type: "button", id: "revert-preview", onclick: async () => {
    start.disabled = true;
    try {
      const plan = await api("POST", storage(ns, "revert"), { to_tx: tx, dry_run: true });
      const apply = el("button", { type: "button", id: "revert-apply", class: "danger", onclick: async () => {
        apply.disabled = true;
        try {
          const note = { by: session.who.name || "console", via: "console" };
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
