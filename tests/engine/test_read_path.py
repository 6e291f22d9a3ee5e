"""The point-read path: ``read([k])`` answers exactly as the batch path and ``get``, and the
latest tx and horizon a read transaction remembers (``Backend.read_txs``) follow every commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import Store, errors
from engine.encoding import SHORT_MAX
from engine.records import Limits, ReadResult, Record
from engine.snapshot import _read_newest_plain, read_batch, read_keys

ROOT = Path(__file__).resolve().parents[2]


def _filled(store: Store) -> list[int]:
    ns = store.namespace("n")
    return [ns.put({"a": 1, "b": b"\x00bin", "x\x00y": "nul"}), ns.clear(["a"]), ns.delete(["b"]),
            ns.put({"a": {"v": 2}}, metadata={"m": 1}), ns.put({"L" * 505: [1]})]


@pytest.mark.parametrize("key", ["a", "b", "x\x00y", "L" * 505, "absent", "é"])
def test_read_of_one_key_is_the_batch_read_and_get_at_every_tx(store: Store, key: str) -> None:
    txs = _filled(store)
    ns = store.namespace("n")
    for tx in [None, *txs]:
        for metadata in (False, True):
            one = ns.read([key], tx=tx, metadata=metadata)
            batch = ns.read([key, "zz-absent"], tx=tx, metadata=metadata)
            assert type(one) is ReadResult and one == batch
            got = ns.get(key, tx=tx, metadata=metadata)
            assert one.records == ([] if got is None else [got])
            assert one.tx == (txs[-1] if tx is None else tx)


def test_single_key_reads_give_exact_records(store: Store) -> None:
    txs = _filled(store)
    ns = store.namespace("n")
    assert ns.read(["a"]) == ReadResult([Record("a", {"v": 2}, txs[3])], txs[4])
    assert ns.read(["a"], metadata=True).records == [Record("a", {"v": 2}, txs[3], metadata={"m": 1})]
    assert ns.read(["a"], tx=txs[1]) == ReadResult([Record("a", None, txs[1], cleared=True)], txs[1])
    assert ns.read(["b"], tx=txs[0]).records == [Record("b", b"\x00bin", txs[0], binary=True)]
    assert ns.read(["b"]) == ReadResult([], txs[4])
    assert store.namespace("never").read(["a"]) == ReadResult([], txs[4])
    assert ns.get("a", tx=0) is None and ns.read(["a"], tx=0) == ReadResult([], 0)


@pytest.mark.parametrize("call", ["get", "read"])
def test_single_key_errors_are_the_same_on_every_path(store: Store, call: str) -> None:
    txs = _filled(store)
    ns = store.namespace("n")

    def one(key: object, **kw: object) -> object:
        return ns.get(key, **kw) if call == "get" else ns.read([key], **kw)  # type: ignore[arg-type,list-item]

    with pytest.raises(errors.FutureTx) as future:
        one("a", tx=txs[-1] + 1)
    assert future.value.code == "FUTURE_TX"
    for bad in (-1, "1", 1.0, True):
        with pytest.raises(errors.InvalidParameters):
            one("a", tx=bad)
    with pytest.raises(errors.InvalidKey):
        one("")
    with pytest.raises(errors.KeyTooLong):
        one("k" * 513)
    with pytest.raises(errors.InvalidKey):
        one("\ud800")


def test_latest_and_horizon_follow_commits_and_compaction(store: Store) -> None:
    ns = store.namespace("n")
    first = ns.put({"a": 1})
    assert ns.read(["a"]).tx == first and ns.read(["a", "b"]).tx == first  # remembered for this snapshot
    second = ns.put({"a": 2})
    assert ns.read(["a"]) == ReadResult([Record("a", 2, second)], second)
    assert ns.read(["a"], tx=first).records == [Record("a", 1, first)]
    third = ns.put({"b": 3})
    store.compact(before_tx=third)  # the horizon moves to the third tx
    with pytest.raises(errors.TxCompacted) as gone:
        ns.read(["a"], tx=first)
    assert gone.value.details == {"tx": first, "horizon": third}
    with pytest.raises(errors.TxCompacted):
        ns.get("a", tx=second)
    assert ns.read(["a", "b"], tx=third).records == [Record("a", 2, second), Record("b", 3, third)]


def test_a_commit_by_another_process_is_seen_by_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path, sync=False) as store:
        ns = store.namespace("n")
        first = ns.put({"a": 1})
        assert ns.read(["a"]).tx == first
        code = ("import sys; from engine import Store; s = Store.open(sys.argv[1], sync=False); "
                "print(s.namespace('n').put({'a': 2})); s.close()")
        out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        second = int(out.stdout)
        assert second == first + 1
        assert ns.read(["a"]) == ReadResult([Record("a", 2, second)], second)
        assert ns.read(["a", "b"]).tx == second
        assert ns.get("a", tx=first) == Record("a", 1, first)


def _plain_batch(store: Store) -> list[int]:
    ns = store.namespace("p")
    return [ns.put({"a": "x", "b": b"\x01", "c": {"d": [1, 2]}, "é": 3}), ns.delete(["c"]), ns.put({"a": "y"})]


def test_plain_batch_read_gives_exact_records_in_request_order(store: Store) -> None:
    txs = _plain_batch(store)
    ns = store.namespace("p")
    assert ns.read(["é", "absent", "b", "a", "c", "a", "b"]) == ReadResult(
        [Record("é", 3, txs[0]), Record("b", b"\x01", txs[0], binary=True), Record("a", "y", txs[2])], txs[2])
    assert ns.read(["absent", "c"]) == ReadResult([], txs[2])
    assert ns.read(["a", "b"]) == ns.read(["a", "b"], tx=txs[2]) == ns.read(["a", "b"], tx=txs[2], metadata=True)
    assert store.namespace("never").read(["a", "b"]) == ReadResult([], txs[2])


@pytest.mark.parametrize("extra", [{"t": "ttl"}, {"m": "meta"}, {"cl": "clear"}])
def test_plain_batch_with_a_record_that_is_not_a_plain_put_reads_it_the_general_way(store: Store, extra: dict) -> None:
    txs = _plain_batch(store)
    ns = store.namespace("p")
    key, kind = next(iter(extra.items()))
    if kind == "ttl":
        tx = ns.put({key: 1}, ttl=3600)
        want = Record(key, 1, tx)
    elif kind == "meta":
        tx = ns.put({key: 1}, metadata={"z": 1})
        want = Record(key, 1, tx)
    else:
        ns.put({key: 1})
        tx = ns.clear([key])
        want = Record(key, None, tx, cleared=True)
    assert ns.read(["a", key]) == ReadResult([Record("a", "y", txs[2]), want], tx)


@pytest.mark.parametrize(("keys", "error"), [
    (["a", ""], errors.InvalidKey), (["a", 1], errors.InvalidKey), (["a", "\ud800"], errors.InvalidKey),
    (["a", "L" * 513], errors.KeyTooLong)])
def test_plain_batch_bad_keys_raise_as_the_general_path_does(store: Store, keys: list, error: type) -> None:
    _plain_batch(store)
    with pytest.raises(error):
        store.namespace("p").read(keys)


def test_plain_batch_of_nul_and_long_keys_reads_the_general_way(store: Store) -> None:
    ns = store.namespace("p")
    tx = ns.put({"x\x00y": 1, "L" * 505: 2, "a": 3})
    assert ns.read(["a", "x\x00y", "L" * 505]).records == [Record("a", 3, tx), Record("x\x00y", 1, tx),
                                                           Record("L" * 505, 2, tx)]


def test_get_at_a_past_tx_gives_exact_records_and_errors(store: Store) -> None:
    txs = _plain_batch(store)
    ns = store.namespace("p")
    assert ns.get("a", tx=txs[0]) == Record("a", "x", txs[0])
    assert ns.get("a", tx=txs[1]) == Record("a", "x", txs[0])
    assert ns.get("a", tx=txs[2]) == Record("a", "y", txs[2])
    assert ns.get("b", tx=txs[2]) == Record("b", b"\x01", txs[0], binary=True)
    assert ns.get("c", tx=txs[0]) == Record("c", {"d": [1, 2]}, txs[0])
    assert ns.get("c", tx=txs[1]) is None and ns.get("absent", tx=txs[2]) is None and ns.get("a", tx=0) is None
    assert ns.get("é", tx=txs[2]) == Record("é", 3, txs[0])
    tx = ns.put({"t": 1}, ttl=3600)
    assert ns.get("t", tx=tx) == Record("t", 1, tx)  # a rich record: the general path
    with pytest.raises(errors.FutureTx) as future:
        ns.get("a", tx=tx + 1)
    assert (future.value.code, future.value.details) == ("FUTURE_TX", {"tx": tx + 1, "latest_tx": tx})
    with pytest.raises(errors.InvalidKey):
        ns.get("", tx=tx)


def _batch(store: Store, keys: list, name: str = "p") -> ReadResult | None:
    return read_batch(store._backend, store, name, keys)


def test_read_batch_answers_a_plain_batch_of_short_keys_exactly(store: Store) -> None:
    """``read_batch`` (the plain batch's one-get-per-key path) called directly: its exact answer for
    two keys or more, duplicates once in request order, absent and deleted keys left out, a key of
    exactly the short-key limit and one with a 01 byte (only 00 is escaped) included."""
    txs = _plain_batch(store)
    ns = store.namespace("p")
    tx = ns.put({"\x01": 7, "s" * SHORT_MAX: [1]})
    ns.get("a")  # a read learns the namespace's prefix
    assert _batch(store, ["a", "b"]) == ReadResult(
        [Record("a", "y", txs[2]), Record("b", b"\x01", txs[0], binary=True)], tx)
    assert _batch(store, ["b", "a", "b", "a"]) == ReadResult([Record("b", b"\x01", txs[0], binary=True),
                                                              Record("a", "y", txs[2])], tx)
    assert _batch(store, ["\x01", "s" * SHORT_MAX, "é"]) == ReadResult(
        [Record("\x01", 7, tx), Record("s" * SHORT_MAX, [1], tx), Record("é", 3, txs[0])], tx)
    assert _batch(store, ["absent", "a", "c"]) == ReadResult([Record("a", "y", txs[2])], tx)
    assert _batch(store, ["absent", "c"]) == ReadResult([], tx)


@pytest.mark.parametrize("keys", [["a"], [], ["a", ""], ["a", 1], ["a", "\ud800"], ["a", "x\x00y"],
                                  ["a", "s" * (SHORT_MAX + 1)], ["a", "t"]])
def test_read_batch_leaves_to_the_general_path_what_it_does_not_answer(store: Store, keys: list) -> None:
    """None (the caller then reads the general way, which also raises for bad keys) for fewer than two
    keys, an empty, non-str, unencodable, NUL-holding or long key, or a key whose entry is not a plain put."""
    _plain_batch(store)
    store.namespace("p").put({"t": 1}, ttl=3600)
    store.namespace("p").get("a")  # a read learns the namespace's prefix
    assert _batch(store, keys) is None
    assert _batch(store, ["a", "b"], name="never") is None  # no known prefix


def test_read_batch_stops_at_the_store_limits(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, limits=Limits(max_read_keys=3, max_key_bytes=4)) as small:
        tx = small.namespace("p").put({"a": 1, "bb": 2, "dddd": 4})
        small.namespace("p").get("a")  # a read learns the namespace's prefix
        assert _batch(small, ["a", "bb", "dddd"], "p") == ReadResult(
            [Record("a", 1, tx), Record("bb", 2, tx), Record("dddd", 4, tx)], tx)
        assert _batch(small, ["a", "bb", "dddd", "c"], "p") is None  # more keys than a read takes
        assert _batch(small, ["a", "eeeee"], "p") is None  # a key longer than the store takes


def test_read_newest_plain_gives_plain_records_or_none(store: Store) -> None:
    """The latest-version index read of short keys: the records when every entry found is a plain
    put (absent keys left out), None when one is not."""
    ns = store.namespace("p")
    first = ns.put({"a": 1, "b": b"\x02"})
    second = ns.put({"c": "z"})
    ns.put({"t": 1}, ttl=3600)
    backend = store._backend

    def run(txn: Any) -> tuple[list[Record] | None, list[Record] | None]:
        prefix = store._ns_prefix(txn, "p")
        return (_read_newest_plain(txn, backend.latest, prefix, ["c", "absent", "b"], [b"c", b"absent", b"b"]),
                _read_newest_plain(txn, backend.latest, prefix, ["a", "t"], [b"a", b"t"]))

    plain, rich = backend.read(run)
    assert plain == [Record("c", "z", second), Record("b", b"\x02", first, binary=True)]
    assert rich is None


@pytest.mark.parametrize(("raws", "plain"), [([b"a"], True), ([b"a"], False), ([b"a", b"b", b"c"], True)])
def test_read_keys_from_the_latest_index_refuses_keys_and_encodings_of_different_lengths(
        store: Store, raws: list[bytes], plain: bool) -> None:
    store.namespace("p").put({"a": 1, "b": 2})
    backend = store._backend

    def run(txn: Any) -> None:
        prefix = store._ns_prefix(txn, "p")
        with pytest.raises(ValueError, match="zip"):
            read_keys(txn, backend.versions, prefix, ["a", "b"], raws, 1, lambda: None, plain,  # type: ignore[arg-type,return-value]
                      backend.latest)

    backend.read(run)


def test_read_keys_of_no_keys_is_empty_on_both_paths(store: Store) -> None:
    store.namespace("p").put({"a": 1})
    backend = store._backend

    def run(txn: Any) -> tuple[list[Record], list[Record]]:
        prefix = store._ns_prefix(txn, "p")
        return (read_keys(txn, backend.versions, prefix, [], [], 1, lambda: None, True, backend.latest),  # type: ignore[arg-type,return-value]
                read_keys(txn, backend.versions, prefix, [], [], 1, lambda: None, True))  # type: ignore[arg-type,return-value]

    assert backend.read(run) == ([], [])
