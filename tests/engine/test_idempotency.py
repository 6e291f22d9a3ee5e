"""Idempotent writes of the engine: one record per key, in the write's own transaction; replays,
reuse with another request, refusals recorded, expiry and the bounded sweep, backup and restore."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine import Limits, Store, errors, idempotency
from engine.idempotency import Claim, Replay
from tests.conftest import fingerprint
from tests.engine.clock import Clock, clock, store  # noqa: F401 (fixtures)


def claim(key: str, request: bytes = b"same", scope: str = "") -> Claim:
    return Claim(key, hashlib.sha256(request).digest(), lambda result, error: repr(
        (result, None if error is None else error.code)).encode(), scope=scope)


def records(store: Store) -> int:
    backend = store._backend
    return backend.read(lambda txn: idempotency.count(txn, backend.dbs["idempotency"]))


def test_a_retry_replays_the_first_answer_and_writes_nothing(store: Store) -> None:
    ns = store.namespace("n")
    assert ns.put({"a": 1}, idempotency=claim("k1")) == 1
    before = fingerprint(store)
    with pytest.raises(Replay) as info:
        ns.put({"a": 1}, idempotency=claim("k1"))
    assert info.value.answer == b"(1, None)"
    with pytest.raises(Replay):
        idempotency.check_first(store, claim("k1"))
    assert fingerprint(store) == before and store.latest_tx == 1


def test_the_same_key_for_another_request_is_refused(store: Store) -> None:
    ns = store.namespace("n")
    ns.delete(["a"], idempotency=claim("k1", b"first"))  # a no-op delete still records its answer
    before = fingerprint(store)
    with pytest.raises(errors.IdempotencyKeyReused) as info:
        ns.put({"a": 1}, idempotency=claim("k1", b"second"))
    assert info.value.code == "IDEMPOTENCY_KEY_REUSED" and info.value.details == {"idempotency_key": "k1"}
    assert fingerprint(store) == before


def test_scopes_keep_callers_apart(store: Store) -> None:
    ns = store.namespace("n")
    assert ns.put({"a": 1}, idempotency=claim("k", scope="alice")) == 1
    assert ns.put({"a": 2}, idempotency=claim("k", b"other", scope="bob")) == 2
    assert records(store) == 2


def test_a_failed_condition_is_recorded_and_raised_again_on_retry(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    with pytest.raises(errors.Conflict):
        ns.put({"a": 2}, expect={"a": 0}, idempotency=claim("k"))
    ns.delete(["a"])  # the condition would hold now, but the retry gets the first answer
    with pytest.raises(Replay) as info:  # the refusal was recorded with the first try
        ns.put({"a": 2}, expect={"a": 0}, idempotency=claim("k"))
    assert info.value.answer == b"(None, 'CONFLICT')"
    assert store.latest_tx == 2


def test_a_refusal_raised_during_validation_is_not_recorded(store: Store) -> None:
    ns = store.namespace("n")
    with pytest.raises(errors.InvalidKey):
        ns.put({"": 1}, idempotency=claim("k"))
    assert records(store) == 0
    assert ns.put({"a": 1}, idempotency=claim("k")) == 1  # the fixed request runs under the same key


def test_namespace_create_and_drop_record_answers_and_refusals(store: Store) -> None:
    create = Claim("c", b"\0" * 32, lambda r, e: (e.code if e else r.name).encode(),
                   recorded=(errors.NamespaceExists,))
    assert store.create_namespace("x", idempotency=create).name == "x"
    with pytest.raises(Replay) as info:
        store.create_namespace("x", idempotency=create)
    assert info.value.answer == b"x"
    store.namespace("y").put({"a": 1})
    drop = Claim("d", b"\1" * 32, lambda r, e: repr(r).encode())
    assert store.drop_namespace("y", idempotency=drop) == 2
    with pytest.raises(Replay):
        store.drop_namespace("y", idempotency=drop)
    assert store.latest_tx == 2


def test_a_transaction_is_idempotent_too(store: Store) -> None:
    for attempt in range(2):
        try:
            with store.transaction(idempotency=claim("t")) as t:
                t.put("n", "a", 1)
                t.put("m", "b", 2)
            assert attempt == 0 and t.tx == 1
        except Replay as replay:
            assert attempt == 1 and replay.answer == b"(1, None)"
    assert store.latest_tx == 1


def test_records_expire_after_the_ttl_and_are_swept_a_few_at_a_time(tmp_path: Path, clock: Clock) -> None:
    with Store.open(tmp_path / "s", sync=False, clock=clock, idempotency_ttl=timedelta(hours=1)) as store:
        ns = store.namespace("n")
        for i in range(40):
            ns.put({"a": i}, idempotency=claim(f"k{i}"))
        clock.now += 3600 - 1e-6
        with pytest.raises(Replay):
            ns.put({"a": 0}, idempotency=claim("k0"))
        clock.now += 1e-6  # the ttl's end: expired; the retry writes again and sweeps 16 records
        assert ns.put({"a": 0}, idempotency=claim("k0")) == 41
        assert records(store) == 40 - idempotency.SWEEP_PER_WRITE + 1  # the 16 oldest went, k0 came back
        ns.put({"a": 1}, idempotency=claim("fresh"))
        assert records(store) == 40 - 2 * idempotency.SWEEP_PER_WRITE + 2


def test_ttl_is_checked(tmp_path: Path) -> None:
    for bad in (0, -1, "1h", timedelta(days=4000), True):
        with pytest.raises(errors.InvalidParameters):
            Store.open(tmp_path / "s", idempotency_ttl=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("key", ["", "a b", "é", "x" * 256, "tab\t", 5])
def test_keys_are_1_to_255_visible_ascii_characters(key: Any) -> None:
    with pytest.raises(errors.InvalidParameters):
        Claim(key, b"\0" * 32, lambda r, e: b"")


def test_threads_racing_one_key_commit_once(store: Store) -> None:
    ns = store.namespace("n")
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(ns.put({"a": 1}, idempotency=claim("race")))
        except Replay as replay:
            outcomes.append(replay.answer)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(repr, outcomes)) == sorted([repr(1)] + [repr(b"(1, None)")] * 7)
    assert store.latest_tx == 1


def test_backup_and_restore_keep_the_records(store: Store, tmp_path: Path) -> None:
    store.namespace("n").put({"a": 1}, idempotency=claim("k"))
    store.backup(tmp_path / "b")
    Store.restore(tmp_path / "b", tmp_path / "r")
    with Store.open(tmp_path / "r", sync=False, clock=store._clock) as restored:
        with pytest.raises(Replay):
            restored.namespace("n").put({"a": 1}, idempotency=claim("k"))
        assert restored.latest_tx == 1


def test_a_publish_is_idempotent(store: Store) -> None:
    stream = store.stream("s")
    assert stream.publish([{"n": 1}, b"\x00"], idempotency=claim("p")) == 1
    before = fingerprint(store)
    with pytest.raises(Replay) as info:
        stream.publish([{"n": 1}, b"\x00"], idempotency=claim("p"))
    assert info.value.answer == b"(1, None)" and fingerprint(store) == before
    with pytest.raises(errors.IdempotencyKeyReused):
        stream.publish([{"n": 2}], idempotency=claim("p", b"other"))
    assert [e.data for e in stream.read(0).events] == [{"n": 1}, b"\x00"]


def test_stream_create_and_drop_record_answers_and_refusals(store: Store) -> None:
    create = Claim("c", b"\0" * 32, lambda r, e: (e.code if e else r.name).encode(),
                   recorded=(errors.NamespaceExists,))
    assert store.create_stream("x", idempotency=create).name == "x"
    with pytest.raises(Replay) as info:
        store.create_stream("x", idempotency=create)
    assert info.value.answer == b"x"
    exists = Claim("e", b"\1" * 32, create.answer, recorded=(errors.NamespaceExists,))
    with pytest.raises(errors.NamespaceExists):
        store.create_stream("x", idempotency=exists)
    with pytest.raises(Replay) as info:
        store.create_stream("x", idempotency=exists)
    assert info.value.answer == b"NAMESPACE_EXISTS"
    store.stream("y").publish([1])
    drop = Claim("d", b"\2" * 32, lambda r, e: repr(r if e is None else e.code).encode(),
                 recorded=(errors.NamespaceNotFound,))
    assert store.stream("y").drop(idempotency=drop) == 2
    with pytest.raises(Replay) as info:
        store.drop_stream("y", idempotency=drop)
    assert info.value.answer == b"2" and store.latest_tx == 2 and store.stream_info("y") is None
    gone = Claim("g", b"\3" * 32, drop.answer, recorded=(errors.NamespaceNotFound,))
    with pytest.raises(errors.NamespaceNotFound):
        store.drop_stream("y", idempotency=gone)
    store.stream("y").publish([2])  # the stream exists again, but the retry gets the first answer
    with pytest.raises(Replay) as info:
        store.drop_stream("y", idempotency=gone)
    assert info.value.answer == b"'NAMESPACE_NOT_FOUND'" and store.stream_info("y") is not None


def test_a_revert_is_idempotent(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    ns.put({"a": 2, "b": 3})
    answer = Claim("r", b"\0" * 32, lambda r, e: repr((r.tx, r.count)).encode())
    assert ns.revert(1, idempotency=answer).tx == 3
    ns.put({"a": 5})
    before = fingerprint(store)
    with pytest.raises(Replay) as info:  # a second revert to tx 1 would write; the retry writes nothing
        ns.revert(1, idempotency=answer)
    assert info.value.answer == b"(3, 2)" and fingerprint(store) == before


def test_a_dry_run_takes_no_claim(store: Store) -> None:
    store.namespace("n").put({"a": 1})
    with pytest.raises(errors.InvalidParameters) as info:
        store.namespace("n").revert(0, dry_run=True, idempotency=claim("d"))
    assert info.value.details == {"parameter": "idempotency"} and records(store) == 0


def test_a_revert_refused_in_the_write_is_recorded_and_writes_nothing_else(tmp_path: Path, clock: Clock) -> None:
    with Store.open(tmp_path / "s", sync=False, clock=clock, limits=Limits(max_batch=2)) as small:
        ns = small.namespace("n")
        ns.put({"a": 1, "b": 2})
        ns.put({"c": 3})
        ns.put({"gone": 4}, ttl=1)
        clock.now += 2  # an expiry is due: a revert that writes would first record it in a tx
        too_big = Claim("big", b"\0" * 32, lambda r, e: (e.code if e else "ok").encode(),
                        recorded=(errors.BatchTooLarge, errors.FutureTx))
        before = small.latest_tx
        with pytest.raises(errors.BatchTooLarge):
            ns.revert(0, idempotency=too_big)  # a, b and c (gone has expired): 3 keys > 2
        assert small.latest_tx == before and records(small) == 1  # not even the expiry sweep's tx
        with pytest.raises(Replay) as info:
            ns.revert(0, idempotency=too_big)
        assert info.value.answer == b"BATCH_TOO_LARGE"
        future = Claim("future", b"\1" * 32, too_big.answer, recorded=(errors.FutureTx,))
        with pytest.raises(errors.FutureTx):
            ns.revert(9, idempotency=future)
        assert small.latest_tx == before and records(small) == 2
