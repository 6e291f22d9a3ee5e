"""The revert property: for any history and any N, after ``revert(N)`` a read at the latest tx
equals the engine's own read at N, key by key, with metadata and expiry, less the values whose
expiry has passed by the revert's commit time (see ``engine/revert.py``); keys outside the chosen
keys or prefix read as they did before the revert."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Item, Store
from tests.engine.clock import Clock

from .strategies import HOT, values

LONG = os.environ.get("STRATA_LONG") == "1"
KEYS = [*HOT[:4], "b/x", "b/y", "c"]

_op = st.one_of(
    st.tuples(st.just("put"), st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=3),
              st.none() | st.sampled_from([1, 3, 30]), st.none() | st.sampled_from([{"m": 1}, "m", [0]])),
    st.tuples(st.sampled_from(["clear", "delete"]), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3,
                                                             unique=True)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 2, 10])),
)


def _view(store: Store, tx: int | None) -> dict[str, tuple[Any, ...]]:
    records = store.namespace("n").read(KEYS, tx=tx, metadata=True, fields=["expire_time"]).records
    return {r.key: (repr(r.value), r.binary, r.cleared, repr(r.metadata), r.expire_time) for r in records}


def _apply(store: Store, clock: Clock, op: tuple[Any, ...]) -> None:
    ns = store.namespace("n")
    if op[0] == "put":
        ns.put([Item(k, v, ttl=op[2], metadata=op[3]) for k, v in op[1].items()])
    elif op[0] == "clear":
        ns.clear(op[1])
    elif op[0] == "delete":
        ns.delete(op[1])
    else:
        clock.now += op[1]


@settings(max_examples=300 if LONG else 30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, max_size=12), data=st.data(), wait=st.sampled_from([0, 0, 5, 50]),
       scope=st.sampled_from(["all", "keys", "prefix"]))
def test_after_revert_n_the_latest_reads_as_n(ops: list[tuple[Any, ...]], data: st.DataObject, wait: float,
                                              scope: str) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, map_size=1 << 20, clock=clock) as store:
        for op in ops:
            _apply(store, clock, op)
        n = data.draw(st.integers(min_value=0, max_value=store.latest_tx), label="N")
        clock.now += wait
        keys = data.draw(st.lists(st.sampled_from(KEYS), min_size=1, unique=True), label="keys") \
            if scope == "keys" else None
        prefix = "b/" if scope == "prefix" else None
        in_scope = [k for k in KEYS if (keys is None or k in keys) and (prefix is None or k.startswith(prefix))]
        before = _view(store, None)
        at_n = _view(store, n)
        preview = store.namespace("n").revert(n, keys=keys, prefix=prefix, dry_run=True)
        result = store.namespace("n").revert(n, keys=keys, prefix=prefix)
        assert result.changes == preview.changes
        now = datetime.fromtimestamp(clock.now, UTC)
        after = _view(store, None)
        assert after == _view(store, result.tx)  # the latest read and the read at the revert's tx agree
        for key in KEYS:
            if key in in_scope:
                want = at_n.get(key)
                if want is not None and want[4] is not None and want[4] <= now:
                    want = None  # expired since N, as it would have without the revert
                assert after.get(key) == want, (key, n)
            else:
                assert after.get(key) == before.get(key), key
        if not result.committed:
            assert result.tx == store.latest_tx and not result.changes
        assert store.namespace("n").revert(n, keys=keys, prefix=prefix).committed is False  # idempotent
