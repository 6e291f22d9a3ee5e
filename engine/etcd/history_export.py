"""A history export (:func:`engine.transfer.export_history`) of a store on etcd: the LMDB export's rows.

For each tx in ``(since, until]`` the row is built from the tx log (:meth:`engine.etcd.storage.EtcdStorage.changes`:
operations in log order, commit times clamped as LMDB stores them) and, for each put, the record the tx
stored (the data key read at the tx's revision): the value, and ``expire_us`` / ``metadata`` for a put
written with options, exactly as :func:`engine.transfer._history_rows` writes them. The header is LMDB's;
``streams`` is ``[]`` at the latest tx of a whole-store export (streams are not built on etcd), else null.
Rows are read a window of txs at a time, so a slow consumer holds nothing open.

A one-namespace export needs a namespace that exists now (``NAMESPACE_NOT_FOUND`` otherwise, also for
one dropped since: LMDB exports those too). After a compaction, a history starting below the horizon
(or ending below it) raises ``TX_COMPACTED`` with LMDB's words (start it at ``since = horizon - 1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import schema
from ..codec import PUT, decode_rich, put_value
from ..errors import InvalidParameters, NamespaceNotFound, TxCompacted
from ..snapshot import check_readable
from ..transfer import FORMAT, VERSION, Progress, _value_fields
from ..validation import check_namespace, check_tx
from . import compacted, stream_history
from .kv import Range
from .reads import compacted_error, snapshot
from .storage import EtcdStorage
from .txlog import TxEntry

#: Txs read per window (one ``changes`` call and one read of their puts' records each).
WINDOW = 256


def export_history(store: Any, namespace: str | None = None, *, since: int = 0, until: int | None = None,
                   progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The header, then one dict per tx in ``(since, until]``, as :func:`engine.transfer.export_history`
    (arguments checked at the call); ``store`` is an :class:`~engine.etcd.store.EtcdStore`."""
    storage: EtcdStorage = store.storage()
    if namespace is not None:
        check_namespace(namespace)
        if storage.namespace_info(namespace) is None:
            raise NamespaceNotFound(f"namespace {namespace!r} does not exist", namespace=namespace)
    check_tx(since, "since")
    latest = storage.latest_tx
    end = latest if until is None else until
    horizon = compacted.read_state(storage.client, storage.layout)[0].horizon
    if until is not None:
        check_readable(until, latest)
        if until < horizon:
            raise compacted_error(until, horizon)
    if since > end:
        raise InvalidParameters(f"since ({since}) is after until ({end})", parameter="since")
    if since + 1 < horizon:  # LMDB's words: where a history export can start
        raise TxCompacted(f"tx {since + 1} was compacted away: a history export can start at tx {horizon}",
                          tx=since + 1, horizon=horizon)
    names = None
    if end == latest:
        # The registry's names (each registered namespace exists): namespace_info would read every key of each.
        names = sorted((n for n in storage.namespaces() if namespace in (None, n)), key=str.encode)
    header = {"format": FORMAT, "version": VERSION, "mode": "history", "namespace": namespace, "since": since,
              "until": end, "txs": end - since, "namespaces": names,
              "streams": stream_history.names(storage) if end == latest and namespace is None else None}
    return _rows(storage, header, namespace, since, end, progress)


def _rows(storage: EtcdStorage, header: dict[str, Any], namespace: str | None, since: int, end: int,
          progress: Progress | None) -> Iterator[dict[str, Any]]:
    yield header
    tx = since
    while tx < end:
        entries = [e for e in storage.changes(tx, limit=WINDOW, namespace=namespace) if e.tx <= end]
        for entry in entries:
            yield _row(storage, entry)
        tx = min(end, tx + WINDOW) if not entries or len(entries) < WINDOW else entries[-1].tx
        if progress is not None:
            progress(tx - since, end - since)


def _row(storage: EtcdStorage, entry: TxEntry) -> dict[str, Any]:
    layout = storage.timeline.layout
    puts = [op for op in entry.operations if op.op == "put"]
    _, _, answers = snapshot(storage.timeline, entry.tx, [Range(layout.data(op.namespace, op.key.encode()))
                                                         for op in puts])
    records = {(op.namespace, op.key): bytes(a.kvs[0].value) for op, a in zip(puts, answers, strict=True)}
    ops: list[dict[str, Any]] = []
    if not entry.operations:  # a stream tx (a storage tx on etcd always names a key)
        ops = stream_history.history_ops(storage, entry.tx, stream_history.stream_runs(storage, entry.tx))
    for op in entry.operations:
        if op.op != "put":
            ops.append({"namespace": op.namespace, "op": op.op, "key": op.key})
            continue
        kind, packed, _, expire_us, metadata, created_us = decode_rich(records[(op.namespace, op.key)])
        assert kind == PUT
        put = _value_fields({"namespace": op.namespace, "op": "put", "key": op.key}, put_value(packed))
        if created_us is not None:  # an extended put: replaying it needs its options
            put["expire_us"] = expire_us
            put["metadata"] = metadata
        ops.append(put)
    return {"tx": entry.tx, "time_us": entry.time_us, "time": schema.time_of(entry.time_us).isoformat(),
            "note": entry.note, "ops": ops}
