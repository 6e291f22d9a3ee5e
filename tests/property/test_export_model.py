"""Export then import reproduces the store, for any history the strategies below can build.

A history is a list of steps: puts (plain, and with an expiry or metadata), clears, deletes
(of written keys and of keys never written: no-ops), transactions mixing all three across
namespaces, namespace creation and drops (of empty namespaces too), the clock moving on, and two
kinds of tx only older versions wrote (a drop of an empty namespace logged as a tx with no key, a
delete of an absent key logged as a delete), which stores written before the no-op rule hold.

Then, through JSON, as a file would carry them:

* a full history export imported into an empty store gives the same head hash, the same
  ``tx_info`` for every tx, the same namespace list, and the same answer to every read at every
  tx (records with their tx, metadata and expiry);
* a snapshot export of every namespace imported into an empty store gives the same namespace
  list and the same latest records.

The default run keeps to a few seconds; the ``long`` variant tries many more histories.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import Item, Store, errors
from engine.codec import DELETE
from engine.txn import Batch, Run, apply_batch
from tests.engine.clock import Clock

from .strategies import NAMESPACES, keys, values

KEYS = st.sampled_from(["a", "b", "c\x00", "k" * 478 + "a"]) | keys()
NS = st.sampled_from(NAMESPACES)
# Transactions on few names make runs of one namespace and op around a no-op delete likely.
TX_OP = st.tuples(st.sampled_from(NAMESPACES[:2]), st.sampled_from(["a", "b", "c\x00"]) | KEYS,
                  st.sampled_from(["put", "clear", "delete"]), values)

step = st.one_of(
    st.tuples(st.just("put"), NS, st.dictionaries(KEYS, values, min_size=1, max_size=3)),
    st.tuples(st.just("put_options"), NS, st.dictionaries(KEYS, values, min_size=1, max_size=2),
              st.sampled_from([None, 1, 3]), st.sampled_from([None, {"by": "x"}, [1]])),
    st.tuples(st.just("clear"), NS, st.lists(KEYS, min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("delete"), NS, st.lists(KEYS, min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("transaction"), st.lists(TX_OP, min_size=1, max_size=5)),
    st.tuples(st.just("create"), NS),
    st.tuples(st.just("drop"), NS),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 2])),
    st.tuples(st.just("legacy_empty_drop"), NS),
    st.tuples(st.just("legacy_delete"), NS, KEYS),
)
histories = st.lists(step, max_size=14)


def _transaction(store: Store, ops: list[tuple[str, str, str, Any]]) -> None:
    with store.transaction(note={"n": len(ops)}) as t:
        for ns, key, op, value in ops:
            if op == "put":
                t.put(ns, key, value)
            else:
                getattr(t, op)(ns, key)


def _create(store: Store, ns: str) -> None:
    with contextlib.suppress(errors.NamespaceExists):
        store.create_namespace(ns)


def _drop(store: Store, ns: str) -> None:
    with contextlib.suppress(errors.NamespaceNotFound):
        store.drop_namespace(ns)


def run_step(store: Store, clock: Clock, s: tuple[Any, ...]) -> None:
    kind = s[0]
    if kind == "put":
        store.namespace(s[1]).put(s[2])
    elif kind == "put_options":
        _, ns, items, ttl, metadata = s
        store.namespace(ns).put([Item(k, v, ttl=ttl, metadata=metadata) for k, v in items.items()])
    elif kind in ("clear", "delete"):
        getattr(store.namespace(s[1]), kind)(s[2])
    elif kind == "transaction":
        _transaction(store, s[1])
    elif kind in ("create", "drop"):
        (_create if kind == "create" else _drop)(store, s[1])
    elif kind == "advance":
        clock.now += s[1]
    else:
        legacy_write(store, s)


def legacy_write(store: Store, s: tuple[Any, ...]) -> None:
    """A tx as versions before the no-op rule wrote it: written as given, no-ops included."""
    if s[0] == "legacy_empty_drop":
        info = store.namespace_info(s[1])
        if info is None or list(store.namespace(s[1]).scan(limit=1)) or info.key_count:
            return  # the old drop logged no key only for a namespace without live keys
        run = Run(s[1], DELETE)
    else:
        if store.namespace(s[1]).get(s[2]) is not None or store.namespace(s[1]).history(s[2], limit=1):
            return  # only a delete of a never-written key: no expiry to record first
        run = Run(s[1], DELETE, [s[2]], [s[2].encode()])

    def write(txn: Any) -> None:
        apply_batch(store, txn, Batch([run]), None)
        if s[0] == "legacy_empty_drop":
            raw = txn.get(s[1].encode(), db=store._backend.namespaces)
            entry = engine.schema.NamespaceEntry.decode(raw)
            entry.dropped = True
            txn.put(s[1].encode(), entry.encode(), db=store._backend.namespaces)
    store._backend.write(write)


def through_json(rows: Any) -> list[dict[str, Any]]:
    return [json.loads(orjson.dumps(row)) for row in rows]


def names(store: Store) -> list[str]:
    return [n.name for n in store.namespaces()]


def records(store: Store, ns: str, tx: int | None, with_tx: bool = True) -> list[tuple[Any, ...]]:
    out = []
    for r in store.namespace(ns).scan(tx=tx, metadata=True, fields=["expire_time"]):
        out.append((r.key, orjson.dumps(r.value) if not r.binary else r.value, type(r.value).__name__, r.binary,
                    r.cleared, r.metadata, r.expire_time, r.tx if with_tx else None))
    return out


def check_history(src: Store, steps: list[tuple[Any, ...]], tmp: Path, clock: Clock) -> None:
    rows = through_json(engine.export_history(src))
    assert rows[0]["namespaces"] == names(src)
    with Store.open(tmp / "history", sync=False, clock=clock) as dst:
        engine.import_rows(dst, rows)
        assert dst.head() == src.head(), steps
        assert names(dst) == names(src)
        assert dst.verify().ok
        touched = sorted(set(NAMESPACES))
        for tx in range(src.latest_tx + 1):
            if tx:
                assert dst.tx_info(tx) == src.tx_info(tx)
            for ns in touched:
                assert records(dst, ns, tx) == records(src, ns, tx), (tx, ns)
        for ns in touched:
            assert records(dst, ns, None) == records(src, ns, None)


def check_snapshots(src: Store, tmp: Path, clock: Clock) -> None:
    with Store.open(tmp / "snapshot", sync=False, clock=clock) as dst:
        for ns in names(src):
            engine.import_rows(dst, through_json(engine.export_snapshot(src, ns)))
        assert names(dst) == names(src)
        for ns in NAMESPACES:
            assert records(dst, ns, None, with_tx=False) == records(src, ns, None, with_tx=False)


def check_history_reproduces(steps: list[tuple[Any, ...]]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="strata-export-model-"))
    clock = Clock()
    try:
        with Store.open(tmp / "src", sync=False, clock=clock) as src:
            for s in steps:
                run_step(src, clock, s)
            check_history(src, steps, tmp, clock)
            check_snapshots(src, tmp, clock)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=80, **_SETTINGS)  # type: ignore[arg-type]
@given(histories)
def test_export_then_import_reproduces_the_store(steps: list[tuple[Any, ...]]) -> None:
    check_history_reproduces(steps)


@pytest.mark.long
@settings(max_examples=1000, **_SETTINGS)  # type: ignore[arg-type]
@given(st.lists(step, max_size=40))
def test_export_then_import_reproduces_the_store_long(steps: list[tuple[Any, ...]]) -> None:
    check_history_reproduces(steps)
