"""The lean read paths answer exactly as the general path: ``read(keys, tx=T)`` of a plain batch
(``read_batch_at``: one seek per key through C-level maps, one decode), ``read([k])`` and ``get(k)``
at the latest tx and at a past tx, at every tx of histories that mix plain puts with clears,
deletes, expiring values and metadata, and with the errors the general path raises."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Store, errors
from engine.codec import pack_value
from engine.encoding import SHORT_MAX, TX_MAX, inv_tx
from engine.latest import entry as latest_entry
from engine.records import Limits, ReadResult, Record
from engine.snapshot import _plain_keyparts, _plain_keys, read_batch_at

UNDER_LOAD = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=25)


def _at(store: Store, keys: list, tx: object, name: str = "p") -> ReadResult | None:
    return read_batch_at(store._backend, store, name, keys, tx)


def _general(store: Store, keys: list, tx: int | None, name: str = "p") -> ReadResult:
    """The general path's answer (no lean path): what every lean path must equal."""
    return store.namespace(name)._read(keys, tx, None, False, None)


def _history(store: Store) -> list[int]:
    ns = store.namespace("p")
    return [ns.put({"a": "x", "b": b"\x01", "c": {"d": [1, 2]}, "\x01": 7}), ns.delete(["c"]), ns.put({"a": "y"}),
            ns.put({"s" * SHORT_MAX: [1], "é": 3.5}), ns.put({"c": None})]


def test_read_batch_at_answers_a_plain_batch_exactly_at_every_tx(store: Store) -> None:
    """Exact records at each tx: request order, duplicates once, keys absent at the tx left out,
    a key of exactly the short-key limit and one with a 01 byte (only 00 is escaped) included."""
    txs = _history(store)
    keys = ["é", "absent", "b", "a", "\x01", "a", "s" * SHORT_MAX]
    assert _at(store, keys, txs[0]) == ReadResult(
        [Record("b", b"\x01", txs[0], binary=True), Record("a", "x", txs[0]), Record("\x01", 7, txs[0])], txs[0])
    assert _at(store, keys, txs[2]) == ReadResult(
        [Record("b", b"\x01", txs[0], binary=True), Record("a", "y", txs[2]), Record("\x01", 7, txs[0])], txs[2])
    assert _at(store, keys, txs[3]) == ReadResult(
        [Record("é", 3.5, txs[3]), Record("b", b"\x01", txs[0], binary=True), Record("a", "y", txs[2]),
         Record("\x01", 7, txs[0]), Record("s" * SHORT_MAX, [1], txs[3])], txs[3])
    assert _at(store, ["c", "a"], txs[4]) == ReadResult([Record("c", None, txs[4]), Record("a", "y", txs[2])], txs[4])
    assert _at(store, ["absent", "é"], txs[0]) == ReadResult([], txs[0])
    assert _at(store, ["a", "b"], 0) == ReadResult([], 0)
    for tx in range(txs[-1] + 1):
        for ks in (keys, ["a", "b"], ["absent", "zz"], ["c", "a"]):
            got = _at(store, ks, tx)
            assert got is None or got == _general(store, ks, tx), (ks, tx)
    assert store.namespace("p").read(keys, tx=txs[3]) == _at(store, keys, txs[3])  # read takes this path


@pytest.mark.parametrize("keys", [["a"], [], ["a", ""], ["a", 1], ["a", "\ud800"], ["a", "x\x00y"],
                                  ["a", "s" * (SHORT_MAX + 1)], ["a", "c"], ["a", "t"], ["a", "m"], ["a", "cl"]])
def test_read_batch_at_leaves_to_the_general_path_what_it_does_not_answer(store: Store, keys: list) -> None:
    """None (the caller then reads the general way, which also raises for bad keys) for fewer than two
    keys, an empty, non-str, unencodable, NUL-holding or long key, or a version at the tx that is not
    a plain put (a delete, an expiring value, one with metadata, a clear)."""
    _history(store)
    ns = store.namespace("p")
    ns.put({"t": 1}, ttl=3600)
    ns.put({"m": 1}, metadata={"z": 1})
    ns.put({"cl": 1})
    latest = ns.clear(["cl"])
    ns.delete(["c"])
    assert _at(store, keys, ns.read(["a", "b"]).tx) is None
    assert _at(store, ["a", "b"], latest, name="never") is None  # no known prefix


@pytest.mark.parametrize("tx", [-1, True, 1.0, "1", None, 99, TX_MAX, TX_MAX + 1])
def test_read_batch_at_leaves_bad_txs_to_the_general_path_which_raises(store: Store, tx: object) -> None:
    _history(store)
    assert _at(store, ["a", "b"], tx) is None
    if tx is None:
        return
    with pytest.raises(errors.FutureTx if type(tx) is int and tx > 0 else errors.InvalidParameters):
        store.namespace("p").read(["a", "b"], tx=tx)  # type: ignore[arg-type]


def test_read_batch_at_refuses_a_compacted_tx_and_stops_at_the_store_limits(store: Store, tmp_path: Path) -> None:
    txs = _history(store)
    ns = store.namespace("p")
    store.compact(before_tx=txs[3])
    assert _at(store, ["a", "b"], txs[2]) is None
    with pytest.raises(errors.TxCompacted) as gone:
        ns.read(["a", "b"], tx=txs[2])
    assert gone.value.details == {"tx": txs[2], "horizon": txs[3]}
    assert _at(store, ["a", "b"], txs[3]) == ReadResult(
        [Record("a", "y", txs[2]), Record("b", b"\x01", txs[0], binary=True)], txs[3])
    with Store.open(tmp_path / "s", sync=False, limits=Limits(max_read_keys=3, max_key_bytes=4)) as small:
        tx = small.namespace("p").put({"a": 1, "bb": 2, "dddd": 4})
        small.namespace("p").get("a")  # a read learns the namespace's prefix
        assert _at(small, ["a", "bb", "dddd"], tx) == ReadResult(
            [Record("a", 1, tx), Record("bb", 2, tx), Record("dddd", 4, tx)], tx)
        assert _at(small, ["a", "bb", "dddd", "c"], tx) is None  # more keys than a read takes
        assert _at(small, ["a", "eeeee"], tx) is None  # a key longer than the store takes


def test_lean_single_key_paths_follow_the_store_limits(tmp_path: Path) -> None:
    """``get`` and ``read([k])`` answer on their lean paths only what the store's limits allow: a key
    longer than ``max_key_bytes`` raises as the general path does, and a store whose reads take no
    key refuses ``read([k])``."""
    with Store.open(tmp_path / "s", sync=False, limits=Limits(max_key_bytes=4)) as small:
        ns = small.namespace("p")
        tx = ns.put({"dddd": 4})
        assert ns.get("dddd") == Record("dddd", 4, tx) and ns.read(["dddd"], tx=tx).records == [Record("dddd", 4, tx)]
        for call in (lambda: ns.get("eeeee"), lambda: ns.read(["eeeee"]), lambda: ns.get("eeeee", tx=tx),
                     lambda: ns.read(["eeeee"], tx=tx)):
            with pytest.raises(errors.KeyTooLong):
                call()
    with Store.open(tmp_path / "z", sync=False, limits=Limits(max_read_keys=0)) as none:
        none.namespace("p").put({"a": 1})
        assert none.namespace("p").get("a") is not None
        with pytest.raises(errors.BatchTooLarge):
            none.namespace("p").read(["a"])


def test_plain_batches_flag_bytes_values_exactly_whatever_bytes_their_payload_holds(store: Store) -> None:
    """``Record.binary`` of a plain batch at the latest tx and at a past tx: the bytes of a msgpack
    ``bin`` (C4-C6) inside text (U+0104 is C4 84 in UTF-8) or numbers are no bytes value, and a
    batch of text alone has none."""
    ns = store.namespace("p")
    tx1 = ns.put({"t": "\u0104\u0105", "n": 0xC5C6, "b": b"\xc4", "s": "plain"})
    tx2 = ns.put({"u": "text"})
    for tx in (None, tx1, tx2):
        assert ns.read(["t", "n", "b", "s"], tx=tx).records == [
            Record("t", "\u0104\u0105", tx1), Record("n", 0xC5C6, tx1), Record("b", b"\xc4", tx1, binary=True),
            Record("s", "plain", tx1)]
        assert ns.read(["s", "t"], tx=tx).records == [Record("s", "plain", tx1), Record("t", "\u0104\u0105", tx1)]
    assert ns.read(["s", "u"]) == ReadResult([Record("s", "plain", tx1), Record("u", "text", tx2)], tx2)
    assert ns.read(["u", "s"], tx=tx2) == ReadResult([Record("u", "text", tx2), Record("s", "plain", tx1)], tx2)
    assert ns.read(["u", "s"], tx=tx1) == ReadResult([Record("s", "plain", tx1)], tx1)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(st.text(alphabet="ab\u00e9\x00", max_size=12), st.integers(0, 1)), min_size=2,
                     max_size=8),
       key_max=st.integers(1, 11))
def test_plain_keys_takes_exactly_the_batches_of_short_nonempty_str_keys_without_nul(keys: list, key_max: int) -> None:
    """The batch check (one join, a NUL find per block of the joined keys instead of a length per
    key) accepts a batch exactly when every key is a non-empty str of at most ``key_max`` UTF-8
    bytes without NUL, and then gives the keys each once, in order, with their UTF-8."""
    plain = all(type(k) is str and 0 < len(k.encode()) <= key_max and "\x00" not in k for k in keys)
    unique = list(dict.fromkeys(keys)) if plain else None
    assert _plain_keys(keys, len(keys), key_max) == (None if unique is None else (unique, [k.encode() for k in unique]))


def test_plain_keys_finds_every_key_longer_than_the_limit_wherever_the_blocks_fall() -> None:
    """Every placement of a long key against the blocks the check looks at: two keys of every length
    up to twice the limit and more, before a short one, for limits 1 to 8."""
    for key_max in range(1, 9):
        for first in range(1, 2 * key_max + 3):
            for second in range(1, 2 * key_max + 3):
                keys = ["a" * first, "b" * second, "c"]
                fits = first <= key_max and second <= key_max
                assert _plain_keys(keys, 3, key_max) == ((keys, [k.encode() for k in keys]) if fits else None), keys


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(st.text(alphabet="ab\u00e9\x00\x01\x02\x03", max_size=12), st.integers(0, 1)),
                     min_size=2, max_size=8),
       key_max=st.integers(1, 11), prefix=st.binary(min_size=4, max_size=4),
       tail=st.sampled_from([b"\x00\x00", b"\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08"]))
def test_plain_keyparts_are_the_plain_keys_with_prefix_and_tail(keys: list, key_max: int, prefix: bytes,
                                                                  tail: bytes) -> None:
    """The keypart builder takes what _plain_keys takes (or, for a batch holding its separator, a
    control character that neither prefix nor tail holds, reads it the general way) and gives each
    key once, in order, with ``prefix | UTF-8 | tail``."""
    plain = _plain_keys(keys, len(keys), key_max)
    parts = _plain_keyparts(keys, len(keys), key_max, prefix, tail)
    if plain is None:
        assert parts is None
        return
    separator = next(c for c in range(1, 32) if c not in prefix + tail)
    if parts is None:  # only a batch holding the separator may go the general way
        assert any(chr(separator) in k for k in keys)
        return
    unique, raws = plain
    assert parts == (unique, [prefix + raw + tail for raw in raws])


def test_plain_keyparts_finds_every_key_longer_than_the_limit_wherever_the_blocks_fall() -> None:
    """As for _plain_keys: every placement of a long key against the blocks the check looks at."""
    for key_max in range(1, 9):
        for first in range(1, 2 * key_max + 3):
            for second in range(1, 2 * key_max + 3):
                keys = ["a" * first, "b" * second, "c"]
                fits = first <= key_max and second <= key_max
                want = (keys, [b"P" + k.encode() + b"\x00\x00" for k in keys]) if fits else None
                assert _plain_keyparts(keys, 3, key_max, b"P") == want, keys


def test_a_batch_with_the_separator_or_repeats_reads_as_any_other(store: Store) -> None:
    """A key holding the control character the batch keyparts are split at is read the general way,
    with the same answer; repeats keep each key's first place."""
    ns = store.namespace("sep")
    tx = ns.put({"\x01": 1, "a\x02b": 2, "c": 3})
    for keys in (["\x01", "c"], ["a\x02b", "c", "\x01"], ["c", "c", "\x01", "c"], ["c", "a\x02b", "c"]):
        want = [Record(k, {"\x01": 1, "a\x02b": 2, "c": 3}[k], tx) for k in dict.fromkeys(keys)]
        assert ns.read(keys) == ReadResult(want, tx)
        assert ns.read(keys, tx=tx) == ReadResult(want, tx)


# One step of a history: (op, key index, value); values are plain, or carry what makes a record rich.
_STEP = st.tuples(st.sampled_from(["put", "put", "put", "delete", "clear", "ttl", "meta"]), st.integers(0, 5),
                  st.one_of(st.integers(-3, 3), st.text(max_size=3), st.binary(max_size=3), st.none(),
                            st.lists(st.integers(0, 2), max_size=2)))
_KEYS = ["a", "b", "é", "\x01", "s" * SHORT_MAX, "x\x00y"]


@UNDER_LOAD
@given(steps=st.lists(st.lists(_STEP, min_size=1, max_size=3), min_size=1, max_size=8),
       asked=st.lists(st.sampled_from([*_KEYS, "absent"]), min_size=1, max_size=5))
def test_lean_paths_equal_the_general_path_at_every_tx(steps: list[list[tuple[str, int, object]]],
                                                       asked: list[str]) -> None:
    """Random histories (each inner list one tx): at every tx, and at the latest, ``read(asked)``,
    ``read([k])`` and ``get(k)`` equal the general path's answer, and ``read_batch_at`` is either
    that answer or None."""
    with tempfile.TemporaryDirectory() as path, Store.open(path, sync=False) as store:
        ns = store.namespace("p")
        for tx_steps in steps:
            puts: dict[str, object] = {}
            for op, i, value in tx_steps:
                key = _KEYS[i]
                if op == "put":
                    puts[key] = value
                elif op == "delete":
                    ns.delete([key])
                elif op == "clear":
                    ns.clear([key])
                elif op == "ttl":
                    ns.put({key: value}, ttl=3600)
                else:
                    ns.put({key: value}, metadata={"v": 1})
            if puts:
                ns.put(puts)
        latest = ns.read(["a"]).tx
        for tx in [None, *range(latest + 1)]:
            assert ns.read(asked, tx=tx) == _general(store, asked, tx), tx
            at = latest if tx is None else tx
            direct = _at(store, asked, at)
            assert direct is None or direct == _general(store, asked, at), tx
            for key in set(asked):
                one = _general(store, [key], tx)
                assert ns.read([key], tx=tx) == one, (key, tx)
                assert ns.get(key, tx=tx) == (one.records[0] if one.records else None), (key, tx)


def test_backend_get_each_reads_every_key_in_one_snapshot_with_its_latest_tx(store: Store) -> None:
    """``Backend.get_each`` (the plain batch read at the latest tx): each key's entry in the given
    database, None for an absent one, in request order, with the latest tx of the transaction that
    read them; a closed store refuses it as every read does."""
    ns = store.namespace("p")
    tx1 = ns.put({"a": "x", "b": 2})
    tx2 = ns.put({"a": "y"})
    ns.get("a")  # a read learns the namespace's prefix
    backend = store._backend
    head = store._heads["p"]
    found, latest = backend.get_each(backend.latest, [b"a".join(head), b"absent".join(head), b"b".join(head)])
    assert latest == tx2
    assert found == [latest_entry(tx2, pack_value("y")), None, latest_entry(tx1, pack_value(2))]
    assert backend.get_each(backend.latest, []) == ([], tx2)
    store.close()
    with pytest.raises(errors.StoreClosed):
        backend.get_each(backend.latest, [b"a".join(head)])


def test_backend_seek_each_finds_each_keys_first_entry_at_or_after_it_in_one_snapshot(store: Store) -> None:
    """``Backend.seek_each`` (the plain batch read at a past tx): for each key, in request order, the
    first entry at or after it (``(b"", b"")`` past the last), with the transaction's latest tx and
    compaction horizon; a closed store refuses it as every read does."""
    ns = store.namespace("p")
    tx1 = ns.put({"a": "x", "b": 2})
    tx2 = ns.put({"a": "y"})
    ns.get("a")  # a read learns the namespace's prefix
    backend = store._backend
    head = store._heads["p"]
    version = {(key, tx): key.encode().join(head) + inv_tx(tx) for key in "ab" for tx in (tx1, tx2)}
    found, latest, horizon = backend.seek_each(backend.versions, [
        version["a", tx1], b"a".join(head), version["b", tx2], b"\xff" * 8])
    assert (latest, horizon) == (tx2, 0)
    assert found == [(version["a", tx1], pack_value("x")), (version["a", tx2], pack_value("y")),
                     (version["b", tx1], pack_value(2)), (b"", b"")]
    store.compact(before_tx=tx2)
    assert backend.seek_each(backend.versions, []) == ([], tx2, tx2)
    store.close()
    with pytest.raises(errors.StoreClosed):
        backend.seek_each(backend.versions, [b"a".join(head)])
