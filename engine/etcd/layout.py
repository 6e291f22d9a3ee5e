"""Where a Strata store keeps everything in etcd: the key layout under the store's prefix. Pure functions.

Every key of a store starts with its prefix ``P`` and a ``/``. Strata keys are stored as their UTF-8
bytes: etcd orders keys by bytes, which is Strata's scan order (UTF-8 byte order), and a namespace name
cannot contain ``/`` (``[A-Za-z0-9._-]{1,64}``), so ``P/d/<ns>/`` holds exactly that namespace's keys.

==============================  ===============================================  ==========================
key                             value                                            written by
==============================  ===============================================  ==========================
``P/meta``                      msgpack ``{"format": 1, "created_us": t}``;      the first open of an empty
                                its create revision is the store's **base**      prefix
``P/d/<ns>/<key>``              the version record, byte for byte what           every tx that puts or
                                :mod:`engine.codec` stores in LMDB; a delete     clears the key (a delete
                                is an etcd delete of this key                    deletes it)
``P/m/<ns>/<key>``              the delete's version record (``C1 02``, or the   every tx that deletes the
                                extended form of a long key): the **delete       key
                                marker**, one version per delete
``P/m/<ns>``                    ``C1 02``: the **drop marker**, one version per  every drop of ``ns`` with
                                drop (a drop deletes every key with one range    live keys
                                delete, not one marker per key)
``P/tx/<request id>``           msgpack ``[time_us, note, runs, fingerprint,     every tx (the bookkeeping
                                answer]``: the tx log entry and the request's    put), guarded by
                                retry-safety key at once                         ``create_revision == 0``
``P/log``                       the request id of the tx written at its mod      every tx
                                revision: **the log index** (a range at
                                ``revision(T)`` names T's bookkeeping key)
``P/n/<ns>``                    msgpack ``{"created_us": t}``                    the first tx writing ``ns``
                                                                                 (a nested txn), or
                                                                                 ``create_namespace``; later
                                                                                 txns compare its create
                                                                                 revision
``P/u/<ns>``                    empty; its mod revision is ``ns``'s last tx      every tx touching ``ns``
``P/x/<expire_us:016x>/<ns>/``  empty: **the expiry index**, one entry per       every tx with a put that
``<key>``                       version that expires (for the sweep: due         carries an expiry
                                entries in time order)
``P/s/<stream>``                msgpack ``[created_us, updated_us, seq,          every stream tx, guarded
                                event_count, size_bytes, dropped, base_seq,      by its mod revision;
                                created_seq, tx]``: a stream's registry entry    ``create_stream``
                                (:mod:`engine.etcd.stream_log`)                  (housekeeping)
``P/e/<stream>/<seq:016x>``     msgpack ``[op, [record, ...]]``: the stream's    the stream tx (a publish,
                                ``seq``-th stream tx, its event records in       or a drop of a stream
                                index order (none for a drop, op 4)              with events), once
``P/sys/hk``                    msgpack count of housekeeping txns so far        every housekeeping txn
``P/sys/sealer``                msgpack ``[holder, lease id]``: the **sealer     the sealer taking the seat
                                seat** (:mod:`engine.etcd.seat`)                 (a housekeeping txn)
``P/seal/<first_tx:016x>``      a **sealed segment**: msgpack ``[[hash, time_us],  the sealer (a housekeeping
                                ...]`` of txs ``first_tx`` on (at most           txn per seal, see
                                :data:`engine.etcd.chain.SEGMENT`; ``first_tx``  :mod:`engine.etcd.chain`)
                                is one past a multiple of it), appended to
``P/seal/head``                 msgpack ``[tx, hash, time_us]``: the **sealed    the sealer, in the same
                                head**, the last tx whose chain hash is stored   txn as its segments
``P/tree/<first_tx:016x>``      a **tree segment**: msgpack ``[entry, ...]``     the sealer, in the same
                                of txs ``first_tx`` on (as sealed segments),     txn as the chain's
                                each entry LMDB's ``txtree`` value of its tx     segments
                                (:mod:`engine.etcd.txtree`)
``P/tree/head``                 msgpack ``[size, root]``: the **tree head**      the sealer, likewise
``P/i/<ident>``                 msgpack ``[stored_us, expires_us, fingerprint,   an idempotent write's txn
                                answer]``: an idempotency claim (``ident``:      (or a housekeeping txn);
                                ``sha256(scope)[:8] | key``)                     :mod:`engine.etcd.idempotency`
==============================  ===============================================  ==========================

Why these bytes:

* **One-letter tags** (``d``, ``m``, ``n``, ``u``) keep the per-key overhead small (etcd stores the
  whole key in every version) and make the tag the second path component, so a range over
  ``P/d/<ns>/`` can never meet a marker, a log entry or another namespace.
* **Markers outside the data range**: etcd's range does not show deleted keys (a tombstone is not a
  key-value), so a key's history could not be walked back across a delete. The marker keeps each
  delete as a version of its own, where scans of ``P/d/`` never see it.
* **The request id** is raw bytes after ``P/tx/`` (16 random bytes per call; a caller's idempotency
  key is a claim of its own, ``P/i/``, which expires): the bookkeeping key is written once and never updated, so etcd's
  compaction (which keeps every key's newest version) never frees a tx's log entry.
* **The log index** ``P/log``: the bookkeeping key is named after the request, so finding tx T's entry
  needs T's request id; every tx also puts its id at ``P/log``, so one range at ``revision(T)`` gives
  it. (A watch on ``P/tx/`` from ``revision(T)`` would find it too, but etcd serves a watch that starts
  in the past from a sync loop that runs every 100 ms: measured 100 ms per lookup.) It costs one
  small put per tx; all writers put it without any compare, so it adds no contention.
* **No tx number in any key**: a writer cannot know its tx before etcd applies its txn (tx =
  revision - base - housekeeping count, see :mod:`engine.etcd.timeline`), so every position in time
  is an etcd revision and tx numbers are computed from revisions.

A compaction (:mod:`engine.etcd.compaction`) adds ``P/c/state`` (the horizon) and index segments under
``P/c/hk/`` and ``P/c/tx/`` that keep what etcd's compaction frees of ``P/sys/hk`` and ``P/log``
(:mod:`engine.etcd.compacted` lists them).

Two stores on one cluster must not have nested prefixes (``a`` and ``a/d``): their key ranges would
overlap. A store wants a dedicated cluster anyway (revisions are cluster-wide, see
:mod:`engine.etcd.timeline`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import errors
from .kv import prefix_end, remember

#: A store prefix: path-like ASCII, no empty component, no leading or trailing ``/``.
_PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
MAX_PREFIX_BYTES = 128


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can name a store (``a``, ``team/store-1``), else ``INVALID_PARAMETERS``."""
    if type(prefix) is not str or len(prefix) > MAX_PREFIX_BYTES or not _PREFIX.fullmatch(prefix):
        raise errors.InvalidParameters(
            f"an etcd store prefix is 1-{MAX_PREFIX_BYTES} characters of A-Z a-z 0-9 . _ - in components "
            f"separated by '/', not {prefix!r}", parameter="prefix")  # fmt: skip
    return prefix


@dataclass(frozen=True, slots=True)
class Layout:
    """The keys of the store at ``prefix`` (see the module docstring for the table)."""

    prefix: bytes

    @classmethod
    def of(cls, prefix: str) -> Layout:
        return cls(check_prefix(prefix).encode())

    @property
    def meta(self) -> bytes:
        return self.prefix + b"/meta"

    @property
    def housekeeping(self) -> bytes:
        return remember(self.prefix + b"/sys/hk")  # ranged by every write: its base64 kept (kv.remember)

    @property
    def sealer(self) -> bytes:
        """The sealer seat: which process runs the background sealer (:mod:`engine.etcd.seat`)."""
        return self.prefix + b"/sys/sealer"

    @property
    def seal_head(self) -> bytes:
        """The sealed head: the last tx whose chain hash is stored (:mod:`engine.etcd.chain`)."""
        return self.prefix + b"/seal/head"

    def segment(self, first_tx: int) -> bytes:
        """The sealed segment starting at ``first_tx`` (hex, fixed width: byte order is tx order)."""
        return self.prefix + b"/seal/" + b"%016x" % first_tx

    @property
    def tree_head(self) -> bytes:
        """The tree head: the size and root of the Merkle tree stored so far (:mod:`engine.etcd.txtree`)."""
        return self.prefix + b"/tree/head"

    def tree_segment(self, first_tx: int) -> bytes:
        """The tree segment starting at ``first_tx`` (hex, fixed width: byte order is tx order)."""
        return self.prefix + b"/tree/" + b"%016x" % first_tx

    def data(self, namespace: str, raw: bytes) -> bytes:
        """The key holding the versions of key ``raw`` (its UTF-8 bytes) of ``namespace``."""
        return b"".join((self.prefix, b"/d/", namespace.encode(), b"/", raw))

    def data_prefix(self, namespace: str) -> bytes:
        """What every data key of ``namespace`` starts with."""
        return b"".join((self.prefix, b"/d/", namespace.encode(), b"/"))

    def key_of(self, namespace: str, data_key: bytes) -> str:
        """The Strata key of a data key of ``namespace``."""
        return data_key[len(self.data_prefix(namespace)):].decode("utf-8")

    def marker(self, namespace: str, raw: bytes) -> bytes:
        """The delete marker of key ``raw`` of ``namespace``."""
        return b"".join((self.prefix, b"/m/", namespace.encode(), b"/", raw))

    def dropped(self, namespace: str) -> bytes:
        """The namespace's drop marker (no trailing ``/``: never a key's marker): one version per drop."""
        return self.prefix + b"/m/" + namespace.encode()

    def request(self, request_id: bytes) -> bytes:
        """The bookkeeping key (log entry and retry-safety key) of the tx of request ``request_id``."""
        return self.prefix + b"/tx/" + request_id

    @property
    def log(self) -> bytes:
        """The log index: each tx puts its request id here (a range at a tx's revision names its entry)."""
        return remember(self.prefix + b"/log")

    @property
    def requests(self) -> tuple[bytes, bytes]:
        """``(key, range_end)`` of every bookkeeping key: the tx log."""
        start = self.prefix + b"/tx/"
        return start, prefix_end(start)

    def registry(self, namespace: str) -> bytes:
        """The registry entry of ``namespace`` (written by its first tx)."""
        return remember(self.prefix + b"/n/" + namespace.encode())

    @property
    def registries(self) -> tuple[bytes, bytes]:
        """``(key, range_end)`` of every registry entry."""
        start = self.prefix + b"/n/"
        return start, prefix_end(start)

    def expiry(self, expire_us: int, namespace: str, raw: bytes) -> bytes:
        """The expiry index entry of the version of key ``raw`` of ``namespace`` expiring at ``expire_us``
        (hex, fixed width: byte order is time order, so due entries are one range from ``P/x/``)."""
        return b"".join((self.prefix, b"/x/", b"%016x" % expire_us, b"/", namespace.encode(), b"/", raw))

    def updated(self, namespace: str) -> bytes:
        """The key every tx touching ``namespace`` puts (its mod revision is the namespace's last tx)."""
        return remember(self.prefix + b"/u/" + namespace.encode())

    def namespace_of_registry(self, key: bytes) -> str:
        return key[len(self.prefix) + 3:].decode("ascii")

    # -- streams (engine.etcd.stream_log) --------------------------------------------------------

    def stream(self, name: str) -> bytes:
        """The registry entry of stream ``name`` (streams have a name space of their own)."""
        return self.prefix + b"/s/" + name.encode()

    @property
    def streams(self) -> tuple[bytes, bytes]:
        """``(key, range_end)`` of every stream's registry entry."""
        start = self.prefix + b"/s/"
        return start, prefix_end(start)

    def stream_of_registry(self, key: bytes) -> str:
        return key[len(self.prefix) + 3:].decode("ascii")

    def stream_tx(self, name: str, seq: int) -> bytes:
        """The key of the ``seq``-th stream tx of ``name`` (its publish's events, or its drop): hex, fixed
        width, so byte order is publish order, which is tx order."""
        return b"".join((self.prefix, b"/e/", name.encode(), b"/", b"%016x" % seq))

    def stream_txs(self, name: str) -> bytes:
        """What every stream tx key of ``name`` starts with."""
        return b"".join((self.prefix, b"/e/", name.encode(), b"/"))
