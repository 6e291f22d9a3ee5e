"""The same random histories on the LMDB engine and on EtcdStorage (a real 3-member etcd cluster) give
identical answers: the tx of every commit, the error of every refused write (and nothing written), every
namespace creation (a housekeeping txn on etcd: a revision that is no tx) and drop,
every read and scan at every tx, every key's history in both orders, diffs between txs, every tx's
log entry, the change feed, the namespaces and their info. Puts carry expiries (``ttl``, ``expiration``)
and metadata, batch-wide or per item; the clock moves 0.5 to 2.5 s per write, so values expire between
writes: every read at a tx applies the read rule at that tx's commit time, latest reads and scans are
also compared with the clock set 1 us before and at each pending expiry, with
``metadata=True`` and every optional field, and ``expect`` names expired values (absent) and their
stored tx (a conflict).

**The expiry sweep runs on both**: every write first records up to 64 due expiries as a delete tx of
its own (note ``{"expired": true}``), so tx numbers, reads at the sweep txs, history, diff, the log and
the feed include them; at the end both ``expire()`` everything still due (the same count) and every
comparison runs again on the swept stores (``key_count``/``size_bytes`` then exact on both).

Each example writes a fresh store prefix on the module's one cluster (examples run one after another, so
nothing else writes the cluster while one runs: the tx numbering needs that) and a fresh LMDB store in a
temporary directory; both read the same settable clock.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import Item, Store, errors
from engine import expiry as lmdb_expiry
from engine.etcd import EtcdClient
from engine.etcd.storage import EtcdStorage
from engine.expiry import FIELDS
from engine.records import NamespaceInfo
from tests.engine.clock import T0, Clock

NAMESPACES = ["a", "b"]
LONG = "L" * 500  # over 497 bytes: LMDB's long-key form, whose records name the key
KEYS = ["k", "k\x00", "ké", "kk", LONG]
_prefixes = itertools.count()

values = st.one_of(
    st.integers(-3, 3), st.text(max_size=3), st.binary(max_size=3), st.none(), st.booleans(),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2),
)
# A put's options: ttl, expiration (seconds after the write's time; made absolute when applied), metadata.
options = st.one_of(st.none(), st.just({"ttl": 1}), st.just({"ttl": 1.5}), st.fixed_dictionaries({}, optional={
    "ttl": st.sampled_from([1, 1.5, 3]), "expiration_in": st.sampled_from([1, 2.5]),
    "metadata": st.one_of(st.integers(0, 2), st.dictionaries(st.just("m"), st.text(max_size=2), max_size=1)),
}))
operations = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(["put", "put", "clear", "delete"]),
                       st.sampled_from(KEYS), values, options)
# "stored": the tx of the key's newest stored version, even if expired (then a conflict: it reads as absent).
expects = st.lists(st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(KEYS),
                             st.sampled_from(["current", "current", "zero", "wrong", "stored"])), max_size=2)
writes = st.one_of(
    st.tuples(st.just("txn"), st.lists(operations, min_size=1, max_size=4), expects),
    st.tuples(st.just("ns"), st.lists(operations, min_size=1, max_size=3), expects),
    st.tuples(st.just("bad"), st.lists(operations, min_size=1, max_size=2), expects),
)
# Creating a namespace is a housekeeping txn on etcd: a revision that is no tx, which every later tx
# number and every read at a tx must step over.
creates = st.tuples(st.sampled_from(["create", "drop"]), st.sampled_from(NAMESPACES), st.just([]))
histories = st.lists(st.one_of(writes, writes, creates), min_size=1, max_size=7)
advances = st.lists(st.sampled_from([0.5, 1, 1, 2.5]), min_size=1, max_size=7)


def timed(ops: Any, now: float) -> Any:
    """``ops`` with each relative ``expiration_in`` made an absolute ``expiration`` at ``now``."""
    if not isinstance(ops, list):
        return ops
    out = []
    for ns, kind, key, value, *rest in ops:
        opts = dict(rest[0] or {}) if rest else {}
        if "expiration_in" in opts:
            opts["expiration"] = now + opts.pop("expiration_in")
        out.append((ns, kind, key, value, opts))
    return out


def current_tx(store: Store, ns: str, key: str) -> int:
    rec = store.namespace(ns).get(key)
    return 0 if rec is None else rec.tx


def conditions(store: Store, wanted: list[tuple[str, str, str]]) -> list[tuple[str, str, int]]:
    """Expects resolved against the LMDB store's current state (both stores hold the same)."""
    out = []
    for ns, key, kind in wanted:
        tx = current_tx(store, ns, key)
        if kind == "stored":
            newest = store.namespace(ns).history(key, limit=1)
            out.append((ns, key, newest[0].tx if newest else 0))
        else:
            out.append((ns, key, tx if kind == "current" else 0 if kind == "zero" else tx + 1))
    return out


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "tx", call()
    except errors.EngineError as exc:
        return "error", (type(exc), exc.message, exc.details)


def apply_txn(target: Any, ops: list[tuple[str, str, str, Any]], conds: list[tuple[str, str, int]],
              note: dict[str, Any]) -> int:
    with target.transaction(note=note) as t:
        for ns, kind, key, value, *rest in ops:
            if kind == "put":
                t.put(ns, key, value, **(rest[0] if rest else {}))
            else:
                getattr(t, kind)(ns, key)
        for ns, key, tx in conds:
            t.expect(ns, key, tx=tx)
    return int(t.tx)


def apply_ns(target: Any, ops: list[tuple[str, str, str, Any]], conds: list[tuple[str, str, int]],
             note: dict[str, Any]) -> int:
    """One namespace call: the first operation's namespace and kind, over every key the ops name."""
    ns, kind = ops[0][0], ops[0][1]
    expect = {key: tx for n, key, tx in conds if n == ns} or None
    keys = list(dict.fromkeys(op[2] for op in ops))
    if kind == "put":  # the first op's options batch-wide, each later op's as its Item's own
        batch = ops[0][4] if len(ops[0]) > 4 else {}
        last = {op[2]: op for op in ops}
        items: Any = [Item(key, last[key][3], **(last[key][4] if len(last[key]) > 4 and last[key] is not ops[0]
                                                 else {})) for key in keys]
        if not any(len(op) > 4 and op[4] for op in ops):
            items = {key: last[key][3] for key in keys}  # no options at all: the mapping form
        handle: Any = target.namespace(ns) if isinstance(target, Store) else None
        if handle is not None:
            return handle.put(items, note=note, expect=expect, **batch)  # type: ignore[no-any-return]
        return target.put(ns, items, note=note, expect=expect, **batch)  # type: ignore[no-any-return]
    if isinstance(target, Store):
        return getattr(target.namespace(ns), kind)(keys, note=note, expect=expect)  # type: ignore[no-any-return]
    return getattr(target, kind)(ns, keys, note=note, expect=expect)  # type: ignore[no-any-return]


def apply_bad(target: Any, ops: list[tuple[str, str, str, Any]], conds: list[tuple[str, str, int]],
              note: dict[str, Any]) -> int:
    """A write the validation refuses (a NaN, or a ttl under the minimum): the same error on both,
    nothing written."""
    if len(ops) == 1:
        return apply_txn(target, ops + [(ns, "put", key, float("nan")) for ns, _, key, *_ in ops], conds, note)
    return apply_txn(target, ops + [(ns, "put", key, 1, {"ttl": 0.5}) for ns, _, key, *_ in ops[:1]], conds, note)


def apply_create(target: Any, ns: str, conds: list[tuple[str, str, int]], note: dict[str, Any]) -> Any:
    return target.create_namespace(ns)


def apply_drop(target: Any, ns: str, conds: list[tuple[str, str, int]], note: dict[str, Any]) -> Any:
    return target.drop_namespace(ns, note=note)


APPLY = {"txn": apply_txn, "ns": apply_ns, "bad": apply_bad, "create": apply_create, "drop": apply_drop}


def compare_reads(store: Store, storage: EtcdStorage, latest: int) -> None:
    assert storage.head() == tuple(store.head())  # seals every tx (one housekeeping txn), then the same hashes
    for tx in range(latest + 1):
        for ns in NAMESPACES:
            handle = store.namespace(ns)
            assert storage.read(ns, KEYS, tx=tx) == handle.read(KEYS, tx=tx), (ns, tx)
            assert storage.read(ns, KEYS, tx=tx, metadata=True, fields=FIELDS) == handle.read(
                KEYS, tx=tx, metadata=True, fields=FIELDS), (ns, tx)
            expected = handle.scan(tx=tx)
            assert storage.scan(ns, tx=tx).records == list(expected), (ns, tx)
            assert storage.scan(ns, tx=tx).tx == expected.tx
            assert storage.scan(ns, "k", tx=tx, after="k", limit=2).records == list(
                handle.scan("k", tx=tx, after="k", limit=2)), (ns, tx)
        info, entry = store.tx_info(tx), storage.tx_info(tx)
        if info is None:
            assert entry is None
        else:
            assert entry is not None
            assert (entry.tx, entry.time, entry.time_us, entry.note, entry.operations, entry.hash) == (
                info.tx, info.time, info.time_us, info.note, info.operations, info.hash)
    assert storage.tx_info(latest + 1) is None
    for since, limit, ns in ((0, 1000, None), (1, 2, None), (0, 1000, "a"), (0, 2, "b"), (latest, 5, None)):
        feed = [(e.tx, e.time, e.time_us, e.note, e.operations, e.hash)
                for e in storage.changes(since, limit=limit, namespace=ns)]
        assert feed == [(i.tx, i.time, i.time_us, i.note, i.operations, i.hash)
                        for i in store.changes(since, limit=limit, namespace=ns)], (since, limit, ns)
    assert storage.verify() == store.verify()


def compare_latest_around_expiries(store: Store, storage: EtcdStorage, clock: Clock) -> None:
    """Latest reads and scans with the clock 1 us before and at each pending expiry (a latest read
    evaluates expiry at ``max(now, the latest tx's time)``), with ``metadata`` and every field."""
    now = clock.now
    pending = {rec.expire_time.timestamp() for ns in NAMESPACES
               for rec in store.namespace(ns).read(KEYS, fields=["expire_time"]).records if rec.expire_time}
    for when in sorted({*(t + d for t in pending for d in (-0.000001, 0)), now + 10}):
        clock.now = when
        for ns in NAMESPACES:
            handle = store.namespace(ns)
            assert storage.read(ns, KEYS, metadata=True, fields=FIELDS) == handle.read(
                KEYS, metadata=True, fields=FIELDS), (ns, when)
            assert storage.scan(ns).records == list(handle.scan()), (ns, when)
    clock.now = now


def compare_diffs(store: Store, storage: EtcdStorage, latest: int) -> None:
    pairs = {(0, latest), (latest // 2, latest), *((t, t + 1) for t in range(latest))}
    for ns in NAMESPACES:
        for a, b in sorted(pairs):
            assert storage.diff(ns, a, b) == list(store.namespace(ns).diff(a, b)), (ns, a, b)
    for bad in ((1, 0), (0, latest + 1), (-1, 0)):
        assert outcome(lambda: storage.diff("a", *bad)) == outcome(lambda: list(store.namespace("a").diff(*bad)))  # noqa: B023


def compare_histories(store: Store, storage: EtcdStorage, latest: int) -> None:
    for ns in NAMESPACES:
        handle = store.namespace(ns)
        for key in KEYS:
            desc = handle.history(key)
            assert storage.history(ns, key) == desc, (ns, key)
            if not desc:
                continue
            assert storage.history(ns, key, order="asc") == handle.history(key, order="asc"), (ns, key)
            middle = desc[len(desc) // 2].tx
            assert storage.history(ns, key, before=middle + 1, limit=2) == handle.history(
                key, before=middle + 1, limit=2)
            assert storage.history(ns, key, after=middle - 1, limit=2, order="asc") == handle.history(
                key, after=middle - 1, limit=2, order="asc")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories, steps=advances)
def test_random_histories_answer_alike_on_lmdb_and_etcd(etcd: EtcdClient, history: list[Any],
                                                        steps: list[float]) -> None:
    clock = Clock()
    storage = EtcdStorage.open(etcd, f"diff/{next(_prefixes)}", clock=clock)
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as store:
        for i, (kind, raw_ops, wanted) in enumerate(history):
            clock.now += steps[i % len(steps)]
            ops = timed(raw_ops, clock.now)
            conds = conditions(store, wanted)
            note = {"i": i}
            before = store.latest_tx
            expected = outcome(lambda: APPLY[kind](store, ops, conds, note))  # noqa: B023 - called at once
            got = outcome(lambda: APPLY[kind](storage, ops, conds, note))  # noqa: B023
            assert got == expected, (kind, ops, conds)
            if expected[0] == "error":
                assert store.latest_tx == storage.latest_tx == before
        clock.now += 1.5  # a last write, to record (sweep) what fell due since the history's last one
        assert storage.put("b", {"end": 1}) == store.namespace("b").put({"end": 1})
        event(f"sweep txs: {min(sum(e.note == lmdb_expiry.EXPIRED_NOTE for e in store.changes()), 2)}")
        compare_everything(store, storage, clock)
        assert storage.next_expiry() == store.next_expiry()
        clock.now += 5  # past every expiry the history can set
        assert storage.expire() == store.expire()
        assert storage.next_expiry() is store.next_expiry() is None
        compare_everything(store, storage, clock)


def compare_everything(store: Store, storage: EtcdStorage, clock: Clock) -> None:
    latest = store.latest_tx
    assert storage.latest_tx == latest
    compare_reads(store, storage, latest)
    compare_latest_around_expiries(store, storage, clock)
    compare_histories(store, storage, latest)
    compare_diffs(store, storage, latest)
    assert storage.namespaces() == [info.name for info in store.namespaces()]
    for ns in NAMESPACES:
        assert storage.namespace_info(ns) == store.namespace_info(ns)


def test_a_fixed_history_with_every_kind_of_write(etcd: EtcdClient) -> None:
    """One history that surely has a conflict, no-op deletes, a long key, clears and two namespaces."""
    clock = Clock()
    storage = EtcdStorage.open(etcd, f"diff/{next(_prefixes)}", clock=clock)
    steps: list[Any] = [
        ("create", "b", []),
        ("txn", [("a", "put", "k", 1), ("b", "put", LONG, b"x"), ("a", "put", "ké", {"x": 1})], []),
        ("ns", [("a", "delete", "k", None), ("a", "delete", "kk", None)], [("a", "k", "current")]),
        ("ns", [("a", "delete", "kk", None)], []),
        ("create", "b", []),
        ("create", "a", []),
        ("txn", [("a", "put", "k", 2)], [("a", "ké", "wrong")]),
        ("txn", [("b", "clear", LONG, None), ("a", "put", "k\x00", None)], [("a", "k", "zero")]),
        ("bad", [("a", "put", "k", 3)], []),
        ("ns", [("b", "delete", LONG, None)], [("b", LONG, "current")]),
        ("drop", "a", []),
        ("drop", "a", []),
        ("drop", "b", []),
        ("txn", [("a", "put", "k", 9)], []),
        ("create", "b", []),
    ]
    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as store:
        results = []
        for i, (kind, ops, wanted) in enumerate(steps):
            clock.now += 1
            conds = conditions(store, wanted)
            expected = outcome(lambda: APPLY[kind](store, ops, conds, {"i": i}))  # noqa: B023
            assert outcome(lambda: APPLY[kind](storage, ops, conds, {"i": i})) == expected  # noqa: B023
            results.append(expected[1] if expected[0] == "tx" else expected[1][0])
        created = NamespaceInfo("b", at(T0 + 1), at(T0 + 1), 0, 0, 0)
        recreated = NamespaceInfo("b", at(T0 + 15), at(T0 + 10), 4, 0, 0)  # keeps its last tx, as on LMDB
        assert results == [created, 1, 2, 2, errors.NamespaceExists, errors.NamespaceExists, errors.Conflict, 3,
                           errors.InvalidValue, 4, 5, errors.NamespaceNotFound, 5, 6, recreated]
        compare_reads(store, storage, 6)
        compare_histories(store, storage, 6)
        compare_diffs(store, storage, 6)
        assert [storage.namespace_info(ns) for ns in NAMESPACES] == [store.namespace_info(ns) for ns in NAMESPACES]


def test_a_fixed_history_with_many_sweeps(etcd: EtcdClient) -> None:
    """Expiries in both namespaces (b written first: LMDB's namespace ids are not name order) due at the
    same microsecond, a long key, stale entries (overwritten, deleted, dropped), a refused write that
    sweeps nothing, a drop and a recreation: the sweep txs and everything read around them alike."""
    clock = Clock()
    storage = EtcdStorage.open(etcd, f"diff/{next(_prefixes)}", clock=clock)
    ttl = {"ttl": 1}
    steps: list[Any] = [
        ("txn", [("b", "put", "k", 1, ttl), ("a", "put", "kk", 2, ttl), ("a", "put", LONG, 3, ttl),
                 ("a", "put", "k\x00", 4, ttl), ("b", "put", "ké", 5, ttl)], []),
        ("ns", [("a", "put", "k", 6, ttl), ("a", "put", "kk", 7, {"ttl": 3})], []),  # kk's first entry stale
        ("ns", [("b", "delete", "ké", None)], []),  # ké's entry stale
        ("txn", [("a", "put", "ké", 8, ttl)], [("a", "k", "wrong")]),  # refused: nothing swept
        ("txn", [("a", "put", "ké", 8, ttl), ("b", "put", LONG, 9, ttl)], []),
        ("drop", "b", []),  # b's LONG entry stale
        ("ns", [("a", "clear", "k", None)], []),
        ("txn", [("b", "put", "k", 10, {"ttl": 1.5})], []),
        ("ns", [("a", "put", "n", 11)], []),
        ("ns", [("a", "put", "n", 12)], []),
    ]
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as store:
        for i, (kind, ops, wanted) in enumerate(steps):
            clock.now += 1
            conds = conditions(store, wanted)
            expected = outcome(lambda: APPLY[kind](store, ops, conds, {"i": i}))  # noqa: B023
            assert outcome(lambda: APPLY[kind](storage, ops, conds, {"i": i})) == expected, i  # noqa: B023
        sweeps = [e.tx for e in store.changes() if e.note == lmdb_expiry.EXPIRED_NOTE]
        assert len(sweeps) >= 3, sweeps
        compare_everything(store, storage, clock)
        clock.now += 5
        assert storage.expire() == store.expire()
        compare_everything(store, storage, clock)
