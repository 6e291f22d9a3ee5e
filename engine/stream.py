"""A stream: an append-only log of events on the store's timeline (Litebase's change streams).

Get one with :meth:`Store.stream`. Streams have a name space of their own: stream ``orders`` and
namespace ``orders`` are unrelated. The layout is in :mod:`engine.events`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from . import events, schema
from . import idempotency as _idempotency
from .errors import FutureTx, InvalidParameters, NamespaceExists, NamespaceNotFound, TxCompacted
from .events import Event, StreamInfo, StreamRun
from .txlog import check_note
from .txn import record_due_expiries
from .validation import check_namespace, check_tx

if TYPE_CHECKING:
    from .store import Store

READ_LIMIT_DEFAULT = 1000
READ_LIMIT_MAX = 10_000
_CURSOR = re.compile(r"(\d{1,19})(?::(\d{1,10}))?")


class StreamPage(NamedTuple):
    """A page of events in publish order. ``cursor`` is where the next page starts (pass it as
    ``cursor=``): ``"T:I"`` after event I of tx T when ``more`` events are waiting, else ``"T"``
    with T the last tx the page covered (``end_tx``, or the latest tx when it was read). ``tx`` is
    the latest committed tx when the page was read; ``split`` whether the next event is of the same
    tx as the page's last one (the page ended inside a publish)."""

    events: list[Event]
    cursor: str
    more: bool
    tx: int
    #: Whether the next event is of the same tx as the page's last one (the page split a publish).
    split: bool = False


def parse_cursor(text: Any, name: str = "cursor") -> tuple[int, int | None]:
    """A position ``"T"`` (after every event of tx T) or ``"T:I"`` (after event I of tx T)."""
    m = _CURSOR.fullmatch(text) if type(text) is str else None
    if m is None or int(m.group(1)) >= 1 << 63 or (m.group(2) is not None and int(m.group(2)) >= 1 << 32):
        raise InvalidParameters(f"{name} must be a position \"TX\" or \"TX:INDEX\", not {text!r}"[:200],
                                parameter=name)
    return int(m.group(1)), None if m.group(2) is None else int(m.group(2))


def format_cursor(tx: int, index: int | None) -> str:
    """The text of a position (see :func:`parse_cursor`)."""
    return str(tx) if index is None else f"{tx}:{index}"


def read_start(start_tx: int | None, end_tx: int | None, limit: int,
               cursor: str | None) -> tuple[int, int | None] | None:
    """Check a stream read's arguments (any backend's); where it starts: after ``(tx, index)``
    (index None: after the whole tx), or None for the oldest kept event."""
    if start_tx is not None and cursor is not None:
        raise InvalidParameters("give start_tx or cursor, not both", parameter="cursor")
    after: tuple[int, int | None] | None = None
    if cursor is not None:
        after = parse_cursor(cursor)
    elif start_tx is not None:
        after = (check_tx(start_tx, "start_tx"), None)
    if end_tx is not None:
        check_tx(end_tx, "end_tx")
    if type(limit) is not int or not 1 <= limit <= READ_LIMIT_MAX:
        raise InvalidParameters(f"limit must be an integer from 1 to {READ_LIMIT_MAX}, not {limit!r}",
                                parameter="limit")
    return after


def follow(stream: Any, store: Any, start_tx: int | None, cursor: str | None,
           timeout: float | None) -> Iterator[Event]:
    """:meth:`Stream.follow` for any backend's stream: pages of ``stream.read``, waiting with
    ``store.wait_for`` between them. The first page is read (its bounds checked) at the call."""
    if start_tx is None and cursor is None:
        cursor = str(store.latest_tx)
    first = stream.read(start_tx, cursor=cursor, limit=READ_LIMIT_DEFAULT)
    return _pages(stream, store, first, timeout)


def _pages(stream: Any, store: Any, page: StreamPage, timeout: float | None) -> Iterator[Event]:
    while True:
        yield from page.events
        if not page.more and not store.wait_for(page.tx + 1, timeout):
            return
        page = stream.read(cursor=page.cursor)


class Stream:
    """Publish, read and follow the events of one stream.

    * :meth:`publish` writes a list of events (JSON values or ``bytes``) as one tx and returns it.
      Every event is checked first (``INVALID_VALUE``, ``VALUE_TOO_LARGE``, each listed with its
      index); a rejected publish writes nothing and takes no tx.
    * :meth:`read` returns the events with ``start_tx < tx <= end_tx`` in (tx, index) order, a page
      at a time: a stream never published to (or dropped) reads as empty.
    * :meth:`follow` yields events as they are published, by any process.

    Reads never see events below the compaction horizon (``start_tx`` below ``horizon - 1``:
    ``TX_COMPACTED``) nor events published before the stream was last dropped.
    """

    __slots__ = ("_store", "name")

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"

    def publish(self, items: Iterable[Any], *, note: dict[str, Any] | None = None, sync: bool | None = None,
                idempotency: _idempotency.Claim | None = None) -> int:
        """Publish ``items`` (a list of JSON values or ``bytes``) as one tx; return the tx.
        ``idempotency``: a :class:`~engine.idempotency.Claim` recorded with the publish (a retry under
        its key raises :class:`~engine.idempotency.Replay` and publishes nothing)."""
        store = self._store
        note = check_note(note, store.limits.max_note_bytes)
        run = StreamRun(self.name, events.PUBLISH, events.prepare(items, store.limits))

        def publish(txn: Any) -> int:
            record_due_expiries(store, txn)
            return events.apply_runs(store, txn, [run], note)
        return _idempotency.run(store, idempotency, publish, sync=sync, cost=len(run.records))

    def read(self, start_tx: int | None = None, end_tx: int | None = None, limit: int = READ_LIMIT_DEFAULT, *,
             cursor: str | None = None) -> StreamPage:
        """Events with ``start_tx < tx <= end_tx`` (``start_tx`` None: from the oldest kept;
        ``end_tx`` None: the latest tx), at most ``limit`` (1 to 10,000). ``cursor`` (a page's
        ``cursor``) continues a read instead of ``start_tx``. ``FUTURE_TX`` if a bound is above the
        latest tx."""
        after = read_start(start_tx, end_tx, limit, cursor)
        dbs = self._store._backend.dbs
        return self._store._backend.read(lambda txn: self._page(txn, dbs, after, end_tx, limit))

    def _page(self, txn: Any, dbs: dict[str, Any], after: tuple[int, int | None] | None, end_tx: int | None,
              limit: int) -> StreamPage:
        latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
        horizon = schema.get_u64(txn, dbs["meta"], schema.HORIZON)
        for bound, name in ((after[0] if after else None, "start_tx"), (end_tx, "end_tx")):
            if bound is not None and bound > latest:
                raise FutureTx(f"{name} {bound} is in the future: the latest committed tx is {latest}", tx=bound,
                               latest_tx=latest, parameter=name)
        if after is None:
            after = (max(horizon - 1, 0), None)
        elif after[0] + 1 < horizon:
            raise TxCompacted(f"tx {after[0] + 1} was compacted away: the oldest readable tx is {horizon}",
                              tx=after[0] + 1, horizon=horizon)
        end = latest if end_tx is None else end_tx
        entry = events.entry_of(txn, dbs, self.name)
        found: list[Event] = []
        more = split = False
        if entry is not None and not entry.dropped:
            start = after if after[0] >= entry.base_tx else (entry.base_tx, None)
            found, more, split = events.read_after(txn, dbs, entry.id, start, end, limit)
        if more:
            cursor = format_cursor(found[-1].tx, found[-1].index)
        else:
            cursor = format_cursor(end, None) if end >= after[0] else format_cursor(*after)
        return StreamPage(found, cursor, more, latest, split)

    def follow(self, start_tx: int | None = None, *, cursor: str | None = None,
               timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they are published (by any process), in order.

        Without ``start_tx`` (or ``cursor``), only events published after the call; with it, every
        event after that point first. It ends after ``timeout`` seconds without a new tx (None:
        never; close the iterator to stop). Bounds are checked at the call, not at the first ``next``.
        """
        return follow(self, self._store, start_tx, cursor, timeout)

    def info(self) -> StreamInfo | None:
        """What the stream holds, or None if it does not exist."""
        return stream_info(self._store, self.name)

    def drop(self, *, note: dict[str, Any] | None = None, sync: bool | None = None,
             idempotency: _idempotency.Claim | None = None) -> int:
        """Drop the stream (see :func:`drop_stream`)."""
        return drop_stream(self._store, self.name, note=note, sync=sync, idempotency=idempotency)


def streams(store: Store) -> list[StreamInfo]:
    """Every stream that exists (created or published to, not dropped), by name."""
    dbs = store._backend.dbs

    def run(txn: Any) -> list[StreamInfo]:
        out = []
        for raw_name, raw in txn.cursor(db=dbs["streams"]):
            entry = events.StreamEntry.decode(raw)
            if not entry.dropped:
                out.append(entry.info(bytes(raw_name).decode()))
        return out
    return store._backend.read(run)


def stream_info(store: Store, name: str) -> StreamInfo | None:
    """What stream ``name`` holds, or None if it does not exist."""
    check_namespace(name)
    dbs = store._backend.dbs

    def run(txn: Any) -> StreamInfo | None:
        entry = events.entry_of(txn, dbs, name)
        return None if entry is None or entry.dropped else entry.info(name)
    return store._backend.read(run)


def create_stream(store: Store, name: str, *, idempotency: _idempotency.Claim | None = None) -> StreamInfo:
    """Create an empty stream (no tx is consumed); ``NAMESPACE_EXISTS`` if it exists. ``idempotency``:
    a :class:`~engine.idempotency.Claim` recorded with the creation (``NAMESPACE_EXISTS`` is found
    before anything is written, so a claim may record it)."""
    check_namespace(name)
    dbs = store._backend.dbs

    def run(txn: Any) -> StreamInfo:
        entry = events.entry_of(txn, dbs, name)
        if entry is not None and not entry.dropped:
            raise NamespaceExists(f"stream {name!r} already exists", namespace=name)
        now = max(store._now_us(), schema.get_u64(txn, dbs["meta"], schema.LAST_TIME_US))
        entry = events.entry_for_write(txn, dbs, name, now)
        txn.put(name.encode(), entry.encode(), db=dbs["streams"])
        return entry.info(name)
    return _idempotency.run(store, idempotency, run)


def drop_stream(store: Store, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                idempotency: _idempotency.Claim | None = None) -> int:
    """Forget stream ``name`` and every event in it; return the tx of the drop.

    A stream with events is dropped by a tx of its own (logged, noted, hash-chained); readers
    never see those events again (they stay on disk, in the chain and in history exports, until
    compaction frees them). A stream without events is forgotten without a tx (the latest tx is
    returned, ``note`` discarded). ``NAMESPACE_NOT_FOUND`` if it does not exist (found before
    anything is written: an ``idempotency`` claim may record it, as for :func:`create_stream`).
    """
    check_namespace(name)
    note = check_note(note, store.limits.max_note_bytes)
    dbs = store._backend.dbs

    def drop(txn: Any) -> int:
        entry = events.entry_of(txn, dbs, name)
        if entry is None or entry.dropped:
            raise NamespaceNotFound(f"stream {name!r} does not exist", namespace=name)
        if entry.event_count:
            record_due_expiries(store, txn)
            return events.apply_runs(store, txn, [StreamRun(name, events.DROP_STREAM, [])], note)
        entry.dropped = True
        txn.put(name.encode(), entry.encode(), db=dbs["streams"])
        return schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    return _idempotency.run(store, idempotency, drop, sync=sync)
