"""One stream of a remote store: :class:`engine.Stream`'s publish, read, follow, info and drop over HTTP."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine import errors
from engine.events import Event, StreamInfo
from engine.stream import StreamPage
from engine.validation import check_namespace

from . import shapes, writes

if TYPE_CHECKING:
    from .store import RemoteStore

READ_PAGE_MAX = 1000  # the server's largest stream page


class RemoteStream:
    """The stream ``name`` of the server at ``store`` (see :class:`engine.Stream` for the contracts)."""

    def __init__(self, store: RemoteStore, name: str) -> None:
        self._store = store
        self._http = store._http
        self.name = check_namespace(name)
        self._path = f"/v4/stream/{quote(self.name, safe='')}"

    def __repr__(self) -> str:
        return f"RemoteStream({self.name!r} at {self._http.url})"

    def publish(self, items: Iterable[Any], *, note: dict[str, Any] | None = None, sync: bool | None = None,
                idempotency_key: str | None = None) -> int:
        """Publish ``items`` (JSON values or ``bytes``) as one tx; return the tx."""
        body: list[dict[str, Any]] = []
        problems: list[tuple[int, Any, errors.EngineError]] = []
        for index, item in enumerate(items):
            if type(item) is bytes:
                body.append({"data": b64encode(item).decode("ascii"), "binary": True})
                continue
            problem = writes._value_problem(item)
            if problem is not None:
                problems.append((index, None, problem))
            body.append({"data": item})
        writes.raise_item_errors(problems)
        if not body:
            raise errors.EmptyBatch("a publish needs at least one event")
        return int(self._store._write(self._path + "/write", body, note, idempotency_key)["tx"])

    def read(self, start_tx: int | None = None, end_tx: int | None = None, limit: int = READ_PAGE_MAX, *,
             cursor: str | None = None) -> StreamPage:
        """A page of events with ``start_tx < tx <= end_tx`` (at most ``limit``, 1 to 1,000 over HTTP);
        ``cursor`` continues from a previous page."""
        answer = self._http.json("GET", self._path, query={"start_tx": start_tx, "end_tx": end_tx, "limit": limit,
                                                           "cursor": cursor})
        events = [shapes.event(doc) for doc in answer["data"]]
        split = bool(answer["more"]) and ":" in str(answer["cursor"])
        return StreamPage(events, answer["cursor"], answer["more"], answer["tx"], split)

    def follow(self, start_tx: int | None = None, *, read_timeout: float = 60.0) -> Iterator[Event]:
        """Every event published after ``start_tx`` (None: only new ones), live, from the server's
        SSE feed; reconnects resume after the last event received (``Last-Event-ID``), also in the
        middle of a publish of many events. Runs until the iterator is closed."""
        from .sse import follow

        query = None if start_tx is None else {"start_tx": start_tx}
        for _, doc in follow(self._http, self._path + "/sse", query, read_timeout):
            yield shapes.event(doc)

    def info(self) -> StreamInfo | None:
        """What the stream holds, or None if it does not exist."""
        return self._store.stream_info(self.name)

    def drop(self, *, note: dict[str, Any] | None = None, sync: bool | None = None) -> int:
        """Drop the stream and its events (see :meth:`RemoteStore.drop_stream`)."""
        return self._store.drop_stream(self.name, note=note)
