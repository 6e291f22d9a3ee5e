"""Exact behaviours of engine.expiry that its surviving mutants showed no test pinned: the full data of
each option and metadata refusal, the index's entries and due check, the sweep going on past stale
entries and dropped namespaces, and when a key's life begins at the exact instant an older version
expires. Time comes from the settable clock."""

from __future__ import annotations

import pytest

from engine import Store, errors, expiry
from engine.records import Limits
from engine.schema import time_of
from tests.engine.clock import T0, Clock, clock, store  # noqa: F401 (fixtures)

S = 1_000_000  # microseconds per second
NAMES = "['created_at', 'expire_time', 'updated_at']"


@pytest.mark.parametrize(("metadata", "error"), [
    (b"x", {"code": "INVALID_METADATA", "message": "metadata must be JSON, not bytes"}),
    ({1, 2}, {"code": "INVALID_METADATA", "message": "metadata is not JSON: Type is not msgpack serializable: set"}),
    ("x" * 2000, {"code": "METADATA_TOO_LARGE", "message": "metadata is 2002 bytes as JSON; the limit is 1024",
                  "size": 2002, "limit": 1024}),
])
def test_metadata_refusals_in_full(metadata: object, error: dict[str, object]) -> None:
    with pytest.raises(errors.EngineError) as raised:
        expiry.check_metadata(metadata, 1024)
    assert raised.value.to_dict() == error


@pytest.mark.parametrize(("fields", "message"), [
    (5, f"fields must be a list of {NAMES}"),
    (["nope", "x"], f"unknown fields ['nope', 'x']: choose from {NAMES}"),
    ("nope", f"unknown fields ['nope']: choose from {NAMES}"),
])
def test_fields_refusals_in_full(fields: object, message: str) -> None:
    with pytest.raises(errors.InvalidParameters) as raised:
        expiry.check_fields(fields)
    assert raised.value.to_dict() == {"code": "INVALID_PARAMETERS", "message": message, "parameter": "fields"}


def test_one_field_name_as_a_string_is_that_field() -> None:
    assert expiry.check_fields("created_at") == frozenset({"created_at"})


def test_ttl_and_expiration_refusals_name_the_minimum() -> None:
    limits = Limits(min_ttl=2.0)
    with pytest.raises(errors.InvalidExpirationTtl) as ttl:
        expiry.check_opts(1, None, None, limits, 0)
    assert ttl.value.details == {"min_ttl": 2.0}
    with pytest.raises(errors.InvalidExpiration) as expiration:
        expiry.check_opts(None, 1, None, limits, 0)
    assert expiration.value.details == {"min_ttl": 2.0}


def test_the_index_entry_and_the_due_check(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"k": 1}, ttl=10)
    dbs = store._backend.dbs
    entries = store._backend.read(lambda txn: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=dbs["expiry"])])
    assert len(entries) == 1 and entries[0][1] == b""
    due_at = round(T0) * S + 10 * S
    assert int.from_bytes(entries[0][0][:8], "big") == due_at
    assert store._backend.read(lambda txn: expiry.due(txn, dbs, due_at - 1)) is False
    assert store._backend.read(lambda txn: expiry.due(txn, dbs, due_at)) is True


def test_nothing_is_due_in_an_empty_index(store: Store) -> None:
    dbs = store._backend.dbs
    assert store._backend.read(lambda txn: expiry.due(txn, dbs, 2**63)) is False


def test_time_of_an_unknown_tx_is_0(store: Store) -> None:
    store.namespace("n").put({"k": 1})
    dbs = store._backend.dbs
    assert store._backend.read(lambda txn: expiry.tx_time(txn, dbs, 99)) == 0
    assert store._backend.read(lambda txn: expiry.tx_time(txn, dbs, 1)) == round(T0 * S)


def test_a_latest_read_evaluates_expiry_no_earlier_than_the_latest_tx(store: Store, clock: Clock) -> None:
    dbs = store._backend.dbs
    store.namespace("n").put({"k": 1})
    last = round(T0 * S)
    assert store._backend.read(lambda txn: expiry.latest_eval_us(txn, dbs["meta"], last - 5)) == last
    assert store._backend.read(lambda txn: expiry.latest_eval_us(txn, dbs["meta"], last + 5)) == last + 5


def test_the_sweep_goes_on_past_a_stale_entry(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1}, ttl=1)
    ns.put({"a": 2})  # a's entry is now stale
    ns.put({"b": 1}, ttl=2)
    clock.now = T0 + 3
    assert store.expire() == 1
    assert ns.get("b") is None
    assert store._backend.read(lambda txn: txn.stat(store._backend.dbs["expiry"])["entries"]) == 0


def test_the_sweep_goes_on_past_a_dropped_namespace(store: Store, clock: Clock) -> None:
    store.namespace("a").put({"x": 1}, ttl=1)
    store.namespace("b").put({"y": 1}, ttl=2)
    store.drop_namespace("a")
    clock.now = T0 + 3
    assert store.expire() == 1
    assert store.namespace("b").get("y") is None


def test_a_life_begins_anew_at_the_exact_instant_the_older_version_expires(
        store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the per-write sweep off, the expiry is not recorded: the new version's creation time must
    still see that the older one expired at that very instant (written after it, or read by walking)."""
    monkeypatch.setattr(expiry, "SWEEP_PER_WRITE", 0)
    ns = store.namespace("n")
    ns.put({"rich": 1, "plain": 1}, ttl=1)
    clock.now = T0 + 1
    ns.put({"rich": 2}, metadata={"m": 1})
    ns.put({"plain": 2})
    for key in ("rich", "plain"):
        rec = ns.get(key, fields=["created_at"])
        assert rec is not None and rec.created_at == time_of(round(T0 * S) + S), key


def test_a_life_continues_from_a_plain_put_and_ends_at_a_delete(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"k": 1, "d": 1})
    clock.now = T0 + 5
    ns.delete(["d"])
    clock.now = T0 + 7
    ns.put({"k": 2, "d": 2}, metadata={"m": 1})
    k, d = ns.get("k", fields=["created_at"]), ns.get("d", fields=["created_at"])
    assert k is not None and k.created_at == time_of(round(T0 * S))
    assert d is not None and d.created_at == time_of(round(T0 * S) + 7 * S)


def test_metadata_is_left_out_unless_asked_for(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"k": 1}, metadata={"m": 1})
    plain = ns.get("k", fields=["created_at"])
    assert plain is not None and plain.metadata is None and plain.created_at == time_of(round(T0 * S))
    asked = ns.get("k", metadata=True)
    assert asked is not None and asked.metadata == {"m": 1}


def test_a_latest_read_with_the_clock_behind_sees_expiry_at_the_latest_tx(
        store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expiry, "SWEEP_PER_WRITE", 0)  # the expiry stays unrecorded
    ns = store.namespace("n")
    ns.put({"k": 1}, ttl=1)
    clock.now = T0 + 2
    ns.put({"other": 1})
    clock.now = T0 + 0.5  # behind the latest tx's time, after which k has expired
    assert ns.get("k") is None
    assert ns.get("k", fields=["created_at"]) is None


def test_the_sweep_goes_on_past_an_entry_of_a_dropped_namespace_with_the_highest_id(
        store: Store, clock: Clock) -> None:
    store.namespace("a").put({"x": 1}, ttl=2)
    store.namespace("b").put({"y": 1}, ttl=1)
    store.drop_namespace("b")
    clock.now = T0 + 3
    assert store.expire() == 1
    assert store.namespace("a").get("x") is None


def test_a_diff_of_expiring_versions_leaves_metadata_out(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"k": 1}, ttl=100, metadata={"m": 1})
    ns.put({"k": 2}, ttl=100, metadata={"m": 2})
    (change,) = ns.diff(1, 2)
    assert change.kind == "changed"
    assert change.before is not None and change.before.value == 1 and change.before.metadata is None
    assert change.after is not None and change.after.value == 2 and change.after.metadata is None


def test_a_life_begun_below_the_horizon_keeps_its_creation_time(store: Store, clock: Clock) -> None:
    """Once a compaction removed the version a life began with, the creation time an extended
    version carries is all that is left of it."""
    ns = store.namespace("n")
    ns.put({"k": 1})  # tx 1 at T0
    clock.now = T0 + 1
    ns.put({"k": 2}, metadata={"m": 1})  # tx 2: carries created T0
    clock.now = T0 + 2
    ns.put({"k": 3})  # tx 3, plain
    store.compact(2)
    for tx in (2, 3, None):
        rec = ns.get("k", tx=tx, fields=["created_at"])
        assert rec is not None and rec.created_at == time_of(round(T0 * S)), tx
    clock.now = T0 + 3
    ns.put({"k": 4}, metadata={"m": 2})  # tx 4: its creation time read from tx 3 and tx 2
    rec = ns.get("k", fields=["created_at"])
    assert rec is not None and rec.created_at == time_of(round(T0 * S))


def test_the_sweep_skips_the_entry_of_a_key_whose_versions_were_compacted_away(store: Store, clock: Clock) -> None:
    """x's entry outlives x (deleted, then compacted): the sweep must not take the next key's version,
    due at the same instant, for x's."""
    ns = store.namespace("n")
    ns.put({"x": 1, "y": 1}, ttl=10)
    ns.delete(["x"])
    ns.put({"other": 1})
    store.compact(store.latest_tx)
    clock.now = T0 + 10
    latest = store.latest_tx
    assert store.expire() == 1
    info = store.tx_info(latest + 1)
    assert info is not None and info.note == {"expired": True}
    assert ns.get("y") is None and store.latest_tx == latest + 1


def test_the_sweep_goes_on_past_the_entry_of_the_last_key_compacted_away(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"z": 1}, ttl=5)
    ns.put({"a": 1}, ttl=10)
    ns.delete(["z"])
    ns.put({"other": 1})
    store.compact(store.latest_tx)
    clock.now = T0 + 10
    assert store.expire() == 1
    assert ns.get("a") is None
