"""Strata embedded: the engine's public API (``engine.Store``), in process, same data as the floor.

Loading writes the data set in its standard batches, one ``put`` call (= one tx) per batch with
``sync=False``, so load tx t is the same logical state as SQLite tx t and etcd revision t + 1.

Operations use only the public API: ``Namespace.get/read/scan/put`` and, once they exist,
``Namespace.history`` and ``Store.tx_at`` (detected with ``hasattr``; until then their rows say
"skipped: not implemented yet"). Every value comes back decoded into Python objects, as the floor's
``msgpack.unpackb`` does, so the ratio measures versioning + validation + record building.
"""

from __future__ import annotations

import inspect
import shutil
import time
from pathlib import Path

from ..datasets import Dataset, Workload
from ..measure import Op
from . import Target, cycle

NAMESPACE = "bench"


def engine_skip_reason() -> str | None:
    """Why the engine cannot be benchmarked yet, or None when ``engine.Store`` imports."""
    try:
        from engine import Store  # noqa: F401
    except ImportError as exc:
        return f"engine.Store not importable yet ({exc})"
    return None


def open_store(path: Path, sync: bool = True):  # -> engine.Store
    from engine import Store

    path.mkdir(parents=True, exist_ok=True)
    return Store.open(str(path), sync=sync)


def load(ns, ds: Dataset) -> int:
    """Write ``ds`` into namespace ``ns`` in its standard batches (sync=False bulk load); return last tx."""
    tx = 0
    for _, batch in ds.batches():
        tx = ns.put(dict(batch), sync=False)
    return tx


class StrataEmbedded(Target):
    name = "strata embedded"
    description = "engine.Store in process (public API), namespace 'bench'"

    def skip_reason(self) -> str | None:
        return engine_skip_reason()

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        self.ds, self.wl = ds, wl
        self.path = workdir / "strata"
        # Opened like the floor's environment (no flush at commit), so the rows compare like with
        # like: put(sync=True) then flushes once per commit, as the floor's env.sync() does, and
        # put(sync=False) flushes nothing. The default store (sync=True) flushes twice per commit
        # (data, then meta, which is what makes it power-loss safe); see docs/engine.md.
        self.store = open_store(self.path, sync=False)
        self.ns = self.store.namespace(NAMESPACE)
        self.first_ts = time.time()
        self.load_tx = load(self.ns, ds)
        self.last_ts = time.time()
        # Durable rows use a store opened with the defaults (sync=True: data pages flushed at
        # commit, then the meta page), as crash-safe as the floor's synced LMDB commit.
        self.durable = open_store(workdir / "strata-durable")
        load(self.durable.namespace(NAMESPACE), ds)
        self.bytes_per_version = self._bytes_per_version(workdir / "strata-backup")

    def _bytes_per_version(self, path: Path) -> float:
        """Bytes on disk per stored version after the store's own backup (a dense rebuild: every page full)."""
        self.store.backup(path)
        size = (path / "data.mdb").stat().st_size
        shutil.rmtree(path, ignore_errors=True)
        return size / (self.ds.n_keys * self.ds.versions)

    def _history_op(self) -> Op:
        ns, single = self.ns, cycle(self.wl.singles)
        fn = getattr(ns, "history", None)
        if fn is None:
            return Op("history", self.ds.versions, None, skip="not implemented yet (no Namespace.history)")

        def history() -> object:
            return list(fn(single()))

        return Op("history", self.ds.versions, history, notes=f"{self.ds.versions} versions per key")

    def _tx_at_op(self) -> Op:
        fn = getattr(self.store, "tx_at", None)
        if fn is None:
            return Op("tx_at", 1, None, skip="not implemented yet (no Store.tx_at)")
        # Timestamps inside the load window; accept either seconds or a datetime-like signature by
        # passing a float (the documented contract is checked when the API lands).
        span = max(self.last_ts - self.first_ts, 1e-3)
        stamps = cycle([self.first_ts + span * i / 64 for i in range(64)])
        params = list(inspect.signature(fn).parameters)
        note = f"signature tx_at({', '.join(params)})"
        return Op("tx_at", 1, lambda: fn(stamps()), notes=note)

    def ops(self) -> list[Op]:
        ns, wl = self.ns, self.wl
        single, hundred = cycle(wl.singles), cycle(wl.hundreds)
        past = cycle(wl.past_txs)
        starts = cycle([f"k:{s:014d}" for s in wl.scan_starts])

        def get(tx: int | None) -> object:
            return ns.get(single(), tx=tx).value

        def read100(tx: int | None) -> object:
            return [r.value for r in ns.read(hundred(), tx=tx).records]

        def scan(tx: int | None) -> object:
            return [(r.key, r.value) for r in ns.scan(prefix="k:", tx=tx, after=starts(), limit=1000)]

        def make_put(size: int, sync: bool) -> Op:
            batches = cycle([dict(b) for b in wl.write_batches(size, 4)])
            if sync:
                durable = self.durable.namespace(NAMESPACE)
                dur = "store opened with the defaults (sync=True): data, then meta flushed per commit, as the floor"
                return Op(f"put{size}_sync", size, lambda: durable.put(batches()), dur)
            dur = "store opened sync=False, put(sync=False): no fsync (lost on OS crash), as the floor"
            return Op(f"put{size}_nosync", size, lambda: ns.put(batches(), sync=False), dur)

        ops = [
            Op("get_latest", 1, lambda: get(None)),
            Op("get_past", 1, lambda: get(past())),
            Op("read100_latest", 100, lambda: read100(None)),
            Op("read100_past", 100, lambda: read100(past())),
            Op("scan1000", 1000, lambda: scan(None)),
            Op("scan1000_past", 1000, lambda: scan(past())),
            self._history_op(),
            self._tx_at_op(),
        ]
        ops += [make_put(n, s) for s in (True, False) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        for attr in ("store", "durable"):
            store = getattr(self, attr, None)
            if store is not None:
                store.close()
                setattr(self, attr, None)
