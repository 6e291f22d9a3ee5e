"""One namespace of a remote store: the methods of :class:`engine.Namespace`, over HTTP.

Each call is one request (a scan or a long history is several, paged with the server's cursors).
Arguments, return types and exceptions are the engine's; what HTTP cannot express is refused with
:class:`~engine.errors.InvalidParameters` before anything is sent (a condition on a key the same
write does not write, for instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from engine import errors
from engine.history import Change, Version
from engine.records import Item, NamespaceInfo, ReadResult, Record
from engine.revert import RevertResult
from engine.txlog import TxInfo
from engine.validation import check_namespace

from . import shapes, writes
from .pages import RemoteScan

if TYPE_CHECKING:
    from .store import RemoteStore

HISTORY_PAGE = 1000  # the server's largest history page
_PLAIN_RECORD = (False, False, None, None, None, None)  # binary, cleared and the optional fields
CHANGES_PAGE = 1000


def records_of(answer: dict[str, Any]) -> ReadResult:
    """The records of a read answer."""
    # The common record (JSON, not cleared, no optional member) is built inline, as a tuple: this
    # loop runs once per key read and a call per record is a measurable share of a read.
    new, plain, record = tuple.__new__, _PLAIN_RECORD, shapes.record
    return ReadResult([new(Record, (d["key"], d["value"], d["tx"], *plain))
                       if len(d) == 4 and d.get("binary") is False else record(d) for d in answer["data"]],
                      answer["tx"])


def rfc3339(at: datetime | float) -> str:
    """A time argument (aware datetime or epoch seconds) as the RFC 3339 UTC text the API takes."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise errors.InvalidParameters("at must carry a time zone (a naive datetime is ambiguous)",
                                           parameter="at")
        moment = at.astimezone(UTC)
    elif type(at) in (int, float) and at >= 0:
        moment = datetime.fromtimestamp(at, UTC)
    else:
        raise errors.InvalidParameters(f"at must be an aware datetime or non-negative epoch seconds, not {at!r}",
                                       parameter="at")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RemoteNamespace:
    """A namespace of the server at ``store``; see :class:`engine.Namespace` for each method's contract."""

    def __init__(self, store: RemoteStore, name: str) -> None:
        self._store = store
        self._http = store._http
        self.name = check_namespace(name)
        self._path = f"/v4/storage/{quote(self.name, safe='')}"

    def __repr__(self) -> str:
        return f"RemoteNamespace({self.name!r} at {self._http.url})"

    # -- writes -------------------------------------------------------------------------------

    def put(self, items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]], *,
            note: dict[str, Any] | None = None, sync: bool | None = None, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None, expect: Mapping[str, int] | None = None,
            idempotency_key: str | None = None) -> int:
        """Store values (as :meth:`engine.Namespace.put`) and return the tx. ``sync`` is the
        server's to choose and is ignored; ``idempotency_key`` replaces the one the client makes."""
        body = writes.put_items(items, ttl, expiration, metadata, expect)
        return self._write("/write", body, note, idempotency_key)

    def clear(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
              expect: Mapping[str, int] | None = None, idempotency_key: str | None = None) -> int:
        """Clear values (each key stays, with no value) and return the tx."""
        return self._write("/write", writes.key_items(keys, expect, clear=True), note, idempotency_key)

    def delete(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
               expect: Mapping[str, int] | None = None, idempotency_key: str | None = None) -> int:
        """Delete keys and return the tx (the latest tx when nothing was there to delete)."""
        return self._write("/delete", writes.key_items(keys, expect, clear=False), note, idempotency_key)

    def _write(self, route: str, body: list[Any], note: dict[str, Any] | None, idempotency_key: str | None) -> int:
        if not body:
            raise errors.EmptyBatch("a write needs at least one item")
        try:
            answer = self._store._write(self._path + route, body, note, idempotency_key)
        except errors.Conflict as exc:
            for conflict in exc.details.get("conflicts") or ():
                conflict["namespace"] = self.name
            raise
        return int(answer["tx"])

    # -- reads --------------------------------------------------------------------------------

    def read(self, keys: Iterable[str], *, tx: int | None = None, at: datetime | float | None = None,
             metadata: bool = False, fields: Iterable[str] | None = None, verified: bool = False) -> ReadResult:
        """Records of ``keys`` at ``tx`` (or time ``at``), in request order, absent keys left out.

        ``verified=True`` asks for proofs and checks every record against the head the store's
        verifier trusts (:meth:`server.client.proofs.Verifier.read`), raising ``PROOF_FAILED`` rather
        than returning a record it cannot prove."""
        if verified:
            return self._store.trusted().read(self.name, keys, tx=tx, at=at, metadata=metadata, fields=fields)
        return records_of(self.read_answer(keys, tx, at, metadata, fields)[1])

    def read_answer(self, keys: Iterable[str], tx: int | None, at: datetime | float | None, metadata: bool,
                    fields: Iterable[str] | None, proof: bool = False) -> tuple[list[str], dict[str, Any]]:
        """The keys asked (each once, in order) and the server's answer to reading them."""
        if isinstance(keys, str | bytes):
            raise errors.InvalidParameters("keys must be a list of str, not a single string")
        wanted = list(dict.fromkeys(keys))
        body: dict[str, Any] = {"keys": wanted}
        if tx is not None:
            body["tx"] = tx
        if at is not None:
            body["at"] = rfc3339(at)
        if metadata:
            body["metadata"] = True
        if fields:
            body["fields"] = list(fields)
        if proof:
            body["proof"] = True
        try:
            raw = orjson.dumps(body)
        except TypeError:  # orjson refuses a lone surrogate: name the key as the engine does
            writes.raise_item_errors([(i, k, p) for i, k in enumerate(wanted) if (p := writes._key_problem(k))])
            raise
        return wanted, self._http.json("POST", self._path + "/read", raw=raw)

    def get(self, key: str, *, tx: int | None = None, at: datetime | float | None = None,
            metadata: bool = False, fields: Iterable[str] | None = None) -> Record | None:
        """The record of one key, or None if absent, deleted or expired."""
        records = self.read([key], tx=tx, at=at, metadata=metadata, fields=fields).records
        return records[0] if records else None

    def scan(self, prefix: str = "", *, tx: int | None = None, after: str | None = None,
             limit: int | None = None, at: datetime | float | None = None, metadata: bool = False,
             fields: Iterable[str] | None = None, page_size: int = 1000) -> RemoteScan:
        """Records of keys starting with ``prefix``, in UTF-8 byte order, at one tx (``.tx``).

        The first page is fetched now (so a future ``tx`` raises here, as in the engine); the rest
        while iterating, ``page_size`` records per request, each page after the previous one's
        cursor at the same tx.
        """
        if limit is not None and (type(limit) is not int or limit < 0):
            raise errors.InvalidParameters(f"limit must be a non-negative integer or None, not {limit!r}",
                                           parameter="limit")
        if at is not None:
            if tx is not None:
                raise errors.InvalidParameters("give tx or at, not both", parameter="at")
            tx = self._store.tx_at(at)
        options: dict[str, Any] = {"prefix": prefix}
        if metadata:
            options["metadata"] = True
        if fields:
            options["fields"] = list(fields)
        return RemoteScan(self._http, self._path + "/scan", options, tx, after, limit, page_size)

    # -- the past -----------------------------------------------------------------------------

    def history(self, key: str, *, before: int | None = None, after: int | None = None, limit: int = 100,
                order: str = "desc") -> list[Version]:
        """Versions of ``key`` with ``after < tx < before``, newest first (``order="asc"``: oldest
        first), at most ``limit``: fetched in pages of up to 1,000 with the server's cursor."""
        if type(limit) is not int or not 0 <= limit <= 10_000:
            raise errors.InvalidParameters(f"limit must be an integer from 0 to 10000, not {limit!r}",
                                           parameter="limit")
        return list(self.iter_history(key, before=before, after=after, limit=limit, order=order))

    def iter_history(self, key: str, *, before: int | None = None, after: int | None = None,
                     limit: int | None = None, order: str = "desc") -> Iterator[Version]:
        """:meth:`history` as an iterator, without a limit by default: pages are fetched as it is consumed."""
        left = limit
        while True:
            page = HISTORY_PAGE if left is None else max(1, min(left, HISTORY_PAGE))
            answer = self._http.json("GET", self._path + "/history", query={
                "key": key, "before": before, "after": after, "limit": page, "order": order})
            data = answer["data"] if left != 0 else []
            for doc in data:
                yield shapes.version(doc)
            if left is not None:
                left -= len(data)
            cursor = answer["cursor"]
            if cursor is None or left == 0:
                return
            if order == "desc":
                before = cursor
            else:
                after = cursor

    def diff(self, from_tx: int, to_tx: int) -> Iterator[Change]:
        """Keys whose content differs between the snapshots at ``from_tx`` and ``to_tx``, in key order."""
        for name, value in (("from_tx", from_tx), ("to_tx", to_tx)):
            if type(value) is not int or value < 0:
                raise errors.InvalidParameters(f"{name} must be a non-negative integer, not {value!r}",
                                               parameter=name)
        if from_tx > to_tx:
            raise errors.InvalidParameters(f"from_tx ({from_tx}) is after to_tx ({to_tx})", parameter="from_tx")
        answer = self._http.json("POST", self._path + "/diff", {"from_tx": from_tx, "to_tx": to_tx})
        return iter([shapes.change(doc) for doc in answer["data"]])

    def revert(self, to_tx: int, *, keys: Iterable[str] | None = None, prefix: str | None = None,
               dry_run: bool = False, note: dict[str, Any] | None = None, sync: bool | None = None,
               idempotency_key: str | None = None) -> RevertResult:
        """One new tx after which the namespace (or its ``keys``, or its keys under ``prefix``) reads
        as it did at ``to_tx`` (see :meth:`engine.Namespace.revert`); ``dry_run=True`` writes nothing.

        The server answers a committed revert with its tx and count; the changes are then read at
        fixed txs (the keys the revert's tx wrote, before it and at ``to_tx``), so they describe
        exactly that tx whatever was written since."""
        body: dict[str, Any] = {"to_tx": to_tx}
        if keys is not None:
            if isinstance(keys, str | bytes):
                raise errors.InvalidParameters("keys must be a list of str, not a single string", parameter="keys")
            body["keys"] = list(keys)
        if prefix is not None:
            body["prefix"] = prefix
        if dry_run:
            body["dry_run"] = True
            answer = self._http.json("POST", self._path + "/revert", body)
            return RevertResult(answer["from_tx"], to_tx, [shapes.change(c) for c in answer["data"]], False)
        answer = self._store._write(self._path + "/revert", body, note, idempotency_key)
        tx = int(answer["tx"])
        if not answer["count"]:
            return RevertResult(tx, to_tx, [], False)
        return RevertResult(tx, to_tx, self._written_by(tx, to_tx), True)

    def _written_by(self, tx: int, to_tx: int) -> list[Change]:
        """The changes of revert tx ``tx``: each key it wrote, its record before and at ``to_tx``."""
        (event,) = self.changes(tx - 1, limit=1)
        names = sorted({op.key for op in event.operations}, key=lambda k: k.encode())
        options: dict[str, Any] = {"metadata": True, "fields": ["expire_time"]}
        before = {r.key: r for r in self.read(names, tx=tx - 1, **options).records}
        after = {r.key: r for r in self.read(names, tx=to_tx, **options).records}
        out = []
        for key in names:
            was, now = before.get(key), after.get(key)
            kind = "added" if was is None else "deleted" if now is None else "cleared" if now.cleared else "changed"
            out.append(Change(key, kind, was, now))
        return out

    def changes(self, since: int = 0, *, limit: int = 100, wait: float | None = None) -> list[TxInfo]:
        """The txs after ``since`` that touched this namespace (at most ``limit``, up to 1,000), as
        :meth:`engine.Store.changes` with ``namespace=`` this one. ``wait`` (up to 60 seconds) makes
        it a long poll: when there is none yet, the server answers as soon as one commits, or with
        an empty list after ``wait``."""
        query = {"since": since, "limit": limit, "wait": wait}
        answer = self._http.json("GET", self._path + "/changes", query=query,
                                 read_timeout=None if not wait else self._http.timeout.read_timeout + wait)
        return [shapes.tx_info(doc, self.name) for doc in answer["data"]]

    def follow(self, since: int | None = None, *, read_timeout: float = 60.0) -> Iterator[TxInfo]:
        """Every tx touching this namespace after ``since`` (None: only new ones), as they commit,
        from the server's SSE feed; a dropped connection is resumed with ``Last-Event-ID`` after the
        last tx received, so none is missed or repeated. Runs until the iterator is closed."""
        from .sse import follow

        query = None if since is None else {"start_tx": since}
        for event_id, doc in follow(self._http, self._path + "/sse", query, read_timeout):
            del event_id
            yield shapes.tx_info(doc, self.name)

    def info(self) -> NamespaceInfo | None:
        """Key count, size and times at the latest tx; None if the namespace does not exist."""
        return self._store.namespace_info(self.name)
