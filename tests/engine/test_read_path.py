"""The point-read path: ``read([k])`` answers exactly as the batch path and ``get``, and the
latest tx and horizon a read transaction remembers (``Backend.read_txs``) follow every commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import Store, errors
from engine.records import ReadResult, Record

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
