// The integrity view: the signed head (a receipt to keep) and, for an admin key over every
// namespace, a verify of the whole chain.

import { api, enc } from "./api.js?v={{v:api.js}}";
import { dl, el, fill, showError, timeNode } from "./dom.js?v={{v:dom.js}}";
import { can, session } from "./session.js?v={{v:session.js}}";

// The console shows the signature but cannot check it: only a public key the auditor already trusts
// proves who signed, and that check belongs to `strata verify --from-head --public-key` or the client.
function signature(signed) {
  if (!signed) return el("span", { class: "muted", id: "head-unsigned" }, "not signed (this server signs no heads)");
  return el("span", {}, "Ed25519 by key ", el("code", { id: "head-key-id" }, signed.key_id), " over tx ",
    el("span", { id: "head-signed-size" }, String(signed.size)), " at ", timeNode(signed.time), " ",
    el("code", { class: "hash", id: "head-signature" }, signed.signature));
}

export async function viewIntegrity() {
  const head = await api("GET", "v4/head");
  const out = [el("h2", {}, "Integrity"),
    el("p", {}, "The head is a receipt: keep its tx and hash; a later verify proves the history up to it was not rewritten."),
    dl([["Head tx", el("span", { id: "head-tx" }, String(head.tx))], ["Hash", el("code", { id: "head-hash", class: "hash" }, head.hash || "none")],
      ["Committed", timeNode(head.time)], ["Merkle tree size", String(head.size)],
      ["Merkle root", el("code", { class: "hash", id: "head-root" }, head.root || "none")],
      ["Signature", signature(head.signed)]])];
  if (!can("admin") || (session.who.namespaces && session.who.auth)) {
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
