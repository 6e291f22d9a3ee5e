"""A namespace: one keyspace of a store, like Litebase's ``{storage}``."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from . import one_key
from .codec import CLEAR, DELETE, MARK, unpack_value
from .conditions import expects_of
from .encoding import TX_LEN, TX_MAX
from .errors import BatchTooLarge, InvalidParameters, TxCompacted
from .expiry import ReadView, check_fields, latest_eval_us, tx_time
from .history import Change, Version, diff, history
from .idempotency import Claim
from .proved_read import ProvedRead, proved_read
from .records import Item, NamespaceInfo, ReadResult, Record
from .revert import RevertResult, revert
from .scan import Scan
from .snapshot import (
    check_readable,
    read_batch,
    read_batch_at,
    read_keys,
    read_one,
    read_one_at,
    resolve_read,
    resolve_tx,
)
from .txlog import check_note
from .txn import commit, prepare_keys, prepare_puts
from .validation import check_prefix, check_tx, key_bytes, time_us

if TYPE_CHECKING:
    from .backend import Backend
    from .store import Store

#: Builds a NamedTuple from a full tuple without its Python-level ``__new__`` (hot paths).
_new = tuple.__new__
_u64 = struct.Struct(">Q")
_u64_pack, _u64_from = _u64.pack, _u64.unpack_from  # a version key's inv_tx, built and read without a call


def _read_single(backend: Backend, store: Store, name: str, key: str, raw: bytes, tx: Any, at_us: int | None,
                 metadata: bool, fields: frozenset[str], txn: Any) -> ReadResult:
    """``read([key])``: the snapshot's tx, then the key as :func:`~engine.snapshot.read_one_at` reads it."""
    if at_us is None:
        snap = resolve_read(backend, txn, tx)
        newest = snap == backend.read_txs(txn)[0]  # remembered for this snapshot by resolve_read
    else:
        snap = resolve_tx(txn, backend.meta, tx, at_us, backend.dbs)
        newest = False
    rec = read_one_at(backend, store, name, key, raw, snap, txn, metadata, fields, tx is None and at_us is None,
                      newest)
    return _new(ReadResult, ([] if rec is None else [rec], snap))


#: What :func:`_seek_plain` returns when the general path must answer.
_GENERAL = object()


def _seek_plain(store: Store, key: str, raw: bytes, tx: int, head: tuple[bytes, bytes]) -> Record | object | None:
    """``get(key, tx=tx)`` of a short key without NUL (``raw``, its UTF-8 bytes, already checked;
    ``head``, the namespace's ``(prefix, 00 00)``) whose version at ``tx`` is a plain put (or that
    has none): one seek among the versions in one backend call, :func:`resolve_read`'s errors for
    ``tx``; :data:`_GENERAL` for anything else (the general path then answers)."""
    # Why not the general path: its layers (read, read_one, resolve_read, read_one_at) cost about as
    # much as the seek, and a read at an old tx should cost what a read at the latest does.
    kp = raw.join(head)
    backend = store._backend
    found, latest, horizon = backend.seek(backend.versions, kp + _u64_pack(TX_MAX - tx))  # kp | inv_tx(tx)
    if tx > latest:
        check_readable(tx, latest)  # raises FUTURE_TX (the callers checked tx is an int >= 0)
    if tx < horizon:
        raise TxCompacted(f"tx {tx} was compacted away: the oldest readable tx is {horizon}", tx=tx, horizon=horizon)
    if found is None or not found[0].startswith(kp):
        return None
    try:  # a plain put's record is one msgpack value; any other starts with C1, which msgpack never emits
        value = unpack_value(found[1])
    except ValueError:
        return _GENERAL  # not a plain put: expiry and the rest need the read's view
    return _new(Record, (key, value, TX_MAX - _u64_from(found[0], -TX_LEN)[0], type(value) is bytes, False,
                         None, None, None, None))


class Namespace:
    """Reads and writes of one namespace. Get one with :meth:`Store.namespace`.

    Every write call is one transaction and returns its tx. Every read sees exactly one tx:
    ``tx=None`` is the latest committed (reported in the result), an explicit ``tx`` returns the
    same answer forever. A namespace that was never written reads as empty.

    Write options: ``note`` (a JSON object up to 4 KiB, kept in the tx log) and ``sync``
    (``None``: the store's default; ``False``: skip the final disk flush, for bulk loads).

    Expiry and metadata (see :mod:`engine.expiry`): ``put`` takes ``ttl`` (seconds from the
    commit), ``expiration`` (epoch seconds; ``ttl`` wins if both) and ``metadata`` (JSON up to
    1 KiB) for the whole batch, and :class:`Item` carries the same per item. Reads take
    ``metadata=True`` and ``fields=["created_at", "updated_at", "expire_time"]`` to fill those
    fields of each :class:`Record`; expired values are never returned.
    """

    __slots__ = ("_store", "name")

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # -- writes -------------------------------------------------------------------------------

    def put(self, items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]], *,
            note: dict[str, Any] | None = None, sync: bool | None = None, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None, expect: Mapping[str, int] | None = None,
            idempotency: Claim | None = None) -> int:
        """Store values: a ``{key: value}`` mapping or an iterable of :class:`Item`. Returns the tx.

        ``ttl`` (seconds from the commit, >= ``Limits.min_ttl``), ``expiration`` (epoch seconds,
        ignored if ``ttl`` is given) and ``metadata`` (any JSON, <= ``Limits.max_metadata_bytes``)
        apply to every item that does not set its own (an :class:`Item`'s ``ttl``/``expiration``
        replace both batch options; its ``metadata`` replaces the batch's).

        Every write method also takes ``expect={key: tx}``: commit only if each key's record at
        the latest tx has that tx (0: no record), else raise ``CONFLICT`` and write nothing (see
        :mod:`engine.conditions`); and ``idempotency``, a :class:`~engine.idempotency.Claim` that
        makes a retry answer what the first attempt answered (see :mod:`engine.idempotency`).
        """
        store = self._store
        if (type(items) is dict and len(items) == 1 and note is None and ttl is None and expiration is None
                and metadata is None and expect is None and idempotency is None):  # the commonest write
            one = one_key.prepare(items, store.limits)
            if one is not None:
                return one_key.commit(store, self.name, *one, sync)
        note = check_note(note, store.limits.max_note_bytes)
        options = None
        if ttl is not None or expiration is not None or metadata is not None:
            options = (ttl, expiration, metadata)
        batch = prepare_puts(self.name, items, store.limits, options, store._now_us)
        batch.expects = expects_of(self.name, expect, store.limits)
        return commit(store, batch, note=note, sync=sync, idempotency=idempotency)

    def clear(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
              expect: Mapping[str, int] | None = None, idempotency: Claim | None = None) -> int:
        """Clear values: each key stays, with no value (reads return ``cleared=True``). Returns the tx.
        ``expect`` and ``idempotency`` as for :meth:`put`."""
        return self._keys(keys, CLEAR, note, sync, expect, idempotency)

    def delete(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
               expect: Mapping[str, int] | None = None, idempotency: Claim | None = None) -> int:
        """Delete keys: later snapshots leave them out; earlier ones still have them. Returns the tx.
        ``expect`` and ``idempotency`` as for :meth:`put`."""
        return self._keys(keys, DELETE, note, sync, expect, idempotency)

    def _keys(self, keys: Iterable[str], op: int, note: dict[str, Any] | None, sync: bool | None,
              expect: Mapping[str, int] | None, idempotency: Claim | None) -> int:
        store = self._store
        note = check_note(note, store.limits.max_note_bytes)
        batch = prepare_keys(self.name, keys, op, store.limits)
        batch.expects = expects_of(self.name, expect, store.limits)
        return commit(store, batch, note=note, sync=sync, idempotency=idempotency)

    # -- reads --------------------------------------------------------------------------------

    def read(self, keys: Iterable[str], *, tx: int | None = None, at: datetime | float | None = None,
             metadata: bool = False, fields: Iterable[str] | None = None) -> ReadResult:
        """Records of ``keys`` at ``tx``, in request order, each key once, absent (and expired)
        keys left out.

        ``at`` (an aware datetime or epoch seconds) reads at the last tx committed at or before
        that time instead; the result's ``tx`` says which (0 if none). ``metadata=True`` fills
        ``Record.metadata``; ``fields`` (any of ``created_at``, ``updated_at``, ``expire_time``)
        fills those fields.
        """
        # The lean paths of a plain read (a list of short keys, no at, metadata or fields); each
        # falls back to the general path (_read) for anything it does not answer, which also raises.
        # Kept free of closures: a function that defines one pays for its cells on every call.
        if type(keys) is list and at is None and fields is None and not metadata:
            store = self._store
            if len(keys) != 1:
                result = read_batch(store._backend, store, self.name, keys) if tx is None else \
                    read_batch_at(store._backend, store, self.name, keys, tx)
                if result is not None:
                    return result
            elif type(key := keys[0]) is str and (head := store._heads.get(self.name)) is not None:
                try:
                    raw = key.encode()
                except UnicodeEncodeError:
                    raw = b""  # the general path raises, naming the problem
                if raw and len(raw) <= store._lean_read_max and 0 not in raw:  # read([k]): what get(k) costs
                    if tx is None:
                        backend = store._backend
                        found, latest = backend.get_latest(backend.latest, raw.join(head))
                        if found is None:
                            return _new(ReadResult, ([], latest))
                        if found[1] != MARK:  # a plain put: the entry is msgpack [value, tx] (engine/latest.py)
                            value, vtx = unpack_value(found)
                            return _new(ReadResult, ([_new(Record, (key, value, vtx, type(value) is bytes, False, None,
                                                                    None, None, None))], latest))
                    elif type(tx) is int and 0 <= tx <= TX_MAX:
                        record = _seek_plain(store, key, raw, tx, head)
                        if record is not _GENERAL:
                            return _new(ReadResult, ([] if record is None else [record], tx))
        return self._read(keys, tx, None if at is None else time_us(at), metadata, fields)

    def _read(self, keys: Iterable[str], tx: int | None, at_us: int | None, metadata: bool,
              fields: Iterable[str] | None) -> ReadResult:
        """:meth:`read`, the general way: any keys, tx, time, metadata and fields."""
        store = self._store
        chosen = check_fields(fields)
        unique, raws = self._read_keys(keys)
        backend = store._backend
        name = self.name

        latest = tx is None and at_us is None
        want_metadata = bool(metadata)
        if len(raws) == 1:  # one key: the point-read path get takes
            return backend.read(partial(_read_single, backend, store, name, unique[0], raws[0], tx, at_us,
                                        want_metadata, chosen))

        def run(txn: Any) -> ReadResult:
            snap = resolve_read(backend, txn, tx) if at_us is None else resolve_tx(txn, backend.meta, tx, at_us,
                                                                                   backend.dbs)
            prefix = store._ns_prefix(txn, name)
            if prefix is None or not unique:
                return _new(ReadResult, ([], snap))
            def view() -> ReadView:  # built only if a record needs it (expiry, metadata, fields)
                return ReadView.for_read(txn, backend.dbs, snap, latest, store._now_us, metadata=want_metadata,
                                         fields=chosen)
            # At the snapshot's latest tx (remembered by resolve_read), the latest-version index answers.
            index = backend.latest if at_us is None and snap == backend.read_txs(txn)[0] else None
            records = read_keys(txn, backend.versions, prefix, unique, raws, snap, view, not chosen, index)
            return _new(ReadResult, (records, snap))

        return backend.read(run)

    def _read_keys(self, keys: Iterable[str]) -> tuple[list[str], list[bytes]]:
        """The keys of a read, each once in request order, and their UTF-8 bytes, all checked."""
        if isinstance(keys, str | bytes):
            raise InvalidParameters("keys must be a list of str, not a single string")
        limits = self._store.limits
        unique = list(dict.fromkeys(keys))
        if len(unique) > limits.max_read_keys:
            raise BatchTooLarge(f"{len(unique)} keys in one read; the limit is {limits.max_read_keys}",
                                count=len(unique), limit=limits.max_read_keys)
        max_key = limits.max_key_bytes
        try:
            raws = list(map(str.encode, unique))  # TypeError for a key that is not a str
            if raws and not (all(raws) and max(map(len, raws)) <= max_key):  # all(): no empty key
                raise ValueError
        except (AttributeError, TypeError, ValueError):  # UnicodeEncodeError is a ValueError
            raws = [key_bytes(k, max_key) for k in unique]  # raises, naming the bad key
        return unique, raws

    def proved_read(self, keys: Iterable[str], *, tx: int | None = None, metadata: bool = False,
                    fields: Iterable[str] | None = None) -> ProvedRead:
        """:meth:`read` at ``tx`` (latest if None) with, for every key, the tx of the version the read
        saw and, once per such tx, its canonical log entry and Merkle inclusion path to the head of the
        same snapshot: what a client needs to check each record itself (:mod:`engine.proved_read`).
        ``TX_COMPACTED`` if an entry cannot be rebuilt, ``PROOF_TOO_LARGE`` past ``Limits.max_proof_bytes``."""
        chosen = check_fields(fields)
        unique, raws = self._read_keys(keys)
        return proved_read(self._store, self.name, unique, raws, tx, bool(metadata), chosen)

    def get(self, key: str, *, tx: int | None = None, at: datetime | float | None = None,
            metadata: bool = False, fields: Iterable[str] | None = None) -> Record | None:
        """The record of one key at ``tx`` (latest if None) or time ``at``; None if absent, deleted
        or expired. ``metadata`` and ``fields`` as for :meth:`read`."""
        store = self._store
        head = store._heads.get(self.name)
        if head is not None and type(key) is str and at is None and fields is None and not metadata:
            try:
                raw = key.encode()
            except UnicodeEncodeError:
                raw = b""  # the general path raises, naming the problem
            if raw and len(raw) <= store._lean_key_max and 0 not in raw:
                if tx is None:  # the commonest read of all: one get on the latest-version index, one decode
                    backend = store._backend
                    found = backend.get(backend.latest, raw.join(head))
                    if found is None:
                        return None
                    # A plain put's entry is msgpack [value, tx]; any other has C1 at byte 1, which msgpack
                    # never emits (engine/latest.py), and may need the read's view (expiry): the general path
                    # reads it again. Decoding first and catching the error costs nothing when it does not
                    # raise, where a look at byte 1 cost about 1.5% of the call (callgrind).
                    try:
                        value, vtx = unpack_value(found)
                    except ValueError:
                        pass
                    else:
                        return _new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None))
                elif type(tx) is int and 0 <= tx <= TX_MAX:  # beyond TX_MAX: FUTURE_TX, from the general path
                    record = _seek_plain(store, key, raw, tx, head)
                    if record is not _GENERAL:
                        return record  # type: ignore[return-value]
        return self._get(key, tx, at, metadata, fields)

    def _get(self, key: str, tx: int | None, at: datetime | float | None, metadata: bool,
             fields: Iterable[str] | None) -> Record | None:
        """:meth:`get`, the general way."""
        store = self._store
        if at is not None or type(key) is not str:
            records = self.read([key], tx=tx, at=at, metadata=metadata, fields=fields).records
            return records[0] if records else None
        max_key = store.limits.max_key_bytes
        try:
            raw = key.encode()
        except UnicodeEncodeError:
            raw = b""  # key_bytes below raises, naming the problem
        if not 0 < len(raw) <= max_key:
            key_bytes(key, max_key)
        backend = store._backend
        # The single-key path skips the batch machinery: a point read is the common case.
        if metadata or fields:
            return backend.read(partial(read_one, backend, store, self.name, key, raw, tx, metadata=bool(metadata),
                                        fields=check_fields(fields)))
        return backend.read(partial(read_one, backend, store, self.name, key, raw, tx))

    def scan(self, prefix: str = "", *, tx: int | None = None, after: str | None = None,
             limit: int | None = None, at: datetime | float | None = None, metadata: bool = False,
             fields: Iterable[str] | None = None) -> Scan:
        """Records of keys starting with ``prefix`` at ``tx``, in UTF-8 byte order of keys.

        ``after`` (exclusive) resumes from a previous page's last key; ``limit`` caps the count.
        The returned :class:`~engine.scan.Scan` is iterable and tells the tx it reads in ``.tx``.
        Expired values are skipped (a latest scan evaluates expiry at the time it is created);
        ``metadata`` and ``fields`` as for :meth:`read`.
        """
        chosen = check_fields(fields)
        check_prefix(prefix)
        at_us = None if at is None else time_us(at)
        if after is not None:
            key_bytes(after, self._store.limits.max_key_bytes)
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidParameters(f"limit must be a non-negative integer or None, not {limit!r}",
                                    parameter="limit")
        store = self._store
        backend = store._backend
        latest = tx is None and at_us is None

        def start(txn: Any) -> tuple[int, bytes | None, int]:
            snap = resolve_tx(txn, backend.meta, tx, at_us, backend.dbs)
            when = latest_eval_us(txn, backend.meta, store._now_us()) if latest else tx_time(txn, backend.dbs, snap)
            return snap, store._ns_prefix(txn, self.name), when

        snap, ns, when = backend.read(start)
        return Scan(backend.read, backend.versions, ns, snap, prefix, after, limit, backend.meta, dbs=backend.dbs,
                    eval_us=when, metadata=bool(metadata), fields=chosen, latest_db=backend.latest)

    # -- the past -----------------------------------------------------------------------------

    def history(self, key: str, *, before: int | None = None, after: int | None = None, limit: int = 100,
                order: str = "desc") -> list[Version]:
        """Versions of ``key`` with ``after < tx < before``: tx, commit time, op and value.

        ``order="desc"`` gives newest first (page with ``before=`` the last tx seen), ``"asc"``
        oldest first (page with ``after=``). Costs one seek plus one step per version returned.
        """
        raw = key_bytes(key, self._store.limits.max_key_bytes)
        for name, value in (("before", before), ("after", after)):
            if value is not None:
                check_tx(value, name)
        if type(limit) is not int or not 0 <= limit <= 10_000:
            raise InvalidParameters(f"limit must be an integer from 0 to 10000, not {limit!r}", parameter="limit")
        if order not in ("asc", "desc"):
            raise InvalidParameters(f"order must be 'asc' or 'desc', not {order!r}", parameter="order")
        store = self._store
        backend = store._backend

        def run(txn: Any) -> list[Version]:
            prefix = store._ns_prefix(txn, self.name)
            if prefix is None:
                return []
            return history(txn, backend.dbs, prefix, raw, before=before, after=after, limit=limit,
                           newest_first=order == "desc")

        return backend.read(run)

    def diff(self, from_tx: int, to_tx: int) -> Iterator[Change]:
        """Keys whose content differs between the snapshots at ``from_tx`` and ``to_tx``.

        Streams :class:`~engine.history.Change` in key order; reads only keys the tx log says
        were touched in between, never the whole namespace.
        """
        check_tx(from_tx, "from_tx")
        check_tx(to_tx, "to_tx")
        if from_tx > to_tx:
            raise InvalidParameters(f"from_tx ({from_tx}) is after to_tx ({to_tx})", parameter="from_tx")
        store = self._store
        backend = store._backend
        prefix = backend.read(lambda txn: (resolve_tx(txn, backend.meta, to_tx), resolve_tx(txn, backend.meta, from_tx),
                                           store._ns_prefix(txn, self.name))[2])
        return diff(backend.read, backend.dbs, self.name, prefix, from_tx, to_tx)

    def revert(self, to_tx: int, *, keys: Iterable[str] | None = None, prefix: str | None = None,
               dry_run: bool = False, note: dict[str, Any] | None = None, sync: bool | None = None,
               idempotency: Claim | None = None) -> RevertResult:
        """One new tx after which the namespace (or its ``keys``, or its keys under ``prefix``) reads
        as it did at ``to_tx``: values, binary flags, metadata and expiry times restored, keys
        created since deleted, cleared ones cleared again (see :mod:`engine.revert` for the rule on
        values that have expired since). Takes no tx if nothing differs. ``dry_run=True`` writes
        nothing and returns the changes it would make. ``note`` is kept with a ``"revert"`` member added.
        ``idempotency`` as for :meth:`put` (not with ``dry_run``, which records nothing).
        """
        return revert(self._store, self.name, to_tx, keys=keys, prefix=prefix, dry_run=dry_run, note=note,
                      sync=sync, idempotency=idempotency)

    def info(self) -> NamespaceInfo | None:
        """Key count, size and times at the latest tx; None if the namespace does not exist."""
        return self._store.namespace_info(self.name)
