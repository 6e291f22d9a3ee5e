"""The etcd v3 key-value messages the client sends and receives, as typed values, and their JSON form.

etcd's JSON gateway (grpc-gateway over the v3 protobuf API) spells every message as JSON with three
quirks this module hides: keys and values are base64 strings; 64-bit integers are decimal strings
(``"revision": "42"``); fields at their protobuf default (``0``, ``false``, empty, the first enum member)
are left out, so an absent ``succeeded`` means False and an event without ``type`` is a PUT.

Requests (what a txn may hold): :class:`Compare`, :class:`Put`, :class:`Range`, :class:`DeleteRange`,
:class:`Txn` (a nested txn).
Answers: :class:`KeyValue`, :class:`RangeResult`, :class:`PutResult`, :class:`DeleteResult`,
:class:`TxnResult`, :class:`Status`, :class:`Event`. Keys are ``bytes`` everywhere; a ``range_end`` of
``None`` means the single key, ``b"\\0"`` means every key from ``key`` on (etcd's convention), and
:func:`prefix_end` gives the end of a prefix.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

Json = dict[str, Any]

#: Compare targets: a key's create revision, mod revision, version (number of puts since creation) or value.
Target = Literal["CREATE", "MOD", "VERSION", "VALUE"]
_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}
_TARGET_FIELDS = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version", "VALUE": "value"}


def b64(data: bytes) -> str:
    # binascii directly: base64.b64encode is a Python wrapper around it (a write sends ~18 of these)
    return binascii.b2a_base64(data, newline=False).decode("ascii")


#: The base64 of keys a store names in every write (its log, housekeeping and due-range keys, each
#: namespace's registry and updated keys: :class:`engine.etcd.layout.Layout` and :mod:`engine.etcd.due`
#: pass them to :func:`remember`), so a write encodes only its own data and request keys. Bounded by
#: :data:`MAX_KNOWN_KEYS`: past it, keys are not kept (encoded each time, as any other key).
_KNOWN_KEYS: dict[bytes, str] = {}
MAX_KNOWN_KEYS = 4096


def remember(key: bytes) -> bytes:
    """Keep ``key``'s base64 for :func:`key64` (a key sent again and again); returns ``key``."""
    if key not in _KNOWN_KEYS and len(_KNOWN_KEYS) < MAX_KNOWN_KEYS:
        _KNOWN_KEYS[key] = b64(key)
    return key


def key64(key: bytes) -> str:
    """:func:`b64` of a key, from what :func:`remember` kept when it kept it."""
    known = _KNOWN_KEYS.get(key)
    return known if known is not None else binascii.b2a_base64(key, newline=False).decode("ascii")


def unb64(text: str | None) -> bytes:
    return binascii.a2b_base64(text) if text else b""  # base64.b64decode's own decoder, minus its wrapper


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that covers every key starting with ``prefix`` (etcd's ``GetPrefixRangeEnd``)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every byte is 0xff (or no prefix): to the end of the key space


def show_key(key: bytes) -> str:
    """A key for messages and error details (JSON-ready): UTF-8 where it decodes, escapes elsewhere."""
    return key.decode("utf-8", "backslashreplace")


# -- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn guard: ``target`` of ``key`` compared with ``value`` by ``op``.

    ``Compare(key, "CREATE", "==", 0)`` holds when the key does not exist; ``Compare(key, "MOD", "==", r)``
    when it was last written at revision ``r`` (Strata's ``expect``). A missing key has create, mod
    revision and version 0 and compares unequal to every value."""

    key: bytes
    target: Target
    op: Literal["==", "!=", "<", ">"]
    value: int | bytes
    range_end: bytes | None = None

    def to_json(self) -> Json:
        field = _TARGET_FIELDS[self.target]
        out: Json = {"key": key64(self.key), "target": self.target, "result": _RESULTS[self.op]}
        out[field] = b64(self.value) if isinstance(self.value, bytes) else str(self.value)
        if self.range_end is not None:
            out["range_end"] = key64(self.range_end)
        return out


@dataclass(frozen=True, slots=True)
class Put:
    """Write ``value`` at ``key`` (a new version; the key's mod revision becomes the txn's revision)."""

    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False

    def to_json(self) -> Json:
        out: Json = {"key": key64(self.key), "value": b64(self.value)}
        if self.lease:
            out["lease"] = str(self.lease)
        if self.prev_kv:
            out["prev_kv"] = True
        return out

    @property
    def size(self) -> int:
        """Bytes this put adds to a request, give or take a few bytes of framing."""
        return len(self.key) + len(self.value)


@dataclass(frozen=True, slots=True)
class Range:
    """Read ``key`` (or ``[key, range_end)``) at ``revision`` (0: the latest); ``limit`` 0 is no limit."""

    key: bytes
    range_end: bytes | None = None
    revision: int = 0
    limit: int = 0
    keys_only: bool = False
    count_only: bool = False
    serializable: bool = False
    #: Only versions written at or after this revision (0: no bound). etcd then scans the whole range
    #: server-side before applying ``limit`` (it sends only what passes).
    min_mod_revision: int = 0

    def to_json(self) -> Json:
        out: Json = {"key": key64(self.key)}
        if self.range_end is not None:
            out["range_end"] = key64(self.range_end)
        if self.revision:
            out["revision"] = str(self.revision)
        if self.limit:
            out["limit"] = str(self.limit)
        if self.keys_only:
            out["keys_only"] = True
        if self.count_only:
            out["count_only"] = True
        if self.serializable:
            out["serializable"] = True
        if self.min_mod_revision:
            out["min_mod_revision"] = str(self.min_mod_revision)
        return out


@dataclass(frozen=True, slots=True)
class DeleteRange:
    """Delete ``key`` (or ``[key, range_end)``). Deleting nothing consumes no revision."""

    key: bytes
    range_end: bytes | None = None
    prev_kv: bool = False

    def to_json(self) -> Json:
        out: Json = {"key": key64(self.key)}
        if self.range_end is not None:
            out["range_end"] = key64(self.range_end)
        if self.prev_kv:
            out["prev_kv"] = True
        return out


@dataclass(frozen=True, slots=True)
class Txn:
    """A txn nested in a txn's branch: applied at the outer txn's revision, taking no revision of its own
    (checked on etcd 3.4). Its answer is a :class:`TxnResult`."""

    compare: tuple[Compare, ...] = ()
    success: tuple[Request, ...] = ()
    failure: tuple[Request, ...] = ()

    def to_json(self) -> Json:
        return {
            "compare": [compare_json(c) for c in self.compare],
            "success": [request_json(op) for op in self.success],
            "failure": [request_json(op) for op in self.failure],
        }

    @property
    def ops(self) -> int:
        """Operations this txn counts toward etcd's ``--max-txn-ops`` in its parent's branch."""
        return max(len(self.compare), len(self.success), len(self.failure))


Request = Put | Range | DeleteRange | Txn

REQUEST_FIELD = {Put: "request_put", Range: "request_range", DeleteRange: "request_delete_range",
                  Txn: "request_txn"}


def request_json(op: Request) -> Json:
    """One txn operation in the gateway's ``RequestOp`` form."""
    hit = _INTERNED.get(id(op))
    return hit[1] if hit is not None else {REQUEST_FIELD[type(op)]: op.to_json()}


def compare_json(c: Compare) -> Json:
    """One txn compare in the gateway's form."""
    hit = _INTERNED.get(id(c))
    return hit[1] if hit is not None else c.to_json()


#: The gateway form of operations made once and sent with many txns (:func:`interned`), by ``id``: the
#: operation itself is held beside it, so its id is not reused while the entry lives.
_INTERNED: dict[int, tuple[Compare | Request, Json]] = {}
Op = TypeVar("Op", "Compare", "Put", "Range", "DeleteRange", "Txn")
#: Operations interned at most (past it, :func:`interned` keeps nothing: they are encoded each time).
MAX_INTERNED = 4096


def interned(op: Op) -> Op:
    """``op``, its gateway form kept (operations are immutable) so that every txn sending this very object
    reuses it: for the few a store sends with every write (its housekeeping range, a namespace's updated
    key and registry compare, :mod:`engine.etcd.commit`), made once each. Kept for the process's life,
    bounded by :data:`MAX_INTERNED`."""
    if id(op) not in _INTERNED and len(_INTERNED) < MAX_INTERNED:
        _INTERNED[id(op)] = (op, op.to_json() if isinstance(op, Compare) else {REQUEST_FIELD[type(op)]: op.to_json()})
    return op


# -- answers -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key's version: ``create_revision`` (when this generation of the key was created),
    ``mod_revision`` (when this version was written), ``version`` (puts since creation, 1 first)."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @classmethod
    def from_json(cls, kv: Json) -> KeyValue:
        return cls(
            unb64(kv.get("key")),
            unb64(kv.get("value")),
            int(kv.get("create_revision", 0)),
            int(kv.get("mod_revision", 0)),
            int(kv.get("version", 0)),
            int(kv.get("lease", 0)),
        )


def kvs_of(answer: Json, field: str = "kvs") -> list[KeyValue]:
    return [KeyValue.from_json(kv) for kv in answer.get(field, ())]


class RangeResult(NamedTuple):
    """A range's answer: the key-values in key order, the revision read at (the one asked for, else the
    latest when it was served), whether more keys were left out (``limit``) and ``total``, how many keys
    the whole range holds at that revision."""

    kvs: list[KeyValue]
    revision: int
    more: bool
    total: int


class PutResult(NamedTuple):
    revision: int
    prev_kv: KeyValue | None


class DeleteResult(NamedTuple):
    """``deleted`` keys; ``revision`` is the store's revision after (unchanged when nothing was deleted)."""

    revision: int
    deleted: int
    prev_kvs: list[KeyValue]


class TxnResult(NamedTuple):
    """A txn's answer: whether the compares held, the store's revision after it (the txn's own revision
    when it wrote something, else the revision it read at) and one response per executed operation."""

    succeeded: bool
    revision: int
    responses: list[Response]


Response = RangeResult | PutResult | DeleteResult | TxnResult


def response_of(op: Json, revision: int) -> Response:
    """One ``ResponseOp`` of a txn answer as a typed result (``revision`` from the txn's header)."""
    put = op.get("response_put")  # first: most answers of a write txn are its puts'
    if put is not None:
        prev = put.get("prev_kv")
        return PutResult(revision, KeyValue.from_json(prev) if prev else None)
    if "response_range" in op:
        r = op["response_range"]
        return RangeResult(kvs_of(r), revision, bool(r.get("more", False)), int(r.get("count", 0)))
    if "response_txn" in op:  # a nested txn: its responses are read at the outer txn's revision
        r = op["response_txn"]
        return TxnResult(bool(r.get("succeeded", False)), revision,
                         [response_of(inner, revision) for inner in r.get("responses", ())])
    r = op["response_delete_range"]
    return DeleteResult(revision, int(r.get("deleted", 0)), kvs_of(r, "prev_kvs"))


def header_revision(answer: Json) -> int:
    return int(answer.get("header", {}).get("revision", 0))


class Status(NamedTuple):
    """One member's ``/v3/maintenance/status``: who answered (``endpoint``, ``member_id``), the leader's
    member id (0: none), the store's revision, raft positions, database size on disk and in use, and its
    alarms as etcd words them (``"memberID:... alarm:NOSPACE "``)."""

    endpoint: str
    version: str
    member_id: int
    leader: int
    revision: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    db_size: int
    db_size_in_use: int
    errors: list[str]

    @classmethod
    def from_json(cls, endpoint: str, answer: Json) -> Status:
        header = answer.get("header", {})
        return cls(
            endpoint,
            str(answer.get("version", "")),
            int(header.get("member_id", 0)),
            int(answer.get("leader", 0)),
            int(header.get("revision", 0)),
            int(answer.get("raftTerm", 0)),
            int(answer.get("raftIndex", 0)),
            int(answer.get("raftAppliedIndex", 0)),
            int(answer.get("dbSize", 0)),
            int(answer.get("dbSizeInUse", 0)),
            [str(e) for e in answer.get("errors", ())],
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch: ``"PUT"`` or ``"DELETE"`` of ``kv.key`` at ``kv.mod_revision``.

    A DELETE's ``kv`` holds only the key and the deleting revision; ``prev_kv`` is the version before the
    change when the watch asked for it."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @classmethod
    def from_json(cls, ev: Json) -> Event:
        prev = ev.get("prev_kv")
        kind: Literal["PUT", "DELETE"] = "DELETE" if ev.get("type") == "DELETE" else "PUT"
        return cls(kind, KeyValue.from_json(ev.get("kv", {})), KeyValue.from_json(prev) if prev else None)

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class Revision(NamedTuple):
    """What a watch yields: every event of one revision (one write txn), in the order etcd applied them."""

    revision: int
    events: list[Event]
