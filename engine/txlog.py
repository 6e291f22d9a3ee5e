"""The tx log: what each committed tx did, when, who said so, and a hash chain over all of it.

Written in the same LMDB transaction as the versions, in one database, ``txlog`` (tx as u64
big-endian), entries side by side in key order:

* ``tx`` -> msgpack ``[time_us, note, hash]``. Small, so reading a tx's time is cheap.
* ``tx | 01`` -> msgpack ``runs``: the operations in the order applied, as runs
  ``[namespace, op, [key, ...]]`` (op: 0 put, 1 clear, 2 delete). A put of 10,000 keys is one run.
  Stream txs log ``[stream, 3, count]`` (a publish) or ``[stream, 4, 0]`` (a drop) instead; a tx
  holds storage runs or stream runs, never both (see :mod:`engine.events`).
* ``tx | 02`` -> the tx's Merkle tree entry (:mod:`engine.txtree`).

Why one database: every B-tree a tx writes costs its commit a leaf and the pages above it, written
and flushed (a one-item tx wrote 18 pages with the runs, a time index and the tree in trees of their
own, 12 without). Times never decrease with tx (the commit time is clamped to the previous tx's
when the clock steps back), so "the last tx at or before time t" needs no index of its own:
:func:`tx_at` searches the entries, O(log n) gets.

Stores written before this layout keep each tx's runs in ``txops`` (tx -> runs), a time index
``txtime`` (``time_us | tx`` -> empty) and tree entries in ``txtree``: :func:`all_runs_of` reads
``txops`` for a tx with no ``tx | 01`` entry (:func:`engine.txtree.entry` likewise), and the
search serves their txs too (their ``txlog`` entries are the same), so an older store reads the
same with nothing migrated.

**The hash chain.** ``hash(tx) = SHA-256(hash(tx - 1) | msgpack([tx, time_us, note, [[namespace,
op, [key, ...], [record, ...]], ...]]))`` where ``record`` is the exact version record bytes the
tx stored for each key, and ``hash(0)`` is 32 zero bytes. Flipping a byte of a stored value,
dropping a version or rewriting a log entry changes the hash of that tx, and an auditor holding a
receipt ``(tx, hash)`` from :func:`head` can prove nothing before it was rewritten at all.

**The Merkle tree.** The same bytes the chain hashes after ``hash(tx - 1)`` (:func:`canonical_entry`)
are the tx's leaf in the Merkle tree over the log; :func:`append` adds it in the same transaction
(:mod:`engine.txtree`), so O(log n) proofs cover exactly what the chain covers.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ormsgpack import unpackb  # the engine's msgpack decoder (see engine/codec.py)

from . import schema, txtree
from .codec import OP_NAMES, pack_value, packb_exact
from .errors import InvalidParameters

_u64 = struct.Struct(">Q")
_sha256 = hashlib.sha256
GENESIS = bytes(32)
HEAD_HASH = b"head_hash"
#: After a tx's u64 in ``txlog``: the key of its runs (the entry itself is the bare u64).
OPS = b"\x01"
#: Keys in a tx's one run from which :func:`entry_and_log` packs them once for both the log and the hash.
COMPOSED_FROM = 64


@dataclass(frozen=True, slots=True)
class Operation:
    """One key a tx touched: ``op`` is ``"put"``, ``"clear"`` or ``"delete"``."""

    namespace: str
    key: str
    op: str


@dataclass(frozen=True, slots=True)
class TxInfo:
    """A committed tx: when, the caller's note, what it touched (in order), and its chain hash."""

    tx: int
    time: datetime
    time_us: int
    note: dict[str, Any] | None
    operations: list[Operation]
    hash: str


def check_note(note: Any, max_bytes: int) -> dict[str, Any] | None:
    """A note is None or a JSON object whose encoding fits ``max_bytes``."""
    if note is None:
        return None
    if type(note) is not dict:
        raise InvalidParameters(f"note must be a JSON object (dict) or None, not {type(note).__name__}",
                                parameter="note")
    size = len(pack_value(note))
    if size > max_bytes:
        raise InvalidParameters(f"note is {size} bytes encoded; the limit is {max_bytes}", parameter="note")
    return note


def wall_clock_us() -> int:
    """Now, in UTC microseconds (the default clock of a store)."""
    return time.time_ns() // 1000


def commit_time(txn: Any, meta_db: Any, now_us: int | None = None) -> int:
    """Now (``now_us``, or the wall clock) in UTC microseconds, but never before the previous tx's time."""
    now = time.time_ns() // 1000 if now_us is None else now_us
    last = schema.get_u64(txn, meta_db, schema.LAST_TIME_US)
    now = max(now, last)
    schema.put_u64(txn, meta_db, schema.LAST_TIME_US, now)
    return now


def replay_time(txn: Any, meta_db: Any, next_tx: int, tx: int, time_us: int) -> int:
    """The commit time of a replayed tx: ``time_us``, if ``tx`` is the next tx and the time is not
    earlier than the previous tx's."""
    check_replay(next_tx, schema.get_u64(txn, meta_db, schema.LAST_TIME_US), tx, time_us)
    schema.put_u64(txn, meta_db, schema.LAST_TIME_US, time_us)
    return time_us


def check_replay(next_tx: int, last_us: int, tx: int, time_us: int) -> None:
    """``INVALID_PARAMETERS`` unless ``tx`` is ``next_tx`` and ``time_us`` is an integer from ``last_us``
    (the previous tx's commit time) to the year 9999: the rule of a replayed tx on either backend."""
    if tx != next_tx:
        raise InvalidParameters(f"cannot replay tx {tx}: the next tx of this store is {next_tx} (import a "
                                "history into an empty store, or renumber it)", parameter="tx", tx=tx,
                                next_tx=next_tx)
    # A time past the year 9999 would be stored but could never be shown as a date (tx_info, HTTP).
    if type(time_us) is not int or not last_us <= time_us <= schema.MAX_TIME_US:
        raise InvalidParameters(f"cannot replay tx {tx} at time {time_us!r}: it must be an integer no earlier "
                                f"than the previous tx's ({last_us}) and no later than the year 9999 "
                                f"({schema.MAX_TIME_US})", parameter="time_us", tx=tx)


def canonical_entry(tx: int, time_us: int, note: dict[str, Any] | None, runs: list[list[Any]],
                    records: list[list[bytes]]) -> bytes:
    """The bytes the chain hashes after the predecessor's hash, and the tx's Merkle leaf data."""
    body = [tx, time_us, note, [[*run, recs] for run, recs in zip(runs, records, strict=True)]]
    return packb_exact(body)


def chain_hash(prev: bytes, tx: int, time_us: int, note: dict[str, Any] | None, runs: list[list[Any]],
               records: list[list[bytes]]) -> bytes:
    """The hash of a tx given its predecessor's, its log entry and the records it stored."""
    return hashlib.sha256(prev + canonical_entry(tx, time_us, note, runs, records)).digest()


def entry_and_log(tx: int, time_us: int, note: dict[str, Any] | None, runs: list[list[Any]],
                  records: list[list[bytes]]) -> tuple[bytes, bytes]:
    """``(canonical_entry(tx, time_us, note, runs, records), packb_exact(runs))``: the bytes the
    chain hashes and the tx's ``txops`` value.

    One run of many keys (a bulk put) packs its keys once for both: msgpack is compositional, so the
    entry's run ``[*run, records]`` is the logged run's elements (the log's bytes after its two array
    headers, 91 93) then the records, under 91 94."""
    logged = packb_exact(runs)
    if len(runs) != 1:
        return canonical_entry(tx, time_us, note, runs, records), logged
    run = runs[0]
    if len(run) == 3 and type(run[2]) is list and len(run[2]) >= COMPOSED_FROM:
        return b"".join((b"\x94", packb_exact([tx, time_us, note])[1:], b"\x91\x94", logged[2:],
                         packb_exact(records[0]))), logged
    return packb_exact([tx, time_us, note, [[*run, records[0]]]]), logged  # canonical_entry without its loop


def append(txn: Any, dbs: dict[str, Any], tx: int, time_us: int, note: dict[str, Any] | None,
           runs: list[list[Any]], records: list[list[bytes]]) -> bytes:
    """Write the log entry of ``tx``, advance the chain and add its leaf to the Merkle tree
    (:mod:`engine.txtree`). Runs in the tx's write transaction."""
    prev = txn.get(HEAD_HASH, db=dbs["meta"]) or GENESIS
    if len(runs) == 1 and len(records[0]) < COMPOSED_FROM:  # most txs: one run of a few keys, inlined
        data = packb_exact([tx, time_us, note, [[*runs[0], records[0]]]])
        digest = _sha256(prev + data).digest()
        logged = packb_exact(runs)
    else:
        data, logged = entry_and_log(tx, time_us, note, runs, records)
        chain = _sha256(prev)
        chain.update(data)  # no copy of prev + data (about 1 MB for 10,000 items)
        digest = chain.digest()
    txtree.append(txn, dbs, tx, data)
    _put_entry(txn, dbs, tx, time_us, note, digest, logged)
    return digest


def append_one(txn: Any, dbs: dict[str, Any], tx: int, time_us: int, note: dict[str, Any] | None,
               run: list[Any], record: bytes, prev: bytes, tree_prev: bytes | None) -> tuple[bytes, bytes | None]:
    """:func:`append` of a tx of one run of one key storing ``record``, given what it would read:
    ``prev``, the chain hash of tx ``tx - 1``, and ``tree_prev``, the Merkle tree's entry of tx
    ``tx - 1`` (see :func:`engine.txtree.append_after`). Returns ``(hash of tx, tree entry of tx)``,
    what the next tx's call takes. Same bytes as :func:`append`."""
    data = packb_exact([tx, time_us, note, [[*run, [record]]]])
    digest = _sha256(prev + data).digest()
    stored = txtree.append_after(txn, dbs, tx, data, tree_prev)
    _put_entry(txn, dbs, tx, time_us, note, digest, packb_exact([run]))
    return digest, stored


def _put_entry(txn: Any, dbs: dict[str, Any], tx: int, time_us: int, note: dict[str, Any] | None, digest: bytes,
               logged: bytes) -> None:
    """Write the log entry of ``tx`` whose chain hash is ``digest`` and runs ``logged`` (packed)."""
    put, key = txn.put, _u64.pack(tx)  # put positionally: keywords cost each call ~600 instructions
    put(key, packb_exact([time_us, note, digest]), False, True, False, dbs["txlog"])
    put(key + OPS, logged, False, True, False, dbs["txlog"])
    put(HEAD_HASH, digest, False, True, False, dbs["meta"])


def entry(txn: Any, dbs: dict[str, Any], tx: int) -> tuple[int, dict[str, Any] | None, bytes] | None:
    """``(time_us, note, hash)`` of ``tx``, or None if it was not committed."""
    return _entry_of(txn.get(_u64.pack(tx), None, dbs["txlog"]))  # positional: cheaper than db=


def entry_reader(txn: Any, dbs: dict[str, Any]) -> Callable[[int], tuple[int, dict[str, Any] | None, bytes] | None]:
    """:func:`entry` as a function of the tx alone, for a caller that reads one entry per version
    (a key's history): the lookups are made once, not per call."""
    get, db, pack = txn.get, dbs["txlog"], _u64.pack

    def read(tx: int) -> tuple[int, dict[str, Any] | None, bytes] | None:
        return _entry_of(get(pack(tx), None, db))

    return read


def _entry_of(raw: bytes | None) -> tuple[int, dict[str, Any] | None, bytes] | None:
    if raw is None:
        return None
    time_us, note, digest = unpackb(raw)
    return time_us, note, digest


#: Run ops from this one on are stream operations (see :mod:`engine.events`): ``[stream, 3, count]``
#: publishes ``count`` events, ``[stream, 4, 0]`` drops a stream. Storage runs have op 0, 1 or 2.
FIRST_STREAM_OP = 3


def all_runs_of(txn: Any, dbs: dict[str, Any], tx: int) -> list[list[Any]]:
    """Every run of ``tx`` as logged, storage and stream runs (empty if it was not committed)."""
    key = _u64.pack(tx)
    raw = txn.get(key + OPS, db=dbs["txlog"])
    if raw is None:  # logged by an engine before the one-database log (or not committed)
        raw = txn.get(key, db=dbs["txops"])
    return [] if raw is None else unpackb(raw)


def runs_of(txn: Any, dbs: dict[str, Any], tx: int) -> list[list[Any]]:
    """The storage operation runs of ``tx`` (empty if it was not committed): what history, diffs,
    the change feed, export and compaction walk. Stream runs are left out (:func:`stream_runs_of`)."""
    runs = all_runs_of(txn, dbs, tx)
    return [run for run in runs if run[1] < FIRST_STREAM_OP] if runs and runs[-1][1] >= FIRST_STREAM_OP else runs


def stream_runs_of(txn: Any, dbs: dict[str, Any], tx: int) -> list[list[Any]]:
    """The stream runs of ``tx``: ``[stream, op, count]`` (see :mod:`engine.events`)."""
    return [run for run in all_runs_of(txn, dbs, tx) if run[1] >= FIRST_STREAM_OP]


def read(txn: Any, dbs: dict[str, Any], tx: int) -> TxInfo | None:
    """Everything the log holds about ``tx``, or None if no such tx was committed."""
    found = entry(txn, dbs, tx)
    if found is None:
        return None
    time_us, note, digest = found
    return TxInfo(
        tx=tx,
        time=schema.time_of(time_us),
        time_us=time_us,
        note=note,
        operations=[Operation(ns, key, OP_NAMES[op]) for ns, op, keys in runs_of(txn, dbs, tx) for key in keys],
        hash=digest.hex(),
    )


def tx_at(txn: Any, dbs: dict[str, Any], time_us: int) -> int:
    """The latest tx committed at or before ``time_us`` (0 if none), found among the log's entries,
    whose times never decrease with tx: one get for a time at or after the latest tx's (the commonest
    question), else a search by interpolation (times grow about evenly with tx in most logs: a few
    gets), with a bisection after any interpolation that did not halve the bracket (which bounds it
    at twice a binary search's ~20 gets among a million txs, however uneven the times)."""
    cur = txn.cursor(db=dbs["txlog"])
    if not cur.last():
        return 0
    b: int = _u64.unpack_from(cur.key())[0]
    tb = _logged_time(txn, dbs, cur, b)
    if tb is not None and tb <= time_us:
        return b
    ta = _logged_time(txn, dbs, cur, 1)
    if ta is None or ta > time_us:
        return 0
    a = 1  # time(a) = ta <= time_us < tb = time(b): the answer is in [a, b - 1]
    bisect = False
    while b - a > 1:
        width = b - a
        if bisect or tb is None or tb <= ta:
            probe = (a + b) // 2
        else:  # where time_us falls between ta and tb, clamped inside the bracket
            probe = min(max(a + (time_us - ta) * width // (tb - ta), a + 1), b - 1)
        logged = _logged_time(txn, dbs, cur, probe)
        if logged is not None and logged <= time_us:
            a, ta = probe, logged
        else:
            b, tb = probe, logged
        bisect = not bisect and 2 * (b - a) > width  # an interpolation that did not halve it: bisect next
    return a


def _logged_time(txn: Any, dbs: dict[str, Any], cur: Any, tx: int) -> int | None:
    """The commit time of ``tx``, or in a damaged log missing its entry (which ``verify`` reports) of
    the first tx logged after it (times never decrease, so the search stays exact over the entries
    there are); None past the last."""
    raw = txn.get(_u64.pack(tx), None, dbs["txlog"])  # positional, as put: cheaper
    if raw is None:
        found = cur.set_range(_u64.pack(tx))
        while found and len(cur.key()) != 8:  # a tx's runs or tree entry without its entry (damaged)
            found = cur.next()
        if not found:
            return None
        raw = cur.value()
    if raw[0] == 0x93 and raw[1] == 0xCF:  # [time_us, note, hash], time_us a msgpack uint64 (any time since 1970)
        return int.from_bytes(raw[2:10], "big")
    time_us: int = unpackb(raw)[0]
    return time_us
