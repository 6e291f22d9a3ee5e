"""Revert: one new tx after which a namespace (or some of its keys) reads as it did at a past tx.

``Namespace.revert(to_tx)`` finds the keys the tx log says were touched after ``to_tx`` (as
:func:`engine.history.diff` does: untouched keys are never read), or takes the keys named, compares
each key's version at ``to_tx`` with its newest one, and writes, in one tx, what makes them equal:

* a key absent (or deleted) at ``to_tx`` and live now is deleted;
* a key holding a value at ``to_tx`` gets that value back, with its binary flag, metadata and
  absolute expiry time (``expire_time``), whatever happened to it since;
* a key cleared at ``to_tx`` is cleared again.

**What "reads as at to_tx" means, with expiry.** A read at an explicit tx evaluates expiry at that
tx's commit time, so a read at ``to_tx`` today still shows a value that has expired since. A revert
cannot bring such a value back as it was: its expiry is an absolute time, already past, so the
restored value would be invisible anyway. The rule is therefore: after a revert committed at time
``T``, a latest read shows exactly the records a read at ``to_tx`` shows, minus those whose
``expire_time`` is ``<= T`` (they expired in the meantime, as they would have had nothing been
written). Such a key is deleted if it is live now, and left alone if it is not. Comparisons use what
a latest read shows, so a key whose newest value has expired (its expiry not yet recorded) counts
as absent. ``created_at``/``updated_at`` are not restored (they say when the key's current life
began and when it last changed: at the revert, for what the revert writes), nor is a record's ``tx``.

**The no-op rule.** A revert that changes nothing takes no tx: it returns the latest tx, at
which every key in scope already reads as at ``to_tx``.

**Bounds.** The revert is one tx, so it obeys the store's item limit per tx
(``Limits.max_batch``): a revert that would write more keys than that raises
:class:`~engine.errors.BatchTooLarge` (with the count) before anything is written; revert such a
namespace in parts, by ``prefix`` or ``keys``. The plan is computed inside the write transaction
(so no write of another process can slip between the plan and the commit); it costs one log read
per tx after ``to_tx`` plus two seeks per touched key (with ``keys``: two seeks per key, no log
reads), and holds the store's write lock meanwhile.

**Idempotency.** ``idempotency=`` (a :class:`~engine.idempotency.Claim`) makes a revert's retry
answer the first attempt's :class:`RevertResult` (as :class:`~engine.idempotency.Replay`) and write
nothing. The refusals found inside the write transaction (``FUTURE_TX``, ``TX_COMPACTED``, and
``BATCH_TOO_LARGE`` once the plan exceeds the tx limit) are found before anything is written, even
the expiry sweep, so a claim may record them (``Claim.recorded``). A dry run takes no claim: it
writes nothing, so there is nothing to record (``INVALID_PARAMETERS``).

**The note.** The tx's note is the caller's note (if any) plus a member ``"revert"``:
``{"to_tx": N}`` with the ``prefix`` given, or the number of ``keys`` named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import expiry, schema
from . import idempotency as _idempotency
from .codec import CLEAR, DELETE, PUT, decode_rich, put_value
from .encoding import keypart
from .errors import BatchTooLarge, InvalidParameters
from .history import Change, changed_keys
from .records import Record
from .snapshot import resolve_tx, version_at
from .txlog import check_note
from .txn import Batch, Run, apply_batch, sweep_due
from .validation import check_prefix, check_tx, key_bytes

if TYPE_CHECKING:
    from .store import Store

#: What a key reads as, for comparison: ``(op, packed value, expire_us, metadata)``; None: absent.
Content = tuple[int, bytes | None, int | None, Any]


@dataclass(frozen=True, slots=True)
class RevertResult:
    """What a revert did (or, with ``dry_run``, would do).

    ``tx``: the revert's tx; the latest tx when it changed nothing or was a dry run.
    ``changes``: one :class:`~engine.history.Change` per key it writes, in UTF-8 key order:
    ``before`` is the key's record now, ``after`` its record at ``to_tx`` (whose ``tx`` is the
    version's tx at or before ``to_tx``), both with ``metadata`` and ``expire_time`` filled; ``kind``
    is as in a diff from now to ``to_tx``. ``committed``: whether a tx was written.
    """

    tx: int
    to_tx: int
    changes: list[Change]
    committed: bool

    @property
    def count(self) -> int:
        """The number of keys the revert writes."""
        return len(self.changes)


@dataclass(frozen=True, slots=True)
class _Step:
    """One key to write: its new content (None: delete) and the change a caller is shown."""

    key: str
    raw: bytes
    target: Content | None
    change: Change


def check_request(to_tx: Any, dry_run: Any, idempotency: _idempotency.Claim | None) -> None:
    """``INVALID_PARAMETERS`` for a bad ``to_tx`` or ``dry_run``, or a dry run given an idempotency
    claim (the first checks of a revert, on every backend)."""
    check_tx(to_tx, "to_tx")
    if type(dry_run) is not bool:
        raise InvalidParameters(f"dry_run must be True or False, not {dry_run!r}", parameter="dry_run")
    if dry_run and idempotency is not None:
        raise InvalidParameters("a dry run writes nothing, so it records no idempotency claim: give idempotency "
                                "only to a revert that writes", parameter="idempotency")


def check_scope(keys: Iterable[str] | None, prefix: str | None, max_keys: int,
                max_key_bytes: int) -> tuple[list[str] | None, list[bytes] | None]:
    """The validated ``keys`` (each once, in the order given) and their UTF-8, or ``(None, None)``."""
    if keys is not None and prefix is not None:
        raise InvalidParameters("give keys or prefix, not both", parameter="prefix")
    if prefix is not None:
        check_prefix(prefix)
    if keys is None:
        return None, None
    if isinstance(keys, str | bytes):
        raise InvalidParameters("keys must be a list of str, not a single string", parameter="keys")
    unique = list(dict.fromkeys(keys))
    if not unique:
        raise InvalidParameters("keys must name at least one key (omit it to revert the whole namespace)",
                                parameter="keys")
    if len(unique) > max_keys:
        raise BatchTooLarge(f"{len(unique)} keys in one revert; the limit is {max_keys}", count=len(unique),
                            limit=max_keys)
    return unique, [key_bytes(k, max_key_bytes) for k in unique]


def revert_note(note: Any, to_tx: int, keys: list[str] | None, prefix: str | None,
                max_bytes: int) -> dict[str, Any]:
    """The note of a revert's tx: the caller's (checked as any note) plus ``"revert"``."""
    checked = check_note(note, max_bytes) or {}
    if "revert" in checked:
        raise InvalidParameters('a revert\'s note may not hold a "revert" member: the revert writes it',
                                parameter="note")
    what: dict[str, Any] = {"to_tx": to_tx}
    if prefix is not None:
        what["prefix"] = prefix
    if keys is not None:
        what["keys"] = len(keys)
    return {**checked, "revert": what}


def _content(raw: bytes | None, eval_us: int) -> Content | None:
    """What a version record reads as at time ``eval_us`` (None: deleted, expired or no version)."""
    if raw is None:
        return None
    op, packed, _, expire_us, metadata, _ = decode_rich(raw)
    if op == DELETE or (expire_us is not None and expire_us <= eval_us):
        return None
    if op == CLEAR:
        return CLEAR, None, None, None
    return PUT, packed, expire_us, metadata


def _record(key: str, tx: int, content: Content | None) -> Record | None:
    if content is None:
        return None
    op, packed, expire_us, metadata = content
    expire_time = None if expire_us is None else schema.time_of(expire_us)
    if op == CLEAR:
        return Record(key, None, tx, False, True)
    value = put_value(packed)
    return Record(key, value, tx, type(value) is bytes, False, metadata, None, None, expire_time)


def _kind(before: Content | None, after: Content | None) -> str:
    if before is None:
        return "added"
    if after is None:
        return "deleted"
    return "cleared" if after[0] == CLEAR else "changed"


def plan(store: Store, txn: Any, name: str, to_tx: int, keys: list[str] | None, raws: list[bytes] | None,
         prefix: str | None, eval_us: int) -> list[_Step]:
    """The keys to write so that ``name`` (or its ``keys``, or its keys under ``prefix``) reads at
    time ``eval_us`` as at ``to_tx``; raises :class:`BatchTooLarge` once they exceed the tx limit."""
    backend = store._backend
    dbs = backend.dbs
    resolve_tx(txn, backend.meta, to_tx)  # FUTURE_TX, TX_COMPACTED
    ns = store._ns_prefix(txn, name)
    if ns is None:
        return []
    if keys is None or raws is None:
        latest = schema.get_u64(txn, backend.meta, schema.LATEST_TX)
        keys = [k for k in changed_keys(txn, dbs, name, to_tx, latest) if prefix is None or k.startswith(prefix)]
        raws = [k.encode() for k in keys]
    else:
        order = sorted(range(len(keys)), key=raws.__getitem__)
        keys, raws = [keys[i] for i in order], [raws[i] for i in order]
    limit = store.limits.max_batch
    cur = txn.cursor(db=dbs["versions"])
    steps: list[_Step] = []
    for key, raw in zip(keys, raws, strict=True):
        kp = keypart(ns, raw)
        then = version_at(cur, kp, to_tx)
        target = _content(None if then is None else bytes(then[1]), eval_us)
        found = version_at(cur, kp)
        current = _content(None if found is None else bytes(found[1]), eval_us)
        if target == current:
            continue
        if len(steps) == limit:
            raise BatchTooLarge(f"the revert would write more than {limit} keys, the most one tx may hold; "
                                "nothing was written: revert in parts, by prefix or keys", limit=limit)
        assert found is not None or then is not None
        change = Change(key, _kind(current, target), _record(key, found[0] if found else 0, current),
                        _record(key, then[0] if then else 0, target))
        steps.append(_Step(key, raw, target, change))
    return steps


def batch_of(name: str, steps: list[_Step]) -> Batch:
    """The write that applies ``steps``: a run of puts, one of clears, one of deletes."""
    puts, clears, deletes = Run(name, PUT, opts=[]), Run(name, CLEAR), Run(name, DELETE)
    for step in steps:
        target = step.target
        run = deletes if target is None else puts if target[0] == PUT else clears
        run.keys.append(step.key)
        run.raws.append(step.raw)
        if target is not None and target[0] == PUT:
            _, packed, expire_us, metadata = target
            assert packed is not None and puts.opts is not None
            puts.packed.append(packed)
            plain = expire_us is None and metadata is None
            puts.opts.append(None if plain else (None, expire_us, metadata))
    if puts.opts is not None and all(o is None for o in puts.opts):
        puts.opts = None
    return Batch([run for run in (puts, clears, deletes) if run.keys])


def revert(store: Store, name: str, to_tx: Any, *, keys: Iterable[str] | None = None, prefix: str | None = None,
           dry_run: bool = False, note: dict[str, Any] | None = None, sync: bool | None = None,
           idempotency: _idempotency.Claim | None = None) -> RevertResult:
    """Make namespace ``name`` (or its ``keys``, or its keys under ``prefix``) read as at ``to_tx``
    in one new tx; see the module docstring. ``dry_run=True`` writes nothing and says what it would
    write. Raises ``FUTURE_TX``, ``TX_COMPACTED``, ``BATCH_TOO_LARGE`` or ``INVALID_PARAMETERS``
    before writing anything. ``idempotency``: see the module docstring."""
    check_request(to_tx, dry_run, idempotency)
    limits = store.limits
    chosen, raws = check_scope(keys, prefix, limits.max_batch, limits.max_key_bytes)
    full_note = revert_note(note, to_tx, chosen, prefix, limits.max_note_bytes)
    backend = store._backend

    if dry_run:
        def preview(txn: Any) -> RevertResult:
            eval_us = expiry.latest_eval_us(txn, backend.meta, store._now_us())
            steps = plan(store, txn, name, to_tx, chosen, raws, prefix, eval_us)
            latest = schema.get_u64(txn, backend.meta, schema.LATEST_TX)
            return RevertResult(latest, to_tx, [s.change for s in steps], False)
        return backend.read(preview)

    def write(txn: Any) -> RevertResult:
        now = store._now_us()
        # The revert's commit time, which is also when a latest read right after it evaluates expiry.
        eval_us = expiry.latest_eval_us(txn, backend.meta, now)
        # Planned before the expiry sweep, so that a refusal writes nothing at all. The plan does not
        # depend on the sweep: it counts a value expired at eval_us (>= now) as absent, swept or not.
        steps = plan(store, txn, name, to_tx, chosen, raws, prefix, eval_us)
        sweep_due(store, txn, backend.dbs["expiry"], now)  # as every write does, in a tx of its own
        if not steps:
            return RevertResult(schema.get_u64(txn, backend.meta, schema.LATEST_TX), to_tx, [], False)
        tx = apply_batch(store, txn, batch_of(name, steps), full_note, now_us=eval_us)
        return RevertResult(tx, to_tx, [s.change for s in steps], True)

    # The cost is unknown until planned: it commits alone.
    return _idempotency.run(store, idempotency, write, sync=sync)
