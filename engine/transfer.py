"""Export and import: a namespace (or the whole store) as JSON-ready dicts, one per line.

Two kinds of export, both an iterator of plain dicts that ``json.dumps`` / ``orjson.dumps`` take
as they are (JSON Lines is one dict per line). The first dict is a header saying which kind:

* **snapshot** (:func:`export_snapshot`): the live records of one namespace at one tx::

      {"format": "strata-export", "version": 2, "mode": "snapshot", "namespace": "ns", "tx": 42, "count": 2}
      {"key": "city:1", "value": {"name": "Braavos"}, "tx": 40}
      {"key": "logo", "value": "iVBORw==", "binary": true, "tx": 41}
      {"key": "old", "cleared": true, "tx": 12}
      {"key": "session:9", "value": "s", "tx": 42, "expire_us": 1795000000000000, "metadata": {"by": "bob"}}

  A put that carries an expiry or metadata has them as ``expire_us`` (UTC microseconds, as the
  history export) and ``metadata``; the import writes them back (an expiry already past is
  written too, and reads as expired). The namespace must exist (``NAMESPACE_NOT_FOUND``; at an
  explicit past ``tx``, it must have existed once); importing the export creates it even when it
  holds no records.

* **history** (:func:`export_history`): every tx in ``(since, until]`` in order, with its commit
  time, note and operations (values included); all namespaces, or only one::

      {"format": "strata-export", "version": 2, "mode": "history", "namespace": null, "since": 0, "until": 9,
       "txs": 9, "namespaces": ["ns", "empty"]}
      {"tx": 1, "time_us": 1795..., "time": "2026-11-23T09:00:00.000001+00:00", "note": {"by": "alice"},
       "ops": [{"namespace": "ns", "op": "put", "key": "a", "value": 1},
               {"namespace": "ns", "op": "delete", "key": "b"}]}

  ``namespaces`` is the sorted list of namespaces that exist at ``until`` (created but empty ones
  included, dropped ones not; only the exported one, if any, for a one-namespace export), or null
  when ``until`` is not the latest tx (the store keeps no past list). Stores written before
  writes that change nothing stopped taking a tx hold txs that dropped an empty namespace: such
  a tx has the op ``{"namespace": "gone", "op": "delete", "keys": []}`` (an operation on no key),
  so that its replay logs the same and the hash chain comes out identical.

``bytes`` values are base64 with ``"binary": true``; every other value is its JSON self, exactly
(msgpack and JSON agree on ints, floats, strings, lists and ordered dicts).

:func:`import_snapshot` writes a snapshot's records as new txs (``batch`` records per tx).
:func:`import_history` replays txs in order *with their tx numbers, times and notes*: into an
empty store, an export of the whole history reproduces every tx and therefore the same hash chain
(``head()`` equal), every read at every tx, and the namespace list (missing namespaces are created
and dropped ones dropped, neither taking a tx). ``renumber=True`` instead commits each as the next
tx, now, as an ordinary write would (for a one-namespace history, whose tx numbers have gaps, a
history exported with ``since`` after a compaction, or a non-empty target). :func:`import_rows` reads the header
and calls the right one. All take ``progress(done, total)`` (total may be None): items for
snapshots, txs for histories. Several txs are written per LMDB transaction (up to
:data:`OPS_PER_WRITE` operations), so an import of small txs costs little more than raw puts.

Reads are done in chunks, each in its own short read transaction, so a slow consumer never pins
pages. A history export needs the versions of every tx it covers: from below the compaction
horizon it raises ``TX_COMPACTED`` (start it at the horizon with ``since=horizon - 1``, or export
a snapshot at the horizon).

**Histories that start after tx 0** (``since > 0``) replay only onto a store at tx ``since``: a
copy of the source up to that tx (or a store an earlier part of the same export was imported
into). An empty store cannot take them with their tx numbers: the txs up to ``since`` and the
keys they last wrote are not in the export, so reads at the replayed tx numbers would not be the
source's. Such an import is refused with ``INVALID_PARAMETERS`` before anything is written;
``renumber=True`` imports it as new txs 1, 2, ... of its own timeline.

A whole-store history also carries the stream txs (publishes and drops) and the header's
``streams`` (format version 3, see :mod:`engine.stream_transfer`); version 2 exports, which have
neither, import as before. Older exports (``"version": 1``) import as before; their txs that dropped an empty namespace
have ``"ops": []`` and are replayed as txs with no operation: the tx numbers, times and every read
match, but the dropped namespace's name is missing, so the hash of that tx (and of every later
one) differs from the source's. Export again with this version for an identical chain.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import compaction, events, expiry, schema, stream_transfer, txlog
from .codec import CLEAR, OP_NAMES, PUT, decode_rich, pack_value, put_value
from .encoding import inv_tx, keypart, ns_prefix
from .errors import EngineError, InvalidParameters, NamespaceNotFound, NotSupported, TxCompacted, ValueTooLarge
from .scan import live_keys
from .snapshot import resolve_tx
from .txn import Batch, Run, apply_batch
from .validation import check_namespace, check_tx, key_bytes

if TYPE_CHECKING:
    from .records import Limits
    from .store import Store

FORMAT = "strata-export"
#: The version this module writes. 2 added the header's ``namespaces`` and ops on no key; 3 the
#: stream ops and the header's ``streams`` (see :mod:`engine.stream_transfer`).
VERSION = 3
#: The versions it reads.
READABLE_VERSIONS = (1, 2, 3)
#: Operations written per LMDB write transaction by an import (several txs each).
OPS_PER_WRITE = 10_000
HISTORY_CHUNK = 256

Progress = Callable[[int, "int | None"], None]
_OPS = {name: code for code, name in enumerate(OP_NAMES)}


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import wrote: txs ``first_tx..last_tx`` (0, 0 if none), ``items`` operations."""

    first_tx: int
    last_tx: int
    txs: int
    items: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (for the HTTP API and the CLI)."""
        return asdict(self)


def _value_fields(out: dict[str, Any], value: Any) -> dict[str, Any]:
    if type(value) is bytes:
        out["value"] = base64.b64encode(value).decode("ascii")
        out["binary"] = True
    else:
        out["value"] = value
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _value_of(row: dict[str, Any]) -> Any:
    if "value" not in row:
        raise InvalidParameters("a put needs a value", parameter="value")
    value = row["value"]
    if row.get("binary"):
        if type(value) is not str:
            raise InvalidParameters("a binary value must be a base64 string", parameter="value")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise InvalidParameters("a binary value is not valid base64", parameter="value") from None
    return value


# -- export -------------------------------------------------------------------------------------


def export_snapshot(store: Store, namespace: str, *, tx: int | None = None, prefix: str = "",
                    progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The header, then every live record of ``namespace`` at ``tx`` (latest if None) in key order.

    Arguments and the tx are checked at the call (``FUTURE_TX``, ``TX_COMPACTED``), not at the
    first ``next()``; the header's ``count`` is the number of records when it is known cheaply.
    """
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.snapshot import export_snapshot as on_etcd  # the etcd backend imports this module

        return on_etcd(store, namespace, tx=tx, prefix=prefix, progress=progress)
    NotSupported.unless_lmdb(store, "export_snapshot")
    check_namespace(namespace)
    ns = store.namespace(namespace)
    scan = ns.scan(prefix, tx=tx, metadata=True, fields=("expire_time",))
    _check_exists(store, namespace, latest=tx is None)
    info = ns.info()
    count = info.key_count if info is not None and info.tx <= scan.tx and not prefix else None
    header = {"format": FORMAT, "version": VERSION, "mode": "snapshot", "namespace": namespace, "tx": scan.tx,
              "prefix": prefix, "count": count}
    return _snapshot_rows(header, scan, progress, count)


def _check_exists(store: Store, namespace: str, *, latest: bool) -> None:
    """Raise NAMESPACE_NOT_FOUND unless ``namespace`` exists (``latest``) or ever existed."""
    def run(txn: Any) -> bool:
        raw = txn.get(namespace.encode(), db=store._backend.namespaces)
        return raw is not None and (not latest or not schema.NamespaceEntry.decode(raw).dropped)
    if not store._backend.read(run):
        raise NamespaceNotFound(f"namespace {namespace!r} does not exist", namespace=namespace)


def _namespace_names(store: Store, txn: Any, only: str | None) -> list[str]:
    """The namespaces that exist in ``txn``'s view (``only``: that one, if it exists), sorted."""
    names = []
    for raw_name, raw in txn.cursor(db=store._backend.namespaces):
        name = bytes(raw_name).decode()
        if not schema.NamespaceEntry.decode(raw).dropped and only in (None, name):
            names.append(name)
    return sorted(names, key=str.encode)


def _snapshot_rows(header: dict[str, Any], scan: Iterable[Any], progress: Progress | None,
                   count: int | None) -> Iterator[dict[str, Any]]:
    yield header
    done = 0
    for rec in scan:
        if rec.cleared:
            yield {"key": rec.key, "cleared": True, "tx": rec.tx}
            continue
        row = _value_fields({"key": rec.key}, rec.value)
        row["tx"] = rec.tx
        if rec.expire_time is not None:
            row["expire_us"] = (rec.expire_time - _EPOCH) // _MICROSECOND
        if rec.metadata is not None:
            row["metadata"] = rec.metadata
        yield row
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done, count)
    if progress is not None:
        progress(done, count)


def _history_rows(store: Store, txn: Any, start: int, end: int, namespace: str | None) -> list[dict[str, Any]]:
    backend = store._backend
    dbs = backend.dbs
    compaction_horizon = compaction.horizon(txn, backend.meta)
    if start < compaction_horizon:
        raise TxCompacted(f"tx {start} was compacted away: a history export can start at tx {compaction_horizon}",
                          tx=start, horizon=compaction_horizon)
    rows = []
    for tx in range(start, end):
        found = txlog.entry(txn, dbs, tx)
        assert found is not None
        time_us, note, _ = found
        ops: list[dict[str, Any]] = []
        suffix = inv_tx(tx)
        for ns, op, keys in txlog.runs_of(txn, dbs, tx):
            if namespace is not None and ns != namespace:
                continue
            prefix = store._ns_prefix(txn, ns)
            assert prefix is not None
            if not keys:  # a run of no key: an empty namespace dropped by an older version
                ops.append({"namespace": ns, "op": OP_NAMES[op], "keys": []})
            for key in keys:
                if op != PUT:
                    ops.append({"namespace": ns, "op": OP_NAMES[op], "key": key})
                    continue
                raw = txn.get(keypart(prefix, key.encode()) + suffix, db=backend.versions)
                _, packed, _, expire_us, metadata, created_us = decode_rich(bytes(raw))
                put = _value_fields({"namespace": ns, "op": "put", "key": key}, put_value(packed))
                if created_us is not None:  # an extended put: replaying it needs its options
                    put["expire_us"] = expire_us
                    put["metadata"] = metadata
                ops.append(put)
        if namespace is None:  # a whole-store export: the tx's stream runs too
            ops += stream_transfer.history_ops(txn, dbs, tx, txlog.stream_runs_of(txn, dbs, tx))
        if ops or namespace is None:
            rows.append({"tx": tx, "time_us": time_us, "time": schema.time_of(time_us).isoformat(), "note": note,
                         "ops": ops})
    return rows


def export_history(store: Store, namespace: str | None = None, *, since: int = 0, until: int | None = None,
                   progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The header, then one dict per tx in ``(since, until]`` (until: the latest tx if None).

    With ``namespace`` (which must have existed once: ``NAMESPACE_NOT_FOUND``), only txs that
    touched it, with only its operations (their tx numbers then have gaps: import such a history
    with ``renumber=True``). ``TX_COMPACTED`` (raised at the call) if ``since + 1`` is below the
    compaction horizon; the error's ``horizon`` says where a history can start (``since =
    horizon - 1``). The header's ``namespaces`` lists the namespaces at ``until`` (None unless it
    is the latest tx).
    """
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.history_export import export_history as on_etcd  # the etcd backend imports this module

        return on_etcd(store, namespace, since=since, until=until, progress=progress)
    NotSupported.unless_lmdb(store, "export_history")
    if namespace is not None:
        check_namespace(namespace)
        _check_exists(store, namespace, latest=False)
    check_tx(since, "since")
    backend = store._backend

    def ends(txn: Any) -> tuple[int, list[str] | None, list[str] | None]:
        end = resolve_tx(txn, backend.meta, until)
        latest = schema.get_u64(txn, backend.meta, schema.LATEST_TX)
        at_end = end == latest and namespace is None
        return (end, (_namespace_names(store, txn, namespace) if end == latest else None),
                stream_transfer.names(txn, backend.dbs) if at_end else None)

    end, names, stream_names = backend.read(ends)
    if since > end:
        raise InvalidParameters(f"since ({since}) is after until ({end})", parameter="since")
    backend.read(lambda txn: _history_rows(store, txn, since + 1, since + 1, None))  # the horizon check
    header = {"format": FORMAT, "version": VERSION, "mode": "history", "namespace": namespace, "since": since,
              "until": end, "txs": end - since, "namespaces": names, "streams": stream_names}
    return _history_iter(store, header, namespace, since, end, progress)


def _history_iter(store: Store, header: dict[str, Any], namespace: str | None, since: int, end: int,
                  progress: Progress | None) -> Iterator[dict[str, Any]]:
    yield header
    backend = store._backend
    for start in range(since + 1, end + 1, HISTORY_CHUNK):
        stop = min(start + HISTORY_CHUNK, end + 1)

        def chunk(txn: Any, start: int = start, stop: int = stop) -> list[dict[str, Any]]:
            return _history_rows(store, txn, start, stop, namespace)

        yield from backend.read(chunk)
        if progress is not None:
            progress(stop - since - 1, end - since)


def export(store: Store, namespace: str | None = None, *, tx: int | None = None, history: bool = False,
           since: int = 0, progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """:func:`export_history` (``history=True``; ``tx`` is then the last tx, ``since`` the tx
    after which it starts) or :func:`export_snapshot` of ``namespace`` at ``tx``."""
    if history:  # a store on etcd: export_history and export_snapshot say what it supports
        return export_history(store, namespace, since=since, until=tx, progress=progress)
    if since:
        raise InvalidParameters("since applies to history exports", parameter="since")
    if namespace is None:
        raise InvalidParameters("a snapshot export needs a namespace", parameter="namespace")
    return export_snapshot(store, namespace, tx=tx, progress=progress)


# -- import -------------------------------------------------------------------------------------


def _write_many(store: Store, pending: list[tuple[Batch | list[events.StreamRun], dict[str, Any] | None,
                                                 tuple[int, int] | None]], sync: bool | None) -> list[int]:
    """Commit several batches, each as its own tx, in one LMDB write transaction; return the txs
    taken (a batch of only no-op deletes, when not replayed, takes none)."""
    meta = store._backend.meta

    def run(txn: Any) -> list[int]:
        out = []
        for batch, note, replay in pending:
            before = schema.get_u64(txn, meta, schema.LATEST_TX)
            if isinstance(batch, list):  # a stream tx (a publish or a drop)
                out.append(events.apply_runs(store, txn, batch, note, replay))
                continue
            # A replay writes exactly what it is given; a new tx drops no-op deletes as any write does.
            tx = apply_batch(store, txn, batch, note, replay, skip_noops=replay is None)
            if tx > before:
                out.append(tx)
        return out
    return store._backend.write(run, sync=sync)


class _Writer:
    """Collects batches and writes them, several per LMDB transaction.

    If a group fails (a replayed tx out of sequence, a full disk), its batches are written again
    one per transaction, so every tx before the bad one is kept and the error names its row.
    """

    def __init__(self, store: Store, sync: bool | None, progress: Progress | None, total: int | None) -> None:
        self.store, self.sync, self.progress, self.total = store, sync, progress, total
        self.pending: list[tuple[Batch | list[events.StreamRun], dict[str, Any] | None, tuple[int, int] | None]] = []
        self.rows: list[int] = []
        self.ops = self.items = self.done = self.txs = self.first = self.last = 0
        self.started = time.perf_counter()

    def add(self, batch: Batch | list[events.StreamRun], note: dict[str, Any] | None, replay: tuple[int, int] | None,
            done: int, row: int) -> None:
        self.pending.append((batch, note, replay))
        self.rows.append(row)
        n = sum(len(r.records) for r in batch) if isinstance(batch, list) else sum(len(r.keys) for r in batch.runs)
        self.ops += n
        self.items += n
        self.done += done
        if self.ops >= OPS_PER_WRITE:
            self.flush()

    def _written(self, txs: list[int]) -> None:
        if not txs:
            return
        self.first = self.first or txs[0]
        self.last = txs[-1]
        self.txs += len(txs)

    def flush(self) -> None:
        if not self.pending:
            return
        pending, rows = self.pending, self.rows
        self.pending, self.rows, self.ops = [], [], 0
        try:
            self._written(_write_many(self.store, pending, self.sync))
        except EngineError:
            for one, row in zip(pending, rows, strict=True):
                try:
                    self._written(_write_many(self.store, [one], self.sync))
                except EngineError as exc:
                    raise _row_error(row, exc) from None
            raise  # pragma: no cover - the group failed but no single batch did
        if self.progress is not None:
            self.progress(self.done, self.total)

    def report(self) -> ImportReport:
        self.flush()
        return ImportReport(self.first, self.last, self.txs, self.items, time.perf_counter() - self.started)


def _row_error(index: int, exc: EngineError) -> EngineError:
    details = {k: v for k, v in exc.details.items() if k != "row"}
    return type(exc)(f"row {index}: {exc.message}", row=index, **details)


class _SnapshotBatch:
    """The put and clear runs of one snapshot-import tx."""

    def __init__(self, namespace: str, limits: Any) -> None:
        self.namespace, self.limits = namespace, limits
        self.put, self.clear = Run(namespace, PUT), Run(namespace, CLEAR)
        self.seen: set[str] = set()

    def add(self, row: Any) -> None:
        if type(row) is not dict:
            raise InvalidParameters("each row must be a JSON object")
        key = row.get("key")
        raw = key_bytes(key, self.limits.max_key_bytes)
        assert type(key) is str
        if key in self.seen:
            raise InvalidParameters(f"key {key!r} appears twice in one snapshot", key=key)
        self.seen.add(key)
        if row.get("cleared"):
            self.clear.keys.append(key)
            self.clear.raws.append(raw)
            return
        packed = pack_value(_value_of(row))
        if len(packed) > self.limits.max_value_bytes:
            raise ValueTooLarge(f"value is {len(packed)} bytes encoded; the limit is {self.limits.max_value_bytes}")
        self.put.keys.append(key)
        self.put.raws.append(raw)
        self.put.packed.append(packed)
        _put_options(self.put, row, self.limits)

    def batch(self) -> Batch:
        return Batch([run for run in (self.put, self.clear) if run.keys])


def snapshot_import_args(rows: Iterable[dict[str, Any]], namespace: str | None, batch: Any,
                         note: dict[str, Any] | None, total: int | None, limits: Limits
                         ) -> tuple[Iterable[dict[str, Any]], int, str, dict[str, Any] | None, int | None]:
    """A snapshot import's arguments checked (any backend's): the rows after the header, the first
    one's row number, and the namespace, note and total to use (the header's when not given)."""
    header, body, start = _split_header(rows)
    if header is not None:
        _check_header(header, "snapshot")
        namespace = namespace or header.get("namespace")
        total = total if total is not None else header.get("count")
    if namespace is None:
        raise InvalidParameters("import_snapshot needs a namespace (none given, no header)", parameter="namespace")
    check_namespace(namespace)
    if type(batch) is not int or not 1 <= batch <= limits.max_batch:
        raise InvalidParameters(f"batch must be 1 to {limits.max_batch}", parameter="batch")
    return body, start, namespace, txlog.check_note(note, limits.max_note_bytes), total


def import_snapshot(store: Store, rows: Iterable[dict[str, Any]], *, namespace: str | None = None,
                    batch: int = 1000, note: dict[str, Any] | None = None, sync: bool | None = False,
                    progress: Progress | None = None, total: int | None = None) -> ImportReport:
    """Write the records of a snapshot export into ``namespace`` (default: the header's), ``batch``
    records per tx. Records with ``"cleared": true`` are written as clears. Returns what was written.
    The namespace is created (no tx) if it does not exist, even when there is no record.

    Atomic per tx, not as a whole: after a failure, the txs already written stay (the error's
    ``details["row"]`` says where to resume). A store on etcd checks every row before it writes
    anything and splits a tx that does not fit one etcd txn (:mod:`engine.etcd.snapshot`).
    ``sync=False`` (default) skips the per-write flush;
    with ``sync`` None or True the import is flushed to disk before returning.
    """
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.snapshot import import_snapshot as on_etcd  # the etcd backend imports this module

        return on_etcd(store, rows, namespace=namespace, batch=batch, note=note, progress=progress, total=total)
    NotSupported.unless_lmdb(store, "import_snapshot")
    body, start, namespace, note, total = snapshot_import_args(rows, namespace, batch, note, total, store.limits)
    writer = _Writer(store, sync, progress, total)
    current = _SnapshotBatch(namespace, store.limits)
    for index, row in enumerate(body, start=start):
        try:
            current.add(row)
        except EngineError as exc:
            writer.flush()
            raise _row_error(index, exc) from None
        if len(current.seen) >= batch:
            writer.add(current.batch(), note, None, len(current.seen), index)
            current = _SnapshotBatch(namespace, store.limits)
    if current.seen:
        writer.add(current.batch(), note, None, len(current.seen), index)
    report = writer.report()
    store._backend.write(lambda txn: _create_missing(store, txn, [namespace]))  # also for no record
    if sync is None or sync:
        store.sync()
    return report


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def _split_header(rows: Iterable[dict[str, Any]]) -> tuple[dict[str, Any] | None, Iterator[dict[str, Any]], int]:
    """(the header or None, the data rows, the row index of the first data row)."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return None, it, 0
    if type(first) is dict and "format" in first:
        return first, it, 1
    return None, _chain(first, it), 0


def _check_header(header: dict[str, Any], mode: str) -> None:
    if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
        raise InvalidParameters(f"not a {FORMAT} header of version {' or '.join(map(str, READABLE_VERSIONS))}: "
                                f"{header!r}", parameter="header")
    if header.get("mode") != mode:
        raise InvalidParameters(f"this is a {header.get('mode')} export, not a {mode} export", parameter="header")


def _history_batch(row: dict[str, Any], rename: dict[str, str], limits: Any, replay: bool) -> Batch:
    """The runs of one exported tx. A replay keeps ops on no key (``"keys": []``) as empty runs and
    takes ``"ops": []``, so the tx logs what the source's did; otherwise both are left out."""
    ops = row.get("ops")
    if type(ops) is not list:
        raise InvalidParameters("a tx needs a list of ops", parameter="ops")
    runs: list[Run] = []
    seen: set[tuple[str, str]] = set()
    sealed = False  # the last run is a run of no key: the next op starts a run of its own
    for op_row in ops:
        if type(op_row) is not dict:
            raise InvalidParameters("each op must be a JSON object", parameter="ops")
        ns = check_namespace(rename.get(op_row.get("namespace"), op_row.get("namespace")))  # type: ignore[arg-type]
        op = _OPS.get(op_row.get("op"))  # type: ignore[arg-type]
        if op is None:
            raise InvalidParameters(f"op must be put, clear or delete, not {op_row.get('op')!r}", parameter="op")
        if "key" not in op_row and op_row.get("keys") == []:
            if replay:
                runs.append(Run(ns, op))
                sealed = True
            continue
        key = op_row.get("key")
        raw = key_bytes(key, limits.max_key_bytes)
        assert type(key) is str
        if (ns, key) in seen:
            raise InvalidParameters(f"key {key!r} of {ns!r} appears twice in one tx", key=key)
        seen.add((ns, key))
        if sealed or not runs or runs[-1].namespace != ns or runs[-1].op != op:
            runs.append(Run(ns, op))
            sealed = False
        run = runs[-1]
        run.keys.append(key)
        run.raws.append(raw)
        if op == PUT:
            packed = pack_value(_value_of(op_row))
            if len(packed) > limits.max_value_bytes:
                raise ValueTooLarge(f"value is {len(packed)} bytes encoded; the limit is {limits.max_value_bytes}")
            run.packed.append(packed)
            _put_options(run, op_row, limits)
    return Batch(runs)


def _put_options(run: Run, op_row: dict[str, Any], limits: Any) -> None:
    """The expiry and metadata of an imported put (a history op or a snapshot row), if any."""
    if "expire_us" in op_row or "metadata" in op_row:
        expire_us, metadata = op_row.get("expire_us"), op_row.get("metadata")
        if expire_us is not None and (type(expire_us) is not int or not 0 <= expire_us < 1 << 64):
            raise InvalidParameters(f"expire_us must be microseconds, not {expire_us!r}", parameter="expire_us")
        if metadata is not None:
            expiry.check_metadata(metadata, limits.max_metadata_bytes)
        if run.opts is None:
            run.opts = [None] * (len(run.keys) - 1)
        run.opts.append((None, expire_us, metadata))
    elif run.opts is not None:
        run.opts.append(None)


def import_history(store: Store, rows: Iterable[dict[str, Any]], *, renumber: bool = False,
                   rename: dict[str, str] | None = None, sync: bool | None = False,
                   progress: Progress | None = None, total: int | None = None) -> ImportReport:
    """Replay the txs of a history export, in order.

    Without ``renumber``, tx ``n`` of the export must become tx ``n`` here (so the store must be at
    tx ``n - 1``: import a whole-store history into an empty store) and keeps its commit time and
    note: the hash chain, and ``head()``, come out identical. With ``renumber``, each tx is
    committed as the next one, now, with its note, as an ordinary write: deletes that change
    nothing here are left out, and a tx left with nothing takes no tx. ``rename`` maps namespace
    names (which changes the hashes). A failing row raises with ``details["row"]``; the txs before
    it stay written. A header whose ``since`` is above the store's latest tx is refused up front
    unless ``renumber`` (see the module docstring).

    The header's ``namespaces`` (the list at the export's end) is applied once every tx is in,
    without taking a tx: missing namespaces are created; existing ones not in the list that hold
    no live key are dropped. Its scope is the exported namespace (renamed) for a one-namespace
    export, else the whole store, where only a replay (not ``renumber``) drops.
    """
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.replay import import_history as on_etcd  # the etcd backend imports this module

        return on_etcd(store, rows, renumber=renumber, rename=rename, progress=progress, total=total)
    NotSupported.unless_lmdb(store, "import_history")
    rename = rename or {}
    limits = store.limits
    header, body, start = _split_header(rows)
    if header is not None:
        _check_header(header, "history")
        total = total if total is not None else header.get("txs")
        _check_since(store, header, renumber)
    writer: _Writer | None = None
    for index, row in enumerate(body, start=start):
        if writer is None:
            writer = _Writer(store, sync, progress, total)
        try:
            batch, note, replay = history_entry(row, rename, limits, renumber)
        except EngineError as exc:
            writer.flush()
            raise _row_error(index, exc) from None
        writer.add(batch, note, replay, 1, index)
    report = writer.report() if writer is not None else ImportReport(0, 0, 0, 0, 0.0)
    if header is not None:
        _apply_namespaces(store, header, rename, renumber)
        if type(header.get("streams")) is list and (renumber or header.get("until") == store.latest_tx):
            stream_transfer.apply_names(store, header["streams"], may_drop=not renumber)
    if sync is None or sync:
        store.sync()
    return report


def history_entry(row: Any, rename: dict[str, str], limits: Any, renumber: bool
                  ) -> tuple[Batch | list[events.StreamRun], dict[str, Any] | None, tuple[int, int] | None]:
    """One row of a history export, validated: its batch (a stream tx's runs for a stream tx), its
    note and, unless ``renumber``, ``(tx, time_us)`` to replay it at. Shared by both backends' imports."""
    if type(row) is not dict:
        raise InvalidParameters("each row must be a JSON object")
    batch: Batch | list[events.StreamRun]
    if stream_transfer.is_stream_tx(row.get("ops")):
        batch = stream_transfer.parse_ops(row["ops"], limits)
    else:
        batch = _history_batch(row, rename, limits, not renumber)
    note = txlog.check_note(row.get("note"), limits.max_note_bytes)
    if renumber:
        return batch, note, None
    tx, time_us = row.get("tx"), row.get("time_us")
    if type(tx) is not int or type(time_us) is not int:
        raise InvalidParameters("a replayed tx needs integer tx and time_us", parameter="tx")
    return batch, note, (tx, time_us)


def _check_since(store: Store, header: dict[str, Any], renumber: bool) -> None:
    since = header.get("since")
    if renumber or type(since) is not int or since <= 0:
        return
    latest = store.latest_tx
    if latest < since:
        raise InvalidParameters(
            f"row 0: this history starts after tx {since}; replaying keeps its tx numbers, so it continues a "
            f"store at tx {since} (a copy of the source up to it), and this store is at tx {latest}: the txs "
            f"up to {since} and the keys they wrote are not in the export. Import it with renumber "
            "(strata import --renumber) to commit its txs as new ones", parameter="since", row=0, since=since,
            latest_tx=latest)


def _create_missing(store: Store, txn: Any, names: Iterable[str]) -> None:
    """Create (or bring back) each of ``names`` that does not exist, without a tx."""
    namespaces = store._backend.namespaces
    now = store._now_us()  # only the namespace's created_at: the tx clock's floor is left alone
    for name in sorted(names):
        raw = txn.get(name.encode(), db=namespaces)
        if raw is None or schema.NamespaceEntry.decode(raw).dropped:
            txn.put(name.encode(), store._entry_for_write(txn, name, now).encode(), db=namespaces)


def _apply_namespaces(store: Store, header: dict[str, Any], rename: dict[str, str], renumber: bool) -> None:
    """Make the namespace list match the header's ``namespaces`` within the export's scope."""
    wanted = header.get("namespaces")
    if type(wanted) is not list:
        return  # a version 1 export, or one that does not end at the source's latest tx
    exported = header.get("namespace")
    if not renumber and exported is None and header.get("until") != store.latest_tx:
        return  # a partial replay (more rows to come): the list describes the end
    names = {check_namespace(rename.get(n, n)) for n in wanted}
    scope = None if exported is None else {rename.get(exported, exported)}
    may_drop = scope is not None or not renumber
    backend = store._backend

    def run(txn: Any) -> None:
        _create_missing(store, txn, names)
        if not may_drop:
            return
        for raw_name, raw in list(txn.cursor(db=backend.namespaces)):
            name = bytes(raw_name).decode()
            entry = schema.NamespaceEntry.decode(raw)
            if (entry.dropped or name in names or (scope is not None and name not in scope)
                    or live_keys(txn, backend.latest, ns_prefix(entry.id))):
                continue
            entry.dropped, entry.key_count, entry.size_bytes = True, 0, 0
            txn.put(raw_name, entry.encode(), db=backend.namespaces)
    backend.write(run)


def import_rows(store: Store, rows: Iterable[dict[str, Any]], *, namespace: str | None = None,
                renumber: bool = False, sync: bool | None = False,
                progress: Progress | None = None) -> ImportReport:
    """Import an export whose first row is its header: a snapshot (into ``namespace`` or the
    header's) or a history (``namespace`` then renames the exported one)."""
    it = iter(rows)  # a store on etcd: import_history and import_snapshot say what it supports
    header = next(it, None)
    if header is None:
        return ImportReport(0, 0, 0, 0, 0.0)
    if type(header) is not dict or header.get("format") != FORMAT:
        raise InvalidParameters(f"the first row is not a {FORMAT} header", parameter="header", row=0)
    if header.get("mode") == "snapshot":
        return import_snapshot(store, _chain(header, it), namespace=namespace, sync=sync, progress=progress)
    rename = {header["namespace"]: namespace} if namespace and header.get("namespace") else None
    return import_history(store, _chain(header, it), renumber=renumber, rename=rename, sync=sync, progress=progress)


__all__ = ["ImportReport", "export", "export_history", "export_snapshot", "import_history", "import_rows",
           "import_snapshot"]
