"""The version lookups of engine/snapshot.py called directly: their documented answers for a key
with no version, a deleted key and a key whose value expires, exactly at the expiry instant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine import Store
from engine.errors import EngineError
from engine.expiry import SWEEP_PER_WRITE
from engine.records import Record
from engine.snapshot import current_tx, live_tx, read_keys, read_one_at

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)


def _lookups(store: Store, key: str, now_us: int) -> tuple[tuple[int, bytes | None], int]:
    backend = store._backend

    def run(txn: object) -> tuple[tuple[int, bytes | None], int]:
        prefix = store._ns_prefix(txn, "t")
        assert prefix is not None
        vtx, rec = current_tx(txn, backend.versions, prefix, key.encode())
        return (vtx, None if rec is None else bytes(rec)), live_tx(txn, backend.latest, prefix, key.encode(), now_us)

    return backend.read(run)


def test_a_key_with_no_version_has_tx_0_and_no_record(store: Store, clock: Clock) -> None:
    store.namespace("t").put({"other": 1})
    assert _lookups(store, "never", clock.us) == ((0, None), 0)


def test_a_deleted_key_has_its_delete_as_current_and_no_live_tx(store: Store, clock: Clock) -> None:
    ns = store.namespace("t")
    ns.put({"k": 1})
    tx = ns.delete(["k"])
    (vtx, rec), live = _lookups(store, "k", clock.us)
    assert (vtx, rec is not None, live) == (tx, True, 0)


def test_a_value_is_live_until_the_microsecond_before_it_expires(store: Store, clock: Clock) -> None:
    tx = store.namespace("t").put({"k": 1}, ttl=10)
    expires = round((T0 + 10) * 1_000_000)
    assert _lookups(store, "k", expires - 1)[1] == tx
    assert _lookups(store, "k", expires)[1] == 0
    assert _lookups(store, "k", expires)[0][0] == tx  # the version is still the current one


def test_keys_with_nul_bytes_read_back_one_by_one_and_in_a_batch(store: Store) -> None:
    """A 00 byte is escaped in the keypart: a read must escape it too, in the batch read's inline
    short-key path as in the one-key path, and keys with 01 (never escaped) next to them."""
    keys = ["a\x00b", "\x00", "a\x00", "\x00\x01", "a\x01b", "n" * 498 + "\x00"]
    ns = store.namespace("t")
    tx = ns.put({k: i for i, k in enumerate(keys)})
    assert [(r.key, r.value, r.tx) for r in ns.read(keys).records] == [(k, i, tx) for i, k in enumerate(keys)]
    assert [(ns.get(k).key, ns.get(k).value) for k in keys] == [(k, i) for i, k in enumerate(keys)]  # type: ignore[union-attr]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"tx": 4}, {"code": "FUTURE_TX", "message": "tx 4 is in the future: the latest committed tx is 3",
                 "tx": 4, "latest_tx": 3}),
    ({"tx": -1}, {"code": "INVALID_PARAMETERS", "message": "tx must be a non-negative integer or None, not -1",
                  "parameter": "tx"}),
    ({"tx": 1.0}, {"code": "INVALID_PARAMETERS",
                   "message": "tx must be a non-negative integer or None, not 1.0", "parameter": "tx"}),
    ({"tx": True}, {"code": "INVALID_PARAMETERS",
                    "message": "tx must be a non-negative integer or None, not True", "parameter": "tx"}),
    ({"tx": 1, "at": T0}, {"code": "INVALID_PARAMETERS", "message": "give tx or at, not both", "parameter": "at"}),
])
def test_the_tx_a_read_asks_for_is_refused_exactly(store: Store, kwargs: dict[str, Any],
                                                    error: dict[str, Any]) -> None:
    ns = store.namespace("t")
    for i in range(3):
        ns.put({"k": i})
    with pytest.raises(EngineError) as exc:
        ns.read(["k"], **kwargs)
    assert exc.value.to_dict() == error
    with pytest.raises(EngineError) as exc:
        ns.get("k", **kwargs)
    assert exc.value.to_dict() == error


def test_reads_at_tx_0_the_latest_and_a_time(store: Store, clock: Clock) -> None:
    ns = store.namespace("t")
    for i in range(1, 4):
        clock.now = T0 + i
        ns.put({"k": i})
    assert ns.read(["k"], tx=0) == ([], 0)
    assert ns.get("k", tx=0) is None
    assert [(r.value, r.tx) for r in ns.read(["k"], tx=3).records] == [(3, 3)]
    assert ns.read(["k"], at=T0 + 2.5).tx == 2
    assert ns.read(["k"], at=T0).tx == 0
    store.compact(2)
    with pytest.raises(EngineError) as exc:
        ns.read(["k"], at=T0 + 1.5)
    assert exc.value.to_dict() == {"code": "TX_COMPACTED", "message": "tx 1 was compacted away: the oldest "
                                   "readable tx is 2", "tx": 1, "horizon": 2}
    with pytest.raises(EngineError) as exc:
        ns.get("k", tx=1)
    assert exc.value.to_dict()["tx"] == 1
    assert ns.get("k", tx=2).value == 2  # type: ignore[union-attr]
    # The horizon's own tx is readable by time too (the check is tx < horizon), and in a scan.
    assert ns.read(["k"], at=T0 + 2.5) == ([Record("k", 2, 2)], 2)
    assert ns.get("k", at=T0 + 2) == Record("k", 2, 2)
    assert list(ns.scan(tx=2)) == [Record("k", 2, 2)]


def test_read_keys_refuses_keys_and_encodings_of_different_lengths(store: Store) -> None:
    """``keys`` and their UTF-8 ``raws`` go together one for one: a mismatch is a caller's bug,
    refused rather than silently dropping keys."""
    store.namespace("t").put({"a": 1, "b": 2})
    backend = store._backend

    def run(txn: object) -> None:
        prefix = store._ns_prefix(txn, "t")
        assert prefix is not None
        with pytest.raises(ValueError, match="zip"):
            read_keys(txn, backend.versions, prefix, ["a", "b"], [b"a"], 1, lambda: None, True)  # type: ignore[arg-type,return-value]

    backend.read(run)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_fields_of_plain_and_rich_values_are_exact_on_every_read_path(store: Store, clock: Clock) -> None:
    """A plain put and an extended one (expiry, metadata) of bytes and of a str, read with every field
    and with metadata alone, at the latest tx and at a past one, in a batch and one by one: the exact
    records (``binary`` and ``cleared`` included, each field from its own version)."""
    ns = store.namespace("t")
    clock.now = T0 + 1
    first = ns.put({"p": b"\x00raw", "s": "str"})
    clock.now = T0 + 2
    second = ns.put({"r": b"\x01rich", "q": "text"}, ttl=100, metadata={"m": 1})
    fields = ["created_at", "updated_at", "expire_time"]
    dressed = [Record("p", b"\x00raw", first, binary=True, created_at=_at(T0 + 1), updated_at=_at(T0 + 1)),
               Record("s", "str", first, created_at=_at(T0 + 1), updated_at=_at(T0 + 1)),
               Record("r", b"\x01rich", second, binary=True, created_at=_at(T0 + 2), updated_at=_at(T0 + 2),
                      expire_time=_at(T0 + 102)),
               Record("q", "text", second, created_at=_at(T0 + 2), updated_at=_at(T0 + 2), expire_time=_at(T0 + 102))]
    plain = [Record("p", b"\x00raw", first, binary=True), Record("s", "str", first),
             Record("r", b"\x01rich", second, binary=True, metadata={"m": 1}),
             Record("q", "text", second, metadata={"m": 1})]
    keys = ["p", "s", "r", "q"]
    ns.put({"other": 1})  # the reads at `second` are then of a past tx
    for tx in (None, second):
        assert ns.read(keys, tx=tx, fields=fields).records == dressed
        assert [ns.get(k, tx=tx, fields=fields) for k in keys] == dressed
        assert ns.read(keys, tx=tx, metadata=True).records == plain
        assert [ns.get(k, tx=tx, metadata=True) for k in keys] == plain
        assert ns.read(keys, tx=tx).records == [r._replace(metadata=None) for r in plain]
        assert [ns.get(k, tx=tx) for k in keys] == [r._replace(metadata=None) for r in plain]


def test_expiry_is_evaluated_now_at_the_latest_and_at_commit_time_at_an_explicit_tx(store: Store,
                                                                                   clock: Clock) -> None:
    """A value past its expiry is gone from a read at the latest tx, yet a read at an explicit tx
    (even the latest one) answers as of that tx's commit time, forever; ``get`` without metadata
    leaves it out on every path."""
    ns = store.namespace("t")
    clock.now = T0 + 1
    tx = ns.put({"k": b"v"}, ttl=10, metadata={"m": 1})
    clock.now = T0 + 20  # expired now, and no tx since
    live = Record("k", b"v", tx, binary=True, metadata={"m": 1})
    assert ns.get("k", tx=tx, metadata=True) == live
    assert ns.get("k", tx=tx) == live._replace(metadata=None)
    assert ns.read(["k"], tx=tx, metadata=True) == ([live], tx)
    assert ns.get("k") is None and ns.get("k", metadata=True) is None and ns.get("k", fields=["updated_at"]) is None
    assert ns.read(["k"], metadata=True) == ([], tx) and ns.read(["k", "x"], metadata=True) == ([], tx)
    later = ns.put({"other": 1})  # committed after the expiry
    assert ns.get("k", tx=later, metadata=True) is None and ns.get("k", tx=later) is None
    assert ns.get("k", tx=tx, metadata=True) == live


def test_a_read_at_the_horizon_tx_gives_that_tx_version(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(1, 4):
        ns.put({"k": i}, metadata={"i": i})
    store.compact(2)
    assert ns.get("k", tx=2, metadata=True) == Record("k", 2, 2, metadata={"i": 2})
    assert ns.get("k", tx=2) == Record("k", 2, 2)
    assert ns.read(["k"], tx=2, metadata=True) == ([Record("k", 2, 2, metadata={"i": 2})], 2)
    assert ns.read(["k", "x"], tx=2) == ([Record("k", 2, 2)], 2)
    compacted = {"code": "TX_COMPACTED", "message": "tx 1 was compacted away: the oldest readable tx is 2", "tx": 1,
                 "horizon": 2}
    for read in (lambda: ns.get("k", tx=1, metadata=True), lambda: ns.read(["k", "x"], tx=1),
                 lambda: ns.read(["k"], tx=1, fields=["updated_at"]), lambda: ns.get("k", tx=1, fields=["updated_at"]),
                 lambda: ns.scan(tx=1), lambda: ns.diff(1, 3), lambda: ns.revert(1)):  # refused when called
        with pytest.raises(EngineError) as exc:
            read()
        assert exc.value.to_dict() == compacted
    assert store.latest_tx == 3


def test_read_one_at_reads_at_the_given_tx_without_metadata_by_default(store: Store) -> None:
    """Called directly, first of all reads (the namespace's prefix not yet known): ``at`` is read
    among the versions unless ``newest`` says it is the latest, metadata only when asked for."""
    ns = store.namespace("t")
    first = ns.put({"k": 1}, metadata={"m": 1})
    second = ns.put({"k": 2}, metadata={"m": 2})
    backend = store._backend

    def run(txn: Any) -> tuple[Record | None, Record | None]:
        return (read_one_at(backend, store, "t", "k", b"k", first, txn),
                read_one_at(backend, store, "t", "k", b"k", None, txn))

    assert backend.read(run) == (Record("k", 1, first), Record("k", 2, second))


def test_a_read_at_a_tx_evaluates_expiries_the_sweep_has_not_recorded_yet(store: Store, clock: Clock) -> None:
    """A write records at most ``SWEEP_PER_WRITE`` due expiries: a value past its expiry and not yet
    recorded as expired is still left out of a read at any tx committed after the expiry (evaluated at
    that tx's commit time), and read at a tx before it."""
    ns = store.namespace("t")
    keys = [f"k{i:03}" for i in range(SWEEP_PER_WRITE + 1)]
    clock.now = T0 + 1
    tx = ns.put(dict.fromkeys(keys, 1), ttl=10)
    clock.now = T0 + 20
    later = ns.put({"other": 1})  # after a tx recording the first SWEEP_PER_WRITE expiries
    assert later == tx + 2
    swept = ns.history(keys[-1])
    assert [v.tx for v in swept] == [tx]  # the last key's expiry is not recorded yet
    assert [ns.get(k, tx=later, metadata=True) for k in keys] == [None] * len(keys)
    assert [ns.get(k, tx=later) for k in keys] == [None] * len(keys)
    assert ns.read(keys, tx=later).records == []
    assert ns.get(keys[-1], tx=tx, metadata=True) == Record(keys[-1], 1, tx)
