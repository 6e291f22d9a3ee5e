"""The value types the engine hands out and takes in. Immutable, cheap to build, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class Record(NamedTuple):
    """One key as seen at one tx.

    ``tx`` is the tx of the key's last change at or before the read tx. A cleared key has
    ``cleared=True`` and ``value=None`` (a stored JSON ``null`` is ``value=None, cleared=False``).
    ``binary`` is True when the value is ``bytes``.

    The last four fields are filled only when a read asks for them (``metadata=True``,
    ``fields=[...]``); otherwise they are None, so ``Record(key, value, tx)`` still compares equal
    to what a plain read returns. ``metadata``: the JSON stored with the value (None if none);
    ``created_at``: when the key was created (its first put after it last did not exist);
    ``updated_at``: the commit time of ``tx``; ``expire_time``: when the value expires (None: never).
    """

    key: str
    value: Any
    tx: int
    binary: bool = False
    cleared: bool = False
    metadata: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expire_time: datetime | None = None


class ReadResult(NamedTuple):
    """The records found, in request order (absent and deleted keys left out), and the tx read."""

    records: list[Record]
    tx: int


class Item(NamedTuple):
    """A key and the value to store under it (an element of the iterable ``put`` accepts).

    Optional, per item (they override ``put``'s batch-wide options of the same name):
    ``expiration``: epoch seconds at which the value expires; ``ttl``: seconds from the commit
    (wins over ``expiration`` when both are given); ``metadata``: any JSON up to
    ``Limits.max_metadata_bytes`` serialised, stored (and versioned) with the value.
    """

    key: str
    value: Any
    expiration: float | None = None
    ttl: float | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """What a namespace holds at the latest tx.

    ``tx`` is the latest tx that touched it (0 if none) and ``updated_at`` that tx's commit time
    (``created_at`` if none: a dropped name created again keeps both from before); ``key_count``
    counts live keys (put or cleared); ``size_bytes`` sums the bytes of their newest versions as
    stored: each key's keypart (namespace id, escaped key, end mark: the key's UTF-8 length + 6 for
    a key of at most 497 bytes, 503 for a longer one) and record (not history, not the 8-byte tx
    suffix).
    """

    name: str
    created_at: datetime
    updated_at: datetime
    tx: int
    key_count: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits, checked before anything is written (defaults follow Cloudflare KV)."""

    max_batch: int = 10_000
    max_read_keys: int = 10_000
    max_key_bytes: int = 512
    max_value_bytes: int = 25 * 1024 * 1024
    max_note_bytes: int = 4096
    #: Shortest ``ttl`` (and earliest ``expiration``, counted from now) accepted, in seconds.
    min_ttl: float = 1.0
    #: Largest metadata accepted, measured as its compact JSON encoding (Cloudflare's limit).
    max_metadata_bytes: int = 1024
    #: Largest sum of tx log entries one read with proofs may answer (``PROOF_TOO_LARGE`` past it):
    #: room for one value at ``max_value_bytes`` and its tx's other records.
    max_proof_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.max_key_bytes <= 512:
            raise ValueError("max_key_bytes must be between 1 and 512 (the layout's limit)")
        if not 0 <= self.min_ttl <= 10**10 or self.max_metadata_bytes < 0:
            raise ValueError("min_ttl must be 0 to 10**10 seconds and max_metadata_bytes >= 0")
