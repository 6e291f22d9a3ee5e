"""Checking a read with proofs (``"proof": true``) on the client: every record against the Merkle tree.

The server answers, besides the records, the head of its snapshot, the tx of the version each key's
read saw, and once per such tx the tx's canonical log entry (its Merkle leaf data, base64) with its
inclusion path (see :mod:`engine.proved_read`). :func:`check` recomputes everything it can from those
bytes and refuses the answer (``PROOF_FAILED``) at the first thing that does not hold:

* the versions name exactly the keys asked, in order; entries come once per tx the versions name,
  ascending, and nothing else; every tx is at or before the read tx, itself at or before the head;
* each entry's leaf hash, ``SHA-256(0x00 || entry)``, is leaf ``tx - 1`` of the trusted head's tree
  (the caller has checked the head: its own, or one the trusted head extends or is extended by);
* each entry is a canonical entry of that tx, and holds a record for the key in the namespace read;
* that record *is* the answer: a put's value (type for type: ``1`` is not ``1.0``, bytes are not
  text), ``binary``, ``cleared`` for a clear, the record's ``tx``, its ``metadata``, ``updated_at``
  (the entry's commit time) and ``expire_time`` when asked; a delete must not be answered; a put the
  answer leaves out must carry an expiry at or before the client's clock;
* no record is answered for a key whose version the answer does not name.

``created_at`` is derived by the server from older versions, so it cannot be checked from one entry:
a verified read refuses to ask for it. What a log tree cannot prove is said in :mod:`engine.proved_read`
(freshness, absence).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ormsgpack import unpackb

from engine import merkle
from engine.codec import CLEAR, DELETE, MARK, decode_rich, put_value, unpack_value
from engine.errors import ProofFailed
from engine.records import Record
from engine.txlog import FIRST_STREAM_OP
from engine.txtree import Head

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNPROVABLE_FIELDS = frozenset({"created_at"})


def _fail(message: str, **details: Any) -> ProofFailed:
    return ProofFailed(message, **details)


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _fail(f"the proof's {what} is not a non-negative integer: {str(value)[:80]!r}", field=what)
    return value


def versions_of(proof: dict[str, Any], keys: Sequence[str], read_tx: int, head: Head) -> list[int | None]:
    """The version tx of each key asked, checked: the keys in order, txs within ``1..read_tx <= size``."""
    if read_tx > head.size:
        raise _fail(f"the read is at tx {read_tx}, past the head of size {head.size} its proof leads to", tx=read_tx)
    listed = proof.get("versions")
    if type(listed) is not list or len(listed) != len(keys):
        raise _fail(f"the proof names {len(listed) if type(listed) is list else 'no'} versions for the {len(keys)} "
                    "keys asked", field="versions")
    out: list[int | None] = []
    for key, item in zip(keys, listed, strict=True):
        if type(item) is not dict or item.get("key") != key:
            raise _fail(f"the proof's versions are not the keys asked, in order: expected {key!r}", key=key)
        vtx = item.get("tx")
        if vtx is not None and (type(vtx) is not int or not 1 <= vtx <= read_tx):
            raise _fail(f"the proof says key {key!r} was last written by tx {vtx!r}, not a tx from 1 to the read's "
                        f"tx {read_tx}", key=key)
        out.append(vtx)
    return out


def entries_of(proof: dict[str, Any], txs: set[int], head: Head) -> dict[int, list[Any]]:
    """``{tx: decoded entry}`` of the proof's entries: exactly one per tx of ``txs``, ascending, each
    one's leaf proven in the tree of ``head``."""
    listed = proof.get("entries")
    if type(listed) is not list:
        raise _fail("the proof has no entries list", field="entries")
    got = [e.get("tx") if type(e) is dict else None for e in listed]
    if got != sorted(txs):
        raise _fail(f"the proof's entries are for txs {got[:20]}, not the txs its versions name {sorted(txs)[:20]}",
                    field="entries")
    assert head.root is not None
    root = bytes.fromhex(head.root)
    out: dict[int, list[Any]] = {}
    for item in listed:
        tx = item["tx"]
        try:
            data = base64.b64decode(item.get("entry"), validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise _fail(f"the entry of tx {tx} is not base64", tx=tx) from None
        path = item.get("path")
        if type(path) is not list or not all(type(p) is str and len(p) == 64 for p in path):
            raise _fail(f"the inclusion path of tx {tx} is not a list of hashes", tx=tx)
        try:
            hashes = [bytes.fromhex(p) for p in path]
        except ValueError:
            raise _fail(f"the inclusion path of tx {tx} is not a list of hashes", tx=tx) from None
        if not merkle.verify_inclusion(merkle.leaf_hash(data), tx - 1, head.size, hashes, root):
            raise _fail(f"the entry of tx {tx} is not leaf {tx - 1} of the trusted tree of size {head.size}: the "
                        "record or its log entry was altered, or the proof is for something else", tx=tx,
                        size=head.size)
        out[tx] = _decoded(data, tx)
    return out


def _decoded(data: bytes, tx: int) -> list[Any]:
    """A proven entry, decoded: ``[tx, time_us, note, runs]`` (its tx checked)."""
    try:
        body = unpackb(data)
    except Exception:  # ormsgpack raises its own error types; a proven leaf that does not decode is forged
        raise _fail(f"the proven entry of tx {tx} is not a log entry", tx=tx) from None
    if type(body) is not list or len(body) != 4 or body[0] != tx or type(body[1]) is not int \
            or type(body[3]) is not list:
        raise _fail(f"the proven entry of tx {tx} is not the log entry of tx {tx}", tx=tx)
    return body


def record_in(entry: list[Any], namespace: str, key: str, tx: int) -> bytes:
    """The record tx ``tx`` stored for ``key`` of ``namespace``, as its entry holds it (the last if listed twice)."""
    found = None
    for run in entry[3]:
        if type(run) is not list or len(run) != 4 or run[0] != namespace or type(run[1]) is not int \
                or run[1] >= FIRST_STREAM_OP or type(run[2]) is not list or type(run[3]) is not list:
            continue
        for k, rec in zip(run[2], run[3], strict=False):
            if k == key and type(rec) is bytes and rec:
                found = rec
    if found is None:
        raise _fail(f"tx {tx}'s proven entry writes no record for key {key!r} of {namespace!r}", key=key, tx=tx)
    return found


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types, all the way down (``1`` is not ``1.0`` nor ``True``)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def check_record(rec: Record | None, raw: bytes, entry: list[Any], key: str, tx: int,
                 metadata: bool, fields: frozenset[str]) -> None:
    """The answered record of ``key`` (None: left out) is what the proven record ``raw`` of tx ``tx`` shows."""
    try:
        if raw[0] != MARK:
            op, value, expire_us, meta = 0, unpack_value(raw), None, None
        else:
            op, packed, _, expire_us, meta, _ = decode_rich(raw)
            value = put_value(packed) if op not in (CLEAR, DELETE) else None
    except Exception:  # the decoders raise several types; a proven record that does not decode is no record
        raise _fail(f"tx {tx}'s proven record of key {key!r} is not a version record", key=key, tx=tx) from None
    if rec is None:
        if op == DELETE:
            return
        if expire_us is not None and expire_us <= time.time_ns() // 1000:
            return  # expired (on this client's clock too)
        raise _fail(f"the answer leaves out key {key!r}, but tx {tx} wrote it and the record has not expired",
                    key=key, tx=tx)
    wrong = _difference(rec, op, value, tx) or _optional_difference(rec, meta, entry[1], expire_us, metadata, fields)
    if wrong is not None:
        raise _fail(f"the answer's record of key {key!r} is not the one tx {tx} wrote, as its proven log entry holds "
                    f"it: {wrong}", key=key, tx=tx)


def _difference(rec: Record, op: int, value: Any, tx: int) -> str | None:
    """How the answered record's op, tx and value differ from the proven ones (None: they do not)."""
    if op == DELETE:
        return "that tx deleted the key"
    if rec.tx != tx:
        return f"the answer says tx {rec.tx}"
    if op == CLEAR:
        return None if rec.cleared and rec.value is None else "that tx cleared the key"
    if rec.cleared or not _same(rec.value, value) or rec.binary is not (type(value) is bytes):
        return "another value"
    return None


def _optional_difference(rec: Record, meta: Any, time_us: int, expire_us: int | None, metadata: bool,
                         fields: frozenset[str]) -> str | None:
    """How the optional members asked for differ from the proven ones (None: they do not)."""
    if metadata and not _same(rec.metadata, meta):
        return "other metadata"
    if "updated_at" in fields and rec.updated_at != _time(time_us):
        return "another updated_at"
    if "expire_time" in fields and rec.expire_time != _time(expire_us):
        return "another expire_time"
    return None


def check(answer: dict[str, Any], namespace: str, keys: Sequence[str], records: Sequence[Record], read_tx: int,
          head: Head, metadata: bool, fields: frozenset[str]) -> None:
    """Every record of a read answer (``records``, parsed from ``answer``) proven against ``head``."""
    proof = answer.get("proof")
    if type(proof) is not dict:
        raise _fail("the answer carries no proof", field="proof")
    versions = versions_of(proof, keys, _int(read_tx, "tx"), head)
    entries = entries_of(proof, {v for v in versions if v is not None}, head)
    answered: dict[str, Record] = {}
    for rec in records:
        if rec.key in answered:
            raise _fail(f"the answer gives key {rec.key!r} twice", key=rec.key)
        answered[rec.key] = rec
    if [r.key for r in records] != [k for k in keys if k in answered]:
        raise _fail("the answer's records are not in the order of the keys asked", field="data")
    for key, vtx in zip(keys, versions, strict=True):
        rec = answered.get(key)
        if vtx is None:
            if rec is not None:
                raise _fail(f"the answer gives a record for key {key!r} but no version that proves it", key=key)
            continue
        raw = record_in(entries[vtx], namespace, key, vtx)
        check_record(rec, raw, entries[vtx], key, vtx, metadata, fields)
