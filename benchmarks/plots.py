"""PNG plots of one run (matplotlib; the caller selects the Agg backend before importing this).

Each function reads the run dict only and writes one small PNG (about 100 dpi, a few tens of KB), so
results committed to the repo stay small. ``plot_all`` returns {plot name: file name} for the plots it
could draw (a plot with no data, e.g. HTTP when every server was skipped, is left out).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .measure import OPS
from .report import SYSTEM_ORDER

DPI = 100


def _save(fig, outdir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(outdir / name, dpi=DPI)
    plt.close(fig)
    return name


def plot_embedded(run: dict, outdir: Path, name: str) -> str | None:
    """Grouped horizontal bars: ratio to the floor per operation and system (log scale)."""
    rows = [m for m in run.get("embedded", []) if m.get("ratio") and m["system"] != "lmdb floor"]
    if not rows:
        return None
    systems = [s for s in SYSTEM_ORDER if any(m["system"] == s for m in rows)]
    ops = [op for op in OPS if any(m["op"] == op for m in rows)]
    cell = {(m["system"], m["op"]): m["ratio"] for m in rows}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ops) * max(1, len(systems)) / 2 + 1.5))
    h = 0.8 / len(systems)
    for i, s in enumerate(systems):
        ys = [j + i * h for j in range(len(ops))]
        ax.barh(ys, [cell.get((s, op), 0) for op in ops], height=h, label=s)
    ax.set_yticks([j + 0.4 - h / 2 for j in range(len(ops))], [OPS[op][0] for op in ops], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("time per key/item relative to raw LMDB floor (log; 1 = floor, lower is better)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Embedded operations vs the floor (same run)")
    return _save(fig, outdir, name)


def plot_http(run: dict, outdir: Path, name: str) -> str | None:
    rows = [h for h in run.get("http", []) if h.get("req_s")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.2))
    ax.barh([h["system"] for h in rows], [h["req_s"] for h in rows], color="tab:blue")
    for i, h in enumerate(rows):
        ax.text(h["req_s"], i, f" {h['req_s']:,.0f} (p99 {h['p99_ms'] or 0:.1f} ms)", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("requests/s (higher is better)")
    ax.set_title("POST read of 100 keys at a past tx")
    ax.margins(x=0.35)
    return _save(fig, outdir, name)


def plot_curve(run: dict, outdir: Path, name: str, curve: str, xlabel: str, ylabel: str, rate: bool) -> str | None:
    pts = [g for g in run.get("growth", []) if g["curve"] == curve and not g.get("skip")]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for s, o in sorted({(g["system"], g["op"]) for g in pts}):
        ser = sorted(
            (g["x"], g["items_per_s"] if rate else g["per_item_s"] * 1e6)
            for g in pts
            if g["system"] == s and g["op"] == o
        )
        ax.plot([x for x, _ in ser], [y for _, y in ser], marker="o", label=f"{s}: {o}")
    ax.set_xscale("log")
    if rate:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, outdir, name)


def plot_tx_at(run: dict, outdir: Path, name: str) -> str | None:
    """tx_at µs per call vs txs in the store (log x): flat means O(log n) with a tiny constant."""
    pts = sorted(
        (a["x"], a["per_op_s"] * 1e6) for a in run.get("audit", []) if a["part"] == "tx_at" and a.get("per_op_s")
    )
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label="strata embedded: store.tx_at(t)")
    for x, y in pts:
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0, top=max(y for _, y in pts) * 1.5)
    ax.set_xlabel("txs in store (log)")
    ax.set_ylabel("µs per call (lower is better; target < 50)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, outdir, name)


def plot_all(run: dict, outdir: Path, stamp: str) -> dict[str, str]:
    made = {
        "embedded": plot_embedded(run, outdir, f"{stamp}-embedded.png"),
        "http": plot_http(run, outdir, f"{stamp}-http.png"),
        "versions": plot_curve(
            run,
            outdir,
            f"{stamp}-versions.png",
            "versions",
            "versions per key (log)",
            "µs per get (lower is better)",
            False,
        ),
        "keys": plot_curve(
            run,
            outdir,
            f"{stamp}-keys.png",
            "keys",
            "keys in store (log)",
            "µs per key, read of 100 (lower is better)",
            False,
        ),
        "batch": plot_curve(
            run,
            outdir,
            f"{stamp}-batch.png",
            "batch",
            "items per put call (log)",
            "items/s (log, higher is better)",
            True,
        ),
        "tx_at": plot_tx_at(run, outdir, f"{stamp}-tx_at.png"),
    }
    return {k: v for k, v in made.items() if v}
