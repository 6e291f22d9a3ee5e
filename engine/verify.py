"""Tamper evidence: re-derive the hash chain from the stored versions and the tx log.

:func:`verify` walks every tx from 1 to the latest. For each it reads the log entry and the exact
version records the tx says it wrote, recomputes ``hash(tx)`` from ``hash(tx - 1)`` (see
:mod:`engine.txlog`), and compares it with the stored one. The first tx whose data or log entry
does not match is reported, with what was wrong. Then it checks that the versions database holds
no version the log does not account for, that the stored head matches the chain, and that the
latest-version index (:mod:`engine.latest`) lists exactly each key's newest version.

A receipt ``(tx, hash)`` taken earlier from :meth:`Store.head` can be passed in: verification
then also proves that the history up to that tx is the history the receipt was issued for, even
if someone rewrote the whole chain after it. A receipt for a tx above the latest cannot have come
from this store's head: :func:`verify` raises ``FUTURE_TX`` before checking anything.

**Below the compaction horizon** the versions a tx wrote may be gone, so its hash cannot be
recomputed. There the check is of the log alone: every entry present, times never decreasing,
and the stored hash taken as the chain's link to the next tx. Data is re-hashed from the horizon
on, starting from the stored hash of ``horizon - 1``, so rewriting that hash is still caught at
the horizon. The version count stays exact: compaction counts what it frees
(``meta.compacted_versions``), in the same transaction as it frees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import events, schema, txlog
from . import latest as latest_index
from .encoding import NO_TX, TX_LEN, inv_tx, keypart, ns_prefix, tx_of
from .errors import FutureTx
from .schema import NamespaceEntry

CHUNK = 1000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :meth:`Store.verify`. ``ok`` is False when ``bad_tx`` names the first bad tx."""

    ok: bool
    checked: int
    head_tx: int
    head_hash: str
    bad_tx: int | None = None
    problem: str | None = None
    #: Data was re-hashed for txs >= horizon; below it, only the log was checked.
    horizon: int = 0


class _Bad(Exception):
    def __init__(self, tx: int, problem: str) -> None:
        super().__init__(problem)
        self.tx = tx
        self.problem = problem


def _ns_ids(txn: Any, dbs: dict[str, Any]) -> dict[str, int]:
    return {bytes(k).decode(): NamespaceEntry.decode(v).id for k, v in txn.cursor(db=dbs["namespaces"])}


def _check_tx(txn: Any, dbs: dict[str, Any], ids: dict[str, int], stream_ids: dict[str, int], tx: int, prev: bytes,
              last_time: int) -> tuple[bytes, int, int]:
    """Recompute the hash of ``tx``; return (hash, time_us, number of versions it wrote)."""
    found = txlog.entry(txn, dbs, tx)
    if found is None:
        raise _Bad(tx, "the tx log has no entry for this tx")
    time_us, note, stored = found
    if time_us < last_time:
        raise _Bad(tx, "commit time is earlier than the previous tx's")
    runs = txlog.all_runs_of(txn, dbs, tx)
    records: list[list[bytes]] = []
    suffix = inv_tx(tx)
    count = 0
    for namespace, op, keys in runs:
        if op >= txlog.FIRST_STREAM_OP:  # a publish or a stream drop: its records are events
            event_records = events.run_records(txn, dbs, stream_ids, tx, [namespace, op, keys])
            if isinstance(event_records, str):
                raise _Bad(tx, event_records)
            records.append(event_records)
            continue
        if namespace not in ids:
            raise _Bad(tx, f"namespace {namespace!r} of this tx is not registered")
        prefix = ns_prefix(ids[namespace])
        recs = []
        for key in keys:
            rec = txn.get(keypart(prefix, key.encode()) + suffix, db=dbs["versions"])
            if rec is None:
                raise _Bad(tx, f"the version of {namespace}/{key!r} written by this tx is missing")
            recs.append(bytes(rec))
        records.append(recs)
        count += len(keys)
    digest = txlog.chain_hash(prev, tx, time_us, note, runs, records)
    if digest != stored:
        raise _Bad(tx, "the hash does not match: a stored value or the tx log entry was changed")
    return digest, time_us, count


def _check_log(txn: Any, dbs: dict[str, Any], tx: int, last_time: int) -> tuple[bytes, int, int]:
    """Below the horizon: the log entry of ``tx`` exists and its time is in order; return (stored
    hash, time_us, number of versions the tx wrote)."""
    found = txlog.entry(txn, dbs, tx)
    if found is None:
        raise _Bad(tx, "the tx log has no entry for this tx")
    time_us, _, stored = found
    if time_us < last_time:
        raise _Bad(tx, "commit time is earlier than the previous tx's")
    return bytes(stored), time_us, sum(len(keys) for _, _, keys in txlog.runs_of(txn, dbs, tx))


def verify(read: Any, dbs: dict[str, Any], receipt: tuple[int, str] | None = None) -> VerifyReport:
    """Check the whole chain. ``read`` runs a function in a read transaction (Backend.read)."""
    meta = dbs["meta"]
    latest = read(lambda txn: schema.get_u64(txn, meta, schema.LATEST_TX))
    if receipt is not None and receipt[0] > latest:
        raise FutureTx(f"the receipt names tx {receipt[0]}, but the latest committed tx is {latest}",
                       tx=receipt[0], latest_tx=latest, parameter="receipt")
    ids = read(lambda txn: _ns_ids(txn, dbs))
    stream_ids = read(lambda txn: events.ids(txn, dbs))
    # The horizon is read in each chunk's transaction (a compaction may raise it meanwhile); with no
    # tx at all there is none to read, and none is below it.
    prev, last_time, versions, horizon, logged_events = txlog.GENESIS, 0, 0, 0, 0
    try:
        for start in range(1, latest + 1, CHUNK):
            def chunk(txn: Any, start: int = start) -> None:
                nonlocal prev, last_time, versions, horizon, logged_events
                # Read in this chunk's transaction: a compaction may have raised it meanwhile.
                horizon = max(horizon, schema.get_u64(txn, meta, schema.HORIZON))
                for tx in range(start, min(start + CHUNK, latest + 1)):
                    if tx < horizon:
                        prev, last_time, count = _check_log(txn, dbs, tx, last_time)
                    else:
                        prev, last_time, count = _check_tx(txn, dbs, ids, stream_ids, tx, prev, last_time)
                    versions += count
                    logged_events += events.logged_events(txlog.stream_runs_of(txn, dbs, tx))
                    if receipt is not None and receipt[0] == tx and prev.hex() != receipt[1].lower():
                        raise _Bad(tx, "the chain no longer matches the receipt: history up to it was rewritten")
            read(chunk)
        read(lambda txn: _check_totals(txn, dbs, ids, latest, prev, versions))
        read(lambda txn: _check_events(txn, dbs, latest, logged_events))
        pos: bytes | None = b""
        while pos is not None:  # a few thousand keys per read transaction, like the txs above
            bad, pos = read(lambda txn, at=pos: latest_index.check(txn, dbs, at))
            if bad is not None:
                raise _Bad(*bad)
    except _Bad as bad:
        return VerifyReport(False, min(bad.tx - 1, latest), latest, prev.hex(), bad.tx, bad.problem, horizon)
    return VerifyReport(True, latest, latest, prev.hex(), horizon=horizon)


def _check_totals(txn: Any, dbs: dict[str, Any], ids: dict[str, int], latest: int, head: bytes, versions: int) -> None:
    now = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    if now > latest:  # txs committed while verify ran: the head is the newest one's logged hash
        found = txlog.entry(txn, dbs, now)
        if found is None:
            raise _Bad(now, "the tx log has no entry for this tx")
        head = found[2]
    stored_head = txn.get(txlog.HEAD_HASH, db=dbs["meta"]) or txlog.GENESIS
    if stored_head != head:
        raise _Bad(latest, "the stored head hash does not match the chain")
    # Versions written minus versions compaction freed (counted in the transactions that freed them),
    # including those of txs committed since verify started: this transaction sees them too.
    for tx in range(latest + 1, now + 1):
        versions += sum(len(keys) for _, _, keys in txlog.runs_of(txn, dbs, tx))
    if txn.stat(dbs["versions"])["entries"] != versions - schema.get_u64(txn, dbs["meta"], schema.COMPACTED_VERSIONS):
        stray = _stray_version_tx(txn, dbs, ids)
        if stray is None:
            # Every version is accounted for, yet the count is off: a version below the horizon was removed
            # (above it, _check_tx names the tx whose version is missing) or the count was rewritten. Which tx
            # lost it cannot be told, so the whole store is reported, as for the head.
            raise _Bad(latest, "the version count does not match the tx log and the versions compaction freed")
        raise _Bad(stray, "a version exists that no tx log entry accounts for")


def _check_events(txn: Any, dbs: dict[str, Any], latest: int, logged: int) -> None:
    """The events database holds exactly the events the log accounts for, minus those compaction freed."""
    now = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    for tx in range(latest + 1, now + 1):
        logged += events.logged_events(txlog.stream_runs_of(txn, dbs, tx))
    if txn.stat(dbs["events"])["entries"] != logged - schema.get_u64(txn, dbs["meta"], events.COMPACTED_EVENTS):
        for key, _ in txn.cursor(db=dbs["events"]):
            _, tx, index = events.split_key(bytes(key))
            if not any(run[1] == events.PUBLISH and index < run[2] for run in txlog.stream_runs_of(txn, dbs, tx)):
                raise _Bad(tx, "an event exists that no tx log entry accounts for")
        # Every event is accounted for, yet the count is off: one was removed without being counted as freed
        # (above the horizon, _check_tx names the tx whose event is missing) or the count was rewritten. As
        # for versions, no tx can be named, so the whole store is reported.
        raise _Bad(latest, "the event count does not match the tx log and the events compaction freed")


def _stray_version_tx(txn: Any, dbs: dict[str, Any], ids: dict[str, int]) -> int | None:
    """The tx of the first version not listed in its tx's log entry, None if every version is listed
    (slow path: only on failure)."""
    names = {v: k for k, v in ids.items()}
    listed: dict[int, set[bytes]] = {}
    for k, _ in txn.cursor(db=dbs["versions"]):
        k = bytes(k)
        tx = tx_of(k)
        if tx not in listed:
            parts: set[bytes] = set()
            for namespace, _, keys in txlog.runs_of(txn, dbs, tx):
                if namespace in ids:
                    prefix = ns_prefix(ids[namespace])
                    parts.update(keypart(prefix, key.encode()) for key in keys)
            listed[tx] = parts
        if k[:-TX_LEN] not in listed[tx] or int.from_bytes(k[:4], "big") not in names:
            return tx
    return None


__all__ = ["NO_TX", "VerifyReport", "verify"]
