"""What the sealer's last seal wrote, kept so that its next seal reads one key set instead of six.

A seal (:func:`engine.etcd.chain.seal`) extends the chain segment holding the sealed head and the Merkle
tree's entries (:mod:`engine.etcd.txtree`), each rewritten whole, so it needs the entries already
stored: the partly filled chain segment, the tree's frontier and its partly filled tree segment, the
tree head's mod revision and the housekeeping key ``P/sys/hk``. Read from etcd, that is four reads
besides the sealed head (each a linearizable read: a quorum round on the cluster, which costs it about
what a write does). The background sealer (:mod:`engine.etcd.sealer`) seals every batch interval, each
time right after its own previous seal, and it wrote those entries itself: :class:`Tail` keeps them.

Contract: a :class:`Tail` is valid for a seal exactly when the sealed head read for it is ``head`` and
that key's mod revision is ``revision`` (the revision of the housekeeping txn that wrote the tail).
Segments and the tree are written only by seals (and the tree's catch-up), each in the same txn as the
sealed head or the tree head, and a seal's txn is guarded by the mod revisions of both heads: a tail
that no longer matches what is stored cannot be written on top of (the guard fails; the seal then
drops it and reads everything, as without one). :class:`Seen` is one read of the housekeeping key, the
sealed head and the tree head at one revision (what the sealer looks at before it seals anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kv import RangeResult


@dataclass(frozen=True, slots=True)
class Seen:
    """``P/sys/hk``, ``P/seal/head`` and ``P/tree/head`` as one read txn at ``revision`` showed them."""

    revision: int
    housekeeping: RangeResult
    head: RangeResult
    tree: RangeResult


@dataclass(frozen=True, slots=True)
class Tail:
    """What a seal stored at ``revision``: the sealed head's ``tx`` (with its ``hash`` and ``time_us``,
    as :class:`engine.etcd.chain.Link` fields), the entries of the chain segment holding it (up to it),
    and the tree entries the next seal reads: those of the tree's frontier and of its partly filled
    tree segment (:func:`engine.etcd.txtree.frontier`)."""

    revision: int
    tx: int
    hash: bytes
    time_us: int
    segment: list[list[Any]]
    tree: dict[int, bytes]


class Memo:
    """The tail of the last seal of one sealer (None: none known). Used by one thread at a time."""

    def __init__(self) -> None:
        self.tail: Tail | None = None
