"""A remote scan: an iterable of records at one tx, fetched page by page with the server's cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.records import Record

from . import shapes

if TYPE_CHECKING:
    from .transport import Transport

SCAN_PAGE_MAX = 10_000  # the server's largest scan page


class RemoteScan:
    """Records of a scan at tx :attr:`tx` (as :class:`engine.Scan`): the first page is fetched when
    the scan is made, so bad input raises there; later pages as iteration reaches them, each asking
    for the records after the previous page's last key at the same tx, so the whole scan is one
    consistent snapshot however long it takes. Iterating again starts over (and refetches)."""

    def __init__(self, http: Transport, path: str, options: dict[str, Any], tx: int | None, after: str | None,
                 limit: int | None, page_size: int) -> None:
        if type(page_size) is not int or not 1 <= page_size <= SCAN_PAGE_MAX:
            raise ValueError(f"page_size must be 1 to {SCAN_PAGE_MAX}")
        self._http, self._path, self._options = http, path, options
        self._after, self._limit, self._page_size = after, limit, page_size
        self._first = self._page(tx, after, limit)
        self.tx: int = self._first["tx"]

    def _page(self, tx: int | None, after: str | None, left: int | None) -> Any:
        body = dict(self._options)
        body["limit"] = self._page_size if left is None else max(1, min(left, self._page_size))
        if tx is not None:
            body["tx"] = tx
        if after is not None:
            body["after"] = after
        return self._http.json("POST", self._path, body)

    def __iter__(self) -> Iterator[Record]:
        answer, left = self._first, self._limit
        if answer is None:
            answer = self._page(self.tx, self._after, left)
        self._first = None  # a second iteration fetches again, as the engine's Scan reads again
        record = shapes.record
        while True:
            data = answer["data"] if left != 0 else []
            if left is not None:
                data = data[:left]
                left -= len(data)
            for doc in data:
                yield record(doc)
            cursor = answer["cursor"]
            if cursor is None or left == 0:
                return
            answer = self._page(self.tx, cursor, left)
