"""Merkle proofs the client checks itself, and the head it trusts (see docs/client.md, "Verifying the log").

The server's proofs (``GET /v4/proof/inclusion``, ``GET /v4/proof/consistency``) are checked here
with :mod:`engine.merkle`, never by the server being audited. Every field of an answer is checked
against what was asked (the tx, the size, the sizes of a consistency proof) before its path is: a
valid proof of another tx or another size is refused (immudb's advisory GHSA-672p-m5jq-mrh8 was a
client that accepted exactly that). Any failure raises :class:`~engine.errors.ProofFailed`
(``PROOF_FAILED``) and nothing of the answer is used.

:class:`Verifier` keeps the last head it trusts, optionally in a small JSON state file
(``{"size", "root", "hash"}``, and ``"signed"``: the server's signed head, when the client was given
its public key), and moves it forward only through a verified consistency proof: a
server that rewrites, truncates or forks its log after the client saw it cannot make it trust the
new log. The first head is taken as given (``trust=``), or trusted on first use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import merkle, signed_head
from engine.errors import InvalidParameters, ProofFailed
from engine.records import ReadResult
from engine.signed_head import SignedHead
from engine.txtree import ConsistencyProof, Head, InclusionProof

from . import proved_reads
from .namespace import records_of

if TYPE_CHECKING:
    from .store import RemoteStore

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _hash(value: Any, what: str) -> bytes:
    if type(value) is not str or not _HEX64.fullmatch(value):
        raise ProofFailed(f"the server's {what} is not 64 lowercase hex digits: {str(value)[:80]!r}", field=what)
    return bytes.fromhex(value)


def _path(answer: dict[str, Any]) -> list[bytes]:
    path = answer.get("path")
    if type(path) is not list:
        raise ProofFailed("the server's proof has no path list", field="path")
    return [_hash(p, "path element") for p in path]


def _exact(answer: dict[str, Any], field: str, asked: int) -> None:
    got = answer.get(field)
    if type(got) is not int or got != asked:
        raise ProofFailed(f"asked for a proof with {field} {asked}, the server answered one with {field} {got!r}",
                          field=field, asked=asked, answered=got)


def head_of(answer: dict[str, Any], keys: Mapping[str, bytes] | None = None) -> Head:
    """A head from ``GET /v4/head``, every field checked: ``size == tx``, hashes of 64 hex digits.

    With ``keys`` (trusted public keys by key id, :func:`engine.signed_head.trusted_keys`), the head
    must carry a ``signed`` member whose signature one of them verifies and whose size, root and hash
    are the head's; the returned head keeps it (``Head.signed``) as evidence."""
    tx = answer.get("tx")
    if type(tx) is not int or tx < 0:
        raise ProofFailed(f"the server's head has no valid tx: {tx!r}", field="tx")
    _exact(answer, "size", tx)
    _hash(answer.get("hash"), "head hash")
    root = answer.get("root")
    if root is None:
        raise ProofFailed("the server's head has no Merkle root (its store was compacted before it had a tree)",
                          field="root")
    _hash(root, "head root")
    head = Head(tx, answer["hash"], root)
    return head if keys is None else signed(head, answer.get("signed"), keys)


def signed(head: Head, member: Any, keys: Mapping[str, bytes]) -> Head:
    """``head`` with the signed head ``member`` attached, once its signature verifies with a trusted key
    and it signs exactly ``head`` (size, root and chain hash); ``PROOF_FAILED`` otherwise."""
    if member is None:
        raise ProofFailed(f"the server's head of size {head.size} is not signed, and signed heads are required "
                          "(a public key was given)", field="signed")
    sig = SignedHead.from_dict(member)
    signed_head.verify(sig, keys)
    pairs: tuple[tuple[str, object, object], ...] = (("size", sig.size, head.size), ("root", sig.root, head.root),
                                                     ("hash", sig.hash, head.hash))
    for name, got, want in pairs:
        if got != want:
            raise ProofFailed(f"the signed head's {name} {got!r} is not the head's {want!r}: the signature is for "
                              "another head", field=f"signed.{name}")
    return Head(head.tx, head.hash, head.root, sig)


def check_inclusion(answer: dict[str, Any], tx: int, head: Head, leaf_hash: bytes | None = None) -> InclusionProof:
    """The proof in ``answer`` shows tx ``tx`` in the tree of ``head`` (and, if given, with ``leaf_hash``)."""
    _exact(answer, "tx", tx)
    _exact(answer, "size", head.size)
    leaf = _hash(answer.get("leaf_hash"), "leaf hash")
    path = _path(answer)
    if leaf_hash is not None and leaf != leaf_hash:
        raise ProofFailed(f"tx {tx}'s leaf hash is {leaf.hex()}, not the {leaf_hash.hex()} expected", tx=tx)
    if head.root is None or not merkle.verify_inclusion(leaf, tx - 1, head.size, path, bytes.fromhex(head.root)):
        raise ProofFailed(f"the inclusion proof of tx {tx} does not verify against the trusted root of size "
                          f"{head.size}", tx=tx, size=head.size)
    return InclusionProof(tx, head.size, leaf.hex(), [p.hex() for p in path])


def check_consistency(answer: dict[str, Any], old: Head, new: Head) -> ConsistencyProof:
    """The proof in ``answer`` shows the tree of ``new`` extends the tree of ``old``."""
    _exact(answer, "from", old.size)
    _exact(answer, "to", new.size)
    path = _path(answer)
    if old.root is None or new.root is None or not merkle.verify_consistency(
            old.size, new.size, bytes.fromhex(old.root), bytes.fromhex(new.root), path):
        raise ProofFailed(f"the consistency proof from size {old.size} to {new.size} does not verify: the log "
                          "the server shows now does not extend the one trusted", size=old.size, to=new.size)
    return ConsistencyProof(old.size, new.size, [p.hex() for p in path])


class Verifier:
    """The head a client trusts for ``store``, moved forward only by verified consistency proofs.

    ``state_file``: where the trusted head is kept across runs (read if it exists; written, atomically,
    each time the head moves). ``trust``: the head to start from (one kept from an earlier run, read
    off a signed head...); without it or a state file, the first head the server gives is trusted.
    """

    def __init__(self, store: RemoteStore, state_file: str | os.PathLike[str] | None = None, *,
                 trust: Head | None = None) -> None:
        self._store = store
        self._path = None if state_file is None else Path(state_file)
        self.head: Head | None = trust
        if trust is None and self._path is not None and self._path.exists():
            saved = json.loads(self._path.read_text())
            self.head = head_of({"tx": saved.get("size"), "size": saved.get("size"), "hash": saved.get("hash"),
                                 "root": saved.get("root")})
            keys = store._public_keys
            if keys is not None and saved.get("signed") is not None:  # kept evidence is checked again
                self.head = signed(self.head, saved["signed"], keys)

    def _save(self) -> None:
        if self._path is None or self.head is None:
            return
        tmp = self._path.with_name(f".{self._path.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as out:
            kept: dict[str, Any] = {"size": self.head.size, "root": self.head.root, "hash": self.head.hash}
            if self.head.signed is not None:
                kept["signed"] = self.head.signed.to_dict()
            json.dump(kept, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._path)

    def refresh(self) -> Head:
        """Fetch the server's head and trust it if it extends the trusted one (a verified
        consistency proof); ``PROOF_FAILED`` otherwise, and the trusted head stays as it was."""
        new = self._store.head()
        if self.head is not None:
            self._store.verify_consistency(self.head, new)
        self.head = new
        self._save()
        return new

    def accept(self, head: Head) -> None:
        """Check a head the server answered with (a proof read's) against the trusted one: a longer log
        must extend the trusted one (a verified consistency proof, and then it is trusted and saved), a
        shorter one must be a prefix of it; ``PROOF_FAILED`` otherwise. The first head is trusted."""
        if self.head is None:
            self.head = head
        elif head.size >= self.head.size:
            self._store.verify_consistency(self.head, head)
            self.head = head
        else:
            self._store.verify_consistency(head, self.head)
            return
        self._save()

    def read(self, namespace: str, keys: Iterable[str], *, tx: int | None = None, at: datetime | float | None = None,
             metadata: bool = False, fields: Iterable[str] | None = None) -> ReadResult:
        """Read ``keys`` of ``namespace`` with proofs and check every record against the trusted head
        (:mod:`server.client.proved_reads`): ``PROOF_FAILED`` instead of a record that does not prove
        out. The answer's head is taken as :meth:`accept` says (signed, if the store has a public key).
        ``fields`` may not hold ``created_at``, which no single log entry proves."""
        chosen = frozenset(fields or ())
        if chosen & proved_reads.UNPROVABLE_FIELDS:
            raise InvalidParameters("a verified read cannot prove created_at (the server derives it from older "
                                    "versions): ask for it without verified=True", parameter="fields")
        remote = self._store.namespace(namespace)
        wanted, answer = remote.read_answer(keys, tx, at, metadata, fields, proof=True)
        proof = answer.get("proof")
        if type(proof) is not dict or type(proof.get("head")) is not dict:
            raise ProofFailed("the answer to a read with proofs carries no proof head", field="proof")
        head = head_of({"tx": proof["head"].get("size"), **proof["head"]}, self._store._public_keys)
        self.accept(head)
        if tx is not None and answer.get("tx") != tx:
            raise ProofFailed(f"asked for a read at tx {tx}, the server answered one at tx {answer.get('tx')!r}",
                              field="tx", asked=tx)
        try:
            result = records_of(answer)
        except (KeyError, TypeError, ValueError):
            raise ProofFailed("the answer's records are malformed", field="data") from None
        proved_reads.check(answer, remote.name, wanted, result.records, result.tx, head, bool(metadata), chosen)
        return result

    def prove(self, tx: int, leaf_hash: bytes | None = None) -> InclusionProof:
        """Tx ``tx`` is in the log the trusted head covers (refreshing it first if ``tx`` is newer)."""
        if self.head is None or tx > self.head.size:
            self.refresh()
        assert self.head is not None
        return self._store.verify_inclusion(tx, self.head, leaf_hash)
