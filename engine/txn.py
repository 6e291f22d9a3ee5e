"""The write path: validate everything, then commit it as the next tx, all or nothing.

Every write (``Namespace.put/clear/delete``, :class:`Transaction`, dropping a namespace) ends in
:func:`commit`. Inputs are validated and encoded *before* the LMDB write transaction opens, so a
rejected call has nothing to roll back and costs no tx. Inside the transaction the tx counter is
read and incremented; LMDB admits one writer at a time across all processes, so txs are
consecutive and unique with no lock of our own.

**A write that changes nothing takes no tx** (etcd's rule). A delete of a key whose newest stored
version is absent or already a delete is a *no-op*: it is dropped from the write, inside the write
transaction (so the answer is exact even with other processes writing). Puts and clears always
make a version. A write whose operations are all no-ops commits nothing: no tx, no log entry, its
note discarded; it returns the latest tx, at which every key it deletes is indeed absent. A write
with some real operations logs only those. ``expect`` conditions are checked first either way (a
failed one is still :class:`~engine.errors.Conflict`). A key whose newest version is a put that
has expired but whose expiry is not yet recorded (see :mod:`engine.expiry`) is *not* a no-op:
its delete commits a tx, as the expiry sweep would. Reads at every existing tx keep their answers
either way; taking a tx makes the answer's tx one at which the key is absent, while the latest
tx may predate the expiry and still show the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import expiry, one_key, schema, txlog
from . import latest as latest_index
from .codec import (
    CLEAR,
    CLEAR_RECORD,
    DELETE,
    DELETE_RECORD,
    PUT,
    extended_record,
    pack_value,
    pack_values,
    rich_record,
)
from .encoding import SHORT_MAX, TERMINATOR, inv_tx, keypart, ns_prefix, pack_u64, unpack_u64_from
from .errors import (
    BatchTooLarge,
    Conflict,
    DuplicateKey,
    EmptyBatch,
    EngineError,
    InvalidParameters,
    ValueTooLarge,
)
from .idempotency import Claim
from .idempotency import run as run_idempotent
from .latest import FRAMING, HEAD
from .records import Item, Limits
from .snapshot import live_tx
from .validation import check_namespace, check_tx, key_bytes

if TYPE_CHECKING:
    from .store import Store


@dataclass(slots=True)
class Run:
    """Validated operations of one kind on one namespace, as columns (cheap to build and apply).

    ``packed`` holds the encoded values of a put run and is empty for clears and deletes.
    ``opts`` (puts only) is None for a run of plain puts, else one entry per key: None (plain) or
    the validated ``(ttl_us, expire_us, metadata)`` of :func:`engine.expiry.check_opts`.
    """

    namespace: str
    op: int
    keys: list[str] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    packed: list[bytes] = field(default_factory=list)
    opts: list[expiry.Opts | None] | None = None


@dataclass(slots=True)
class Expect:
    namespace: str
    key: str
    raw: bytes
    tx: int


@dataclass(slots=True)
class Batch:
    """What one commit writes (runs, in order) and checks (expects)."""

    runs: list[Run] = field(default_factory=list)
    expects: list[Expect] = field(default_factory=list)


def _raise_item_errors(errors: list[dict[str, Any]], first: EngineError) -> None:
    n = len(errors)
    message = first.message if n == 1 else f"{n} items are invalid; the first: {first.message}"
    raise type(first)(message, errors=errors)


def _item_error(index: int, key: Any, exc: EngineError) -> dict[str, Any]:
    return {"index": index, "key": key if isinstance(key, str) else repr(key), "code": exc.code,
            "message": exc.message}


def _check_size(count: int, limits: Limits) -> None:
    if count == 0:
        raise EmptyBatch("a write needs at least one item")
    if count > limits.max_batch:
        raise BatchTooLarge(f"{count} items in one write; the limit is {limits.max_batch}",
                            count=count, limit=limits.max_batch)


def prepare_puts(namespace: str, items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]],
                 limits: Limits, options: tuple[Any, Any, Any] | None = None,
                 clock: Callable[[], int] | None = None) -> Batch:
    """Validate and encode a put of several items; raise listing every bad item.

    ``options`` is the batch-wide ``(ttl, expiration, metadata)``; :class:`Item` fields override
    it per item (``clock()``: the time in microseconds ``expiration`` is checked against).
    """
    from_mapping = type(items) is dict or isinstance(items, Mapping)  # an ABC check costs ~1 us; dicts skip it
    if type(items) is dict and options is None:  # the commonest batch: no (key, value) tuples at all
        _check_size(len(items), limits)
        run = _plain_run(namespace, list(items), list(items.values()), True, limits)
        return Batch([run]) if run is not None else _prepare_rich(namespace, list(items.items()), True, limits,
                                                                 None, 0)
    pairs: list[Any] = list(items.items()) if from_mapping else list(items)  # type: ignore[union-attr]
    _check_size(len(pairs), limits)
    if options is not None or (not from_mapping and any(type(p) is Item for p in pairs)):
        return _prepare_rich(namespace, pairs, from_mapping, limits, options, clock() if clock else 0)
    try:
        if from_mapping:  # pairs of items(): map with a C function, no bytecode per item
            keys, values = list(map(itemgetter(0), pairs)), list(map(itemgetter(1), pairs))
        else:  # unpacking: ValueError for anything that is not a pair
            keys, values = [key for key, _ in pairs], [value for _, value in pairs]
    except (TypeError, ValueError):
        keys = []
    run = _plain_run(namespace, keys, values, from_mapping, limits) if keys else None
    return Batch([run]) if run is not None else _prepare_rich(namespace, pairs, from_mapping, limits, None, 0)


def _plain_run(namespace: str, keys: list[Any], values: list[Any], unique: bool, limits: Limits) -> Run | None:
    """The run of a valid put of plain items, or None if any doubt (then :func:`_prepare_rich` names
    each bad item): an optimistic pass in C calls (valid batches are the usual case), no bytecode per item."""
    try:
        raws = list(map(str.encode, keys))  # TypeError for non-str keys
        packed = pack_values(values)
        if (set(map(type, keys)) == {str} and min(map(len, raws)) > 0
                and max(map(len, raws)) <= limits.max_key_bytes and max(map(len, packed)) <= limits.max_value_bytes
                and (unique or len(set(keys)) == len(keys))):
            return Run(namespace, PUT, keys, raws, packed)
    except (EngineError, TypeError, ValueError, AttributeError):
        pass
    return None


def _prepare_rich(namespace: str, pairs: list[Any], from_mapping: bool, limits: Limits,
                  options: tuple[Any, Any, Any] | None, now_us: int) -> Batch:
    """A put validated item by item: items that carry an expiry or metadata, or a batch the fast
    pass refused (then it raises, listing every bad item)."""
    batch_ttl, batch_exp, batch_meta = options or (None, None, None)
    run = Run(namespace, PUT, opts=[])
    assert run.opts is not None
    errors: list[dict[str, Any]] = []
    first: EngineError | None = None
    seen: set[str] = set()
    for index, pair in enumerate(pairs):
        key: Any = pair
        try:
            ttl, expiration, metadata = batch_ttl, batch_exp, batch_meta
            if type(pair) is Item:
                key, value = pair.key, pair.value
                if pair.ttl is not None or pair.expiration is not None:
                    ttl, expiration = pair.ttl, pair.expiration
                if pair.metadata is not None:
                    metadata = pair.metadata
            else:
                try:
                    key, value = pair
                except (TypeError, ValueError):
                    raise InvalidParameters("an item must be an Item(key, value) or a (key, value) pair") from None
            raw = key_bytes(key, limits.max_key_bytes)
            packed = pack_value(value)
            if len(packed) > limits.max_value_bytes:
                raise ValueTooLarge(f"value is {len(packed)} bytes encoded; the limit is {limits.max_value_bytes}")
            opts = expiry.check_opts(ttl, expiration, metadata, limits, now_us)
            if not from_mapping and key in seen:
                raise DuplicateKey(f"key {key!r} appears more than once in one write")
            seen.add(key)
            run.keys.append(key)
            run.raws.append(raw)
            run.packed.append(packed)
            run.opts.append(opts)
        except EngineError as exc:
            first = first or exc
            errors.append(_item_error(index, key, exc))
    if first is not None:
        _raise_item_errors(errors, first)
    if not any(o is not None for o in run.opts):
        run.opts = None
    return Batch([run])


def prepare_keys(namespace: str, keys: Iterable[str], op: int, limits: Limits) -> Batch:
    """Validate a clear or delete of several keys."""
    if isinstance(keys, str | bytes):
        raise InvalidParameters("keys must be a list of str, not a single string")
    keys = list(keys)
    _check_size(len(keys), limits)
    run = Run(namespace, op)
    errors: list[dict[str, Any]] = []
    first: EngineError | None = None
    seen: set[str] = set()
    for index, key in enumerate(keys):
        try:
            raw = key_bytes(key, limits.max_key_bytes)
            if key in seen:
                raise DuplicateKey(f"key {key!r} appears more than once in one write")
            seen.add(key)
            run.keys.append(key)
            run.raws.append(raw)
        except EngineError as exc:
            first = first or exc
            errors.append(_item_error(index, key, exc))
    if first is not None:
        _raise_item_errors(errors, first)
    return Batch([run])


def commit(store: Store, batch: Batch, *, note: dict[str, Any] | None, sync: bool | None,
           idempotency: Claim | None = None) -> int:
    """Write ``batch`` as the next tx and return it. Raises :class:`Conflict` if an expect fails.

    Expects are checked first, before anything is written (at the time the tx would commit, so an
    expired value counts as absent exactly when reads stop showing it). Then, if expiries are due,
    up to :data:`engine.expiry.SWEEP_PER_WRITE` of them are recorded as deletes in a tx of their
    own (note ``{"expired": true}``), in the same LMDB transaction. No-op deletes are dropped (see
    the module docstring); if nothing is left, no tx is taken and the latest tx is returned.
    ``idempotency``: see :mod:`engine.idempotency` (a failed expect is recorded and raised).
    """
    expiry_db = store._backend.dbs["expiry"]

    def write(txn: Any) -> int:
        now = store._now_us()
        if batch.expects:  # checked once, here: a refusal writes nothing, not even the expiry sweep below
            _check_expects(store, txn, batch.expects, _commit_time(store, txn, 0, None, now))
        sweep_due(store, txn, expiry_db, now)
        return apply_batch(store, txn, batch, note, now_us=now, skip_noops=True)

    # The cost that bounds a group commit: the operations this write stores (plus the expects it reads).
    runs = batch.runs
    cost = (len(runs[0].keys) if len(runs) == 1 else sum([len(run.keys) for run in runs])) + len(batch.expects)
    return run_idempotent(store, idempotency, write, sync=sync, cost=cost)


def record_due_expiries(store: Store, txn: Any) -> None:
    """:func:`sweep_due` at the store's clock, for the writes that do not go through :func:`commit`
    (stream publishes and drops, namespace drops): every tx that commits at a time past an expiry
    has that expiry recorded before it, so a diff or the change feed across it shows the delete
    that reads at it imply."""
    sweep_due(store, txn, store._backend.dbs["expiry"], store._now_us())


def sweep_due(store: Store, txn: Any, expiry_db: Any, now: int) -> int | None:
    """What every write does first in its write transaction: record up to
    :data:`engine.expiry.SWEEP_PER_WRITE` expiries due at ``now`` as deletes, in a tx of their own
    (note ``{"expired": true}``). Costs one cursor step on the (usually empty) expiry index
    ``expiry_db`` when none is due (:func:`engine.expiry.due`'s check, inlined: every write passes here).

    Returns when the first indexed expiry is due if none was due now (None: the index is empty), or
    0 if some were (what is left is not known)."""
    cur = txn.cursor(expiry_db)  # positional: cheaper than db=
    if not cur.first():
        return None
    due: int = unpack_u64_from(cur.key())[0]
    if due > now:
        return due
    swept, _ = expiry.sweep(store, txn, now, expiry.SWEEP_PER_WRITE)
    if swept is not None:
        apply_batch(store, txn, swept, expiry.EXPIRED_NOTE, now_us=now)
    return 0


def apply_batch(store: Store, txn: Any, batch: Batch, note: dict[str, Any] | None,
                replay: tuple[int, int] | None = None, now_us: int | None = None,
                skip_noops: bool = False) -> int:
    """Write ``batch`` as the next tx inside the write transaction ``txn``; return the tx.

    ``replay=(tx, time_us)`` (imports of an exported history) demands that the next tx is ``tx``
    and commits it at ``time_us`` instead of now, so the hash chain comes out identical; a replay
    writes exactly the runs given, even none or empty ones (txs of stores written before the no-op
    rule). ``skip_noops`` (ordinary writes) drops no-op deletes first and, if nothing is left,
    writes nothing and returns the latest tx. ``batch.expects`` are not checked here: :func:`commit`
    checks them once, before the expiry sweep.
    """
    runs_in = batch.runs
    if replay is None and len(runs_in) == 1 and one_key.applies(runs_in[0]):  # the commonest write, shortened
        return one_key.apply_run(store, txn, runs_in[0], note, store._now_us() if now_us is None else now_us)
    backend = store._backend
    meta, versions = backend.meta, backend.versions
    latest = schema.get_u64(txn, meta, schema.LATEST_TX)
    tx = latest + 1
    now = _commit_time(store, txn, tx, replay, now_us)
    entries: dict[str, schema.NamespaceEntry] = {}

    if skip_noops:
        batch = without_noops(store, txn, batch, now)
        if not batch.runs:
            return latest  # nothing written: not even the clock floor moves
    schema.put_u64(txn, meta, schema.LAST_TIME_US, now)
    if latest == 0:  # a new store: its layout has the latest-version index from the start
        schema.put_u32(txn, meta, schema.LAYOUT, latest_index.LAYOUT)

    putmulti = txn.cursor(db=versions).putmulti
    index = txn.cursor(db=backend.latest)  # each key's newest version (engine/latest.py)
    replace, pop = index.replace, index.pop
    suffix = inv_tx(tx)
    tail = latest_index.tail(tx)
    run_records: list[list[bytes]] = []  # what each run stored, for the tx's chain hash
    for run in batch.runs:
        entry = entries.get(run.namespace) or store._entry_for_write(txn, run.namespace, now)
        entries[run.namespace] = entry
        prefix = ns_prefix(entry.id)
        op = run.op
        plain = _sorted_plain(run, prefix) if run.opts is None and len(run.raws) > 1 else None
        if plain is not None:
            kps, records, sorted_records = plain
        else:
            kps, records = _keyparts_records(txn, backend.dbs, run, prefix, now)
        run_records.append(records)
        # The index entry each version replaces (or a delete removes) is the key's previous newest
        # version if it was live: that keeps the namespace's key_count and size_bytes exact.
        live = 0 if op == DELETE else len(kps)
        size = 0 if op == DELETE else sum(map(len, kps)) + sum(map(len, records))
        if len(kps) == 1:  # one key (the commonest write): the steps below without building lists
            kp, record = kps[0], records[0]
            txn.put(kp + suffix, record, db=versions)
            old = pop(kp) if op == DELETE else replace(kp, HEAD + record + tail)
            if old is not None:
                live -= 1
                size -= len(kp) + len(old) - FRAMING
            entry.key_count += live
            entry.size_bytes += size
            continue
        if plain is None:
            # Sorted, the inserts walk the B-trees in order: each touches pages the previous one just
            # brought into cache, which matters once the store outgrows the CPU caches.
            order = sorted(range(len(kps)), key=kps.__getitem__)
            kps = list(map(kps.__getitem__, order))
            sorted_records = list(map(records.__getitem__, order))
        # map over C functions and putmulti (a C loop): the per-item work is C calls, no bytecode.
        putmulti(zip(map(add, kps, repeat(suffix)), sorted_records, strict=True))
        if op == DELETE:
            olds = list(map(pop, kps))
        else:
            olds = list(map(replace, kps, map(b"".join, zip(repeat(HEAD), sorted_records, repeat(tail)))))
        # An old entry is never empty, so compress() picks exactly the keys that had one.
        had = len(olds) - olds.count(None)  # keys that were live
        live -= had
        size -= sum(map(len, compress(kps, olds))) + sum(map(len, filter(None, olds))) - FRAMING * had
        entry.key_count += live
        entry.size_bytes += size

    for name, entry in entries.items():
        entry.tx = tx
        entry.updated_us = now
        txn.put(name.encode(), entry.encode(), db=backend.namespaces)
    runs = [[r.namespace, r.op, r.keys] for r in batch.runs]
    txlog.append(txn, backend.dbs, tx, now, note, runs, run_records)
    packed_tx = pack_u64(tx)
    txn.put(schema.LATEST_TX, packed_tx, db=meta)
    txn.put(schema.INDEXED_TX, packed_tx, db=meta)  # the latest-version index is exact at tx
    return tx


def _sorted_plain(run: Run, prefix: bytes) -> tuple[list[bytes], list[bytes], list[bytes]] | None:
    """``(keyparts in key order, records in run order, records in key order)`` of a run without
    options whose keys are all short and hold no NUL (almost every batch), else None.

    Such a keypart is ``prefix | key | 00 00``, so the keyparts sort as the keys do (str order is
    UTF-8 byte order; a key that is a prefix of another sorts first either way, as the other's next
    byte is not ``00``): the run is sorted by its keys, which sort about twice as fast as bytes, and
    the keyparts are built in that order, the order the general path sorts them into. The B-tree
    inserts then walk the trees in order, each touching pages the previous one just brought into
    cache. The records in run order are what the tx log and the chain hash take."""
    raws = run.raws
    if max(map(len, raws)) > SHORT_MAX or 0 in b"".join(raws):
        return None
    order = sorted(range(len(raws)), key=run.keys.__getitem__)
    kps = list(map(b"".join, zip(repeat(prefix), map(raws.__getitem__, order), repeat(TERMINATOR))))
    if run.op == PUT:
        return kps, run.packed, list(map(run.packed.__getitem__, order))
    records = [CLEAR_RECORD if run.op == CLEAR else DELETE_RECORD] * len(raws)
    return kps, records, records


def _keyparts_records(txn: Any, dbs: dict[str, Any], run: Run, prefix: bytes,
                      now: int) -> tuple[list[bytes], list[bytes]]:
    """``(keyparts, records)`` of ``run``, in run order, for any run: escaped and long keys (whose
    records carry the full key), puts with an expiry or metadata (extended records, indexed)."""
    op, raws = run.op, run.raws
    kps = [prefix + raw + TERMINATOR if 0 not in raw and len(raw) <= SHORT_MAX else keypart(prefix, raw)
           for raw in raws]
    records = run.packed[:] if op == PUT else [CLEAR_RECORD if op == CLEAR else DELETE_RECORD] * len(raws)
    for i in [i for i, kp in enumerate(kps) if kp[-1] == 1]:  # long keys: records carry the full key
        records[i] = extended_record(op, run.keys[i], run.packed[i] if op == PUT else None)
    if run.opts is not None:  # puts with an expiry or metadata: extended records, indexed
        _rich_records(txn, dbs, run, kps, records, now)
    return kps, records


def _commit_time(store: Store, txn: Any, tx: int, replay: tuple[int, int] | None, now_us: int | None) -> int:
    """The commit time of ``tx``: the replayed one, or now, never before the previous tx's."""
    meta = store._backend.meta
    if replay is not None:
        return txlog.replay_time(txn, meta, tx, *replay)
    return max(store._now_us() if now_us is None else now_us, schema.get_u64(txn, meta, schema.LAST_TIME_US))


def without_noops(store: Store, txn: Any, batch: Batch, now: int) -> Batch:
    """``batch`` without its no-op deletes: keys whose newest version (in ``txn``) is absent or a
    delete. Runs left empty are dropped and neighbours of one namespace and op merged, so the
    runs stay what the tx log and a history export regroup them into."""
    if all(run.op != DELETE for run in batch.runs):
        return batch
    index = store._backend.latest
    runs: list[Run] = []
    for run in batch.runs:
        if run.op == DELETE:
            ns_id = store._ns_id(txn, run.namespace)
            if ns_id is None:
                continue
            prefix = ns_prefix(ns_id)
            # The latest-version index has an entry iff the key's newest version is not a delete. A put
            # that has expired by now is still there: its expiry is not recorded yet, so a delete of it
            # changes what a read at the new tx sees compared with the latest tx.
            keep = [i for i, raw in enumerate(run.raws) if txn.get(keypart(prefix, raw), db=index) is not None]
            if len(keep) < len(run.keys):
                run = Run(run.namespace, DELETE, [run.keys[i] for i in keep], [run.raws[i] for i in keep])
            if not run.keys:
                continue
        if runs and runs[-1].namespace == run.namespace and runs[-1].op == run.op:
            runs[-1] = _merged(runs[-1], run)
        else:
            runs.append(run)
    return Batch(runs, batch.expects)


def _merged(a: Run, b: Run) -> Run:
    """Two runs of one namespace and op as one (``a`` first)."""
    opts: list[expiry.Opts | None] | None = None
    if a.opts is not None or b.opts is not None:
        opts = (a.opts or [None] * len(a.keys)) + (b.opts or [None] * len(b.keys))
    return Run(a.namespace, a.op, a.keys + b.keys, a.raws + b.raws, a.packed + b.packed, opts)


def _rich_records(txn: Any, dbs: dict[str, Any], run: Run, kps: list[bytes], records: list[bytes],
                  now: int) -> None:
    """Replace the records of items with options by extended records; index their expiries."""
    assert run.opts is not None
    for i, opts in enumerate(run.opts):
        if opts is None:
            continue
        ttl_us, expire_us, metadata = opts
        if ttl_us is not None:
            expire_us = now + ttl_us
        kp = kps[i]
        created = expiry.creation_for_write(txn, dbs, kp, now)
        records[i] = rich_record(run.keys[i] if kp[-1] == 1 else None, run.packed[i], expire_us, metadata, created)
        if expire_us is not None:
            expiry.index(txn, dbs, expire_us, kp)


def _check_expects(store: Store, txn: Any, expects: list[Expect], now: int) -> None:
    conflicts = []
    for exp in expects:
        ns_id = store._ns_id(txn, exp.namespace)
        actual = 0 if ns_id is None else live_tx(txn, store._backend.latest, ns_prefix(ns_id), exp.raw, now)
        if actual != exp.tx:
            conflicts.append(
                {"namespace": exp.namespace, "key": exp.key, "expected": exp.tx, "actual": actual}
            )
    if conflicts:
        c = conflicts[0]
        raise Conflict(
            f"{len(conflicts)} expectation(s) failed; key {c['key']!r} in {c['namespace']!r} was last "
            f"changed at tx {c['actual']}, not {c['expected']}",
            conflicts=conflicts,
        )


class Transaction:
    """Several operations on several namespaces, committed as one tx when the ``with`` block ends.

    Operations apply in order; a later operation on the same key replaces an earlier one.
    ``expect(ns, key, tx=N)`` makes the commit conditional: the key's record at the latest tx
    must have tx N (0: the key is absent or deleted), else nothing is written and
    :class:`~engine.errors.Conflict` is raised. An exception inside the block discards
    everything. After a successful block, :attr:`tx` holds the committed tx. ``idempotency``
    makes the commit idempotent (see :mod:`engine.idempotency`).
    """

    def __init__(self, store: Store, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                 idempotency: Claim | None = None) -> None:
        self._store = store
        self._idempotency = idempotency
        self._note = txlog.check_note(note, store.limits.max_note_bytes)
        self._sync = sync
        self._ops: dict[tuple[str, str], tuple[int, bytes, bytes | None, expiry.Opts | None]] = {}
        self._expects: dict[tuple[str, str], Expect] = {}
        self.tx: int | None = None

    def _key(self, namespace: str, key: str) -> bytes:
        if self.tx is not None:
            raise InvalidParameters("this transaction has already committed")
        check_namespace(namespace)
        return key_bytes(key, self._store.limits.max_key_bytes)

    def _add(self, namespace: str, key: str, op: tuple[int, bytes, bytes | None, expiry.Opts | None]) -> None:
        ident = (namespace, key)
        self._ops.pop(ident, None)  # keep application order: the key moves to its latest position
        self._ops[ident] = op
        if len(self._ops) > self._store.limits.max_batch:
            limit = self._store.limits.max_batch
            raise BatchTooLarge(f"more than {limit} operations in one transaction", limit=limit)

    def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None) -> None:
        """Store ``value``; ``ttl``/``expiration``/``metadata`` as for :meth:`Namespace.put`."""
        raw = self._key(namespace, key)
        packed = pack_value(value)
        limits = self._store.limits
        if len(packed) > limits.max_value_bytes:
            raise ValueTooLarge(f"value is {len(packed)} bytes encoded; the limit is "
                                f"{limits.max_value_bytes}", key=key)
        opts = None
        if ttl is not None or expiration is not None or metadata is not None:
            opts = expiry.check_opts(ttl, expiration, metadata, limits, self._store._now_us())
        self._add(namespace, key, (PUT, raw, packed, opts))

    def clear(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (CLEAR, self._key(namespace, key), None, None))

    def delete(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (DELETE, self._key(namespace, key), None, None))

    def expect(self, namespace: str, key: str, *, tx: int) -> None:
        raw = self._key(namespace, key)
        self._expects[(namespace, key)] = Expect(namespace, key, raw, check_tx(tx))

    def commit(self) -> int:
        """Commit now (the ``with`` block does this for you). Returns the tx."""
        if self.tx is not None:
            return self.tx
        if not self._ops:
            raise EmptyBatch("a transaction needs at least one put, clear or delete")
        batch = Batch(expects=list(self._expects.values()))
        for (namespace, key), (op, raw, packed, opts) in self._ops.items():
            if not batch.runs or batch.runs[-1].namespace != namespace or batch.runs[-1].op != op:
                batch.runs.append(Run(namespace, op))
            run = batch.runs[-1]
            if opts is not None and run.opts is None:
                run.opts = [None] * len(run.keys)
            run.keys.append(key)
            run.raws.append(raw)
            if packed is not None:
                run.packed.append(packed)
            if run.opts is not None:
                run.opts.append(opts)
        self.tx = commit(self._store, batch, note=self._note, sync=self._sync, idempotency=self._idempotency)
        return self.tx

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
