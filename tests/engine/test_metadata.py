"""Per-key metadata and the created_at / updated_at / expire_time fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Item, Limits, Record, Store, errors
from tests.engine.clock import T0, Clock, clock, store  # noqa: F401 (fixtures)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


ALL = ["created_at", "updated_at", "expire_time"]


def test_metadata_is_versioned_with_the_value(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    tx1 = ns.put({"a": 1}, metadata={"v": 1})
    tx2 = ns.put([Item("a", 2, metadata={"v": 2})])
    tx3 = ns.put({"a": 3})
    assert ns.get("a", tx=tx1, metadata=True) == Record("a", 1, tx1, metadata={"v": 1})
    assert ns.get("a", tx=tx2, metadata=True).metadata == {"v": 2}  # type: ignore[union-attr]
    assert ns.get("a", metadata=True) == Record("a", 3, tx3)  # a plain put has none
    # Without metadata=True the record is the plain one (equal to positional construction).
    assert ns.get("a", tx=tx1) == Record("a", 1, tx1, False, False)
    assert ns.read(["a"], tx=tx2).records == [Record("a", 2, tx2)]
    assert [r.metadata for r in ns.scan(tx=tx2, metadata=True)] == [{"v": 2}]
    assert [v.metadata for v in ns.history("a")] == [None, {"v": 2}, {"v": 1}]


def test_metadata_kinds_and_limits(store: Store) -> None:
    ns = store.namespace("n")
    for i, meta in enumerate([{}, [], "s", 0, 1.5, True, {"nested": {"x": [1, None]}}]):
        ns.put({f"k{i}": None}, metadata=meta)
        assert ns.get(f"k{i}", metadata=True).metadata == meta  # type: ignore[union-attr]
    ns.put({"big": 1}, metadata="x" * 1022)  # 1,024 bytes as JSON
    with pytest.raises(errors.MetadataTooLarge) as info:
        ns.put({"big": 1}, metadata="x" * 1023)
    assert info.value.code == "METADATA_TOO_LARGE"
    for bad in (b"bytes", {1: "x"}, float("nan"), {"x": float("inf")}, (1, 2), {"s": {1, 2}}):
        with pytest.raises(errors.InvalidMetadata) as bad_info:
            ns.put({"a": 1}, metadata=bad)
        assert bad_info.value.code == "INVALID_METADATA"
    assert errors.BY_CODE["METADATA_TOO_LARGE"] is errors.MetadataTooLarge


def test_metadata_limit_is_configurable(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, limits=Limits(max_metadata_bytes=10)) as store, \
            pytest.raises(errors.MetadataTooLarge, match="metadata is 22 bytes as JSON; the limit is 10"):
        store.namespace("n").put({"a": 1}, metadata="x" * 20)


def test_created_updated_and_expire_time(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    tx1 = ns.put({"a": 1})                      # created at T0
    clock.now = T0 + 10
    ns.put({"a": 2}, metadata={"m": 1})         # updated; the extended record stores created_at
    clock.now = T0 + 20
    tx3 = ns.put({"a": 3}, ttl=100)
    rec = ns.get("a", fields=ALL)
    assert rec is not None
    assert (rec.created_at, rec.updated_at, rec.expire_time) == (at(T0), at(T0 + 20), at(T0 + 120))
    assert rec.metadata is None  # not asked for
    clock.now = T0 + 30
    ns.put({"a": 4})                            # plain: created_at derived from the previous versions
    rec = ns.get("a", fields=ALL)
    assert rec is not None and (rec.created_at, rec.updated_at, rec.expire_time) == (at(T0), at(T0 + 30), None)
    old = ns.read(["a"], tx=tx1, fields=["created_at", "updated_at"]).records[0]
    assert (old.created_at, old.updated_at, old.expire_time) == (at(T0), at(T0), None)
    assert ns.get("a", tx=tx3, fields=["expire_time"]).expire_time == at(T0 + 120)  # type: ignore[union-attr]


def test_created_at_restarts_after_a_delete_or_an_expiry(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 1})
    clock.now = T0 + 5
    ns.delete(["a"])
    clock.now = T0 + 10
    ns.put({"a": 2})                  # plain put after a delete
    ns.put({"b": 2}, ttl=5)          # b expires at T0 + 15
    clock.now = T0 + 20
    ns.put({"b": 3}, metadata={})    # after the expiry (not yet recorded? recorded by this write)
    clock.now = T0 + 30
    ns.put({"a": 3}, metadata={})
    a = ns.get("a", fields=["created_at"])
    b = ns.get("b", fields=["created_at"])
    assert a is not None and a.created_at == at(T0 + 10)
    assert b is not None and b.created_at == at(T0 + 20)
    # A plain put over an expired-but-unrecorded version starts a new life as well.
    ns.put({"c": 1}, ttl=1)
    clock.now = T0 + 40
    store.namespace("n").put({"c": 2})  # the sweep records c's expiry first, in its own tx
    c = ns.get("c", fields=["created_at"])
    assert c is not None and c.created_at == at(T0 + 40)


def test_created_at_walk_without_sweep(tmp_path: Path, clock: Clock) -> None:
    # Plain versions over an expiring one whose expiry was never recorded (the sweep is bypassed
    # by importing a history): the walk still sees the gap.
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("n")
        ns.put({"a": 1}, ttl=1)
        from engine import expiry
        limit = expiry.SWEEP_PER_WRITE
        expiry.SWEEP_PER_WRITE = 0
        try:
            clock.now = T0 + 10
            ns.put({"a": 2})
            clock.now = T0 + 20
            ns.put({"a": 3})
        finally:
            expiry.SWEEP_PER_WRITE = limit
        rec = ns.get("a", fields=["created_at"])
        assert rec is not None and rec.created_at == at(T0 + 10)


def test_scan_fields(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2}, metadata={"k": "v"})
    clock.now = T0 + 1
    ns.clear(["b"])
    recs = list(ns.scan(metadata=True, fields=ALL))
    assert [(r.key, r.metadata, r.created_at, r.updated_at, r.cleared) for r in recs] == [
        ("a", {"k": "v"}, at(T0), at(T0), False), ("b", None, at(T0), at(T0 + 1), True)]


def test_bad_fields(store: Store) -> None:
    ns = store.namespace("n")
    with pytest.raises(errors.InvalidParameters, match=r"unknown fields \['nope'\]: choose from \['created_at'"):
        ns.read(["a"], fields=["nope"])
    with pytest.raises(errors.InvalidParameters, match=r"unknown fields \['1'\]"):
        ns.get("a", fields=[1])  # type: ignore[list-item]
    with pytest.raises(errors.InvalidParameters, match=r"fields must be a list of \['created_at'"):
        ns.scan(fields=5)  # type: ignore[arg-type]
