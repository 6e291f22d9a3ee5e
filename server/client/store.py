"""A remote store: the surface of :class:`engine.Store` that makes sense over HTTP.

``connect(url)`` returns a :class:`RemoteStore`; code written against ``engine.Store`` runs against a
server by changing the line that opens the store. Namespaces, transactions, streams, the tx log, the
chain head and verification are here; what only a process holding the files can do (``compact``,
``backup`` to a path of the caller, ``expire``, ``close`` of the files) is not.

Writes carry an ``Idempotency-Key`` the client makes (a random UUID per call, the same on every
retry of that call), so a write whose answer was lost is retried and commits once: the server
answers the retry with the first answer.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from engine import errors, signed_head
from engine.events import StreamInfo
from engine.records import NamespaceInfo
from engine.txlog import TxInfo
from engine.txtree import Head, InclusionProof
from engine.validation import check_namespace
from engine.verify import VerifyReport

from . import proofs, shapes
from .namespace import RemoteNamespace, rfc3339
from .problems import ServerError
from .proofs import Verifier
from .stream import RemoteStream
from .transaction import RemoteTransaction
from .transport import Transport

NOTE_HEADER = "X-Strata-Note"
IDEMPOTENCY_HEADER = "Idempotency-Key"

T = TypeVar("T")


class RemoteStore:
    """A Strata server at ``url``, used as a store. ``key`` is an API key (sent as a bearer token);
    ``public_key`` the server's head-signing public key (64 hex digits, raw bytes, a PEM or a key file;
    or a list of them): every head then must carry a signature one of them verifies (see :meth:`head`);
    ``timeout``, ``retries`` and the rest are :class:`~server.client.transport.Transport`'s."""

    def __init__(self, url: str, key: str | None = None, *, public_key: Any = None, **transport: Any) -> None:
        self._http = Transport(url, key=key, **transport)
        self.url = self._http.url
        self._public_keys = None if public_key is None else signed_head.trusted_keys(public_key)
        self._verifier: Verifier | None = None

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (the server keeps running)."""
        self._http.close()

    def _write(self, path: str, body: Any, note: dict[str, Any] | None, idempotency_key: str | None,
               method: str = "POST") -> Any:
        """One write request: the note header, and an idempotency key that makes it safe to retry."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}
        if note is not None:
            if type(note) is not dict:
                raise errors.InvalidParameters(f"note must be a dict, not {type(note).__name__}", parameter="note")
            headers[NOTE_HEADER] = json.dumps(note, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        return self._http.json(method, path, body, write=True, headers=headers)

    # -- namespaces ---------------------------------------------------------------------------

    def namespace(self, name: str) -> RemoteNamespace:
        """The namespace ``name`` (nothing is sent until it is used)."""
        return RemoteNamespace(self, name)

    def namespaces(self) -> list[NamespaceInfo]:
        """Every namespace this key may see, by name."""
        return self._list("storage", shapes.namespace_info)

    def namespace_info(self, name: str) -> NamespaceInfo | None:
        """One namespace, or None if it does not exist."""
        return self._info("storage", name, shapes.namespace_info)

    def create_namespace(self, name: str) -> NamespaceInfo:
        """Create an empty namespace; ``NAMESPACE_EXISTS`` if it exists."""
        return self._create("storage", name, shapes.namespace_info)

    def drop_namespace(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None) -> int:
        """Delete every key of ``name`` in one tx and forget it; ``NAMESPACE_NOT_FOUND`` if it does not exist."""
        return self._drop("storage", name, note)

    # -- streams ------------------------------------------------------------------------------

    def stream(self, name: str) -> RemoteStream:
        return RemoteStream(self, name)

    def streams(self) -> list[StreamInfo]:
        return self._list("stream", shapes.stream_info)

    def stream_info(self, name: str) -> StreamInfo | None:
        return self._info("stream", name, shapes.stream_info)

    def create_stream(self, name: str) -> StreamInfo:
        return self._create("stream", name, shapes.stream_info)

    def drop_stream(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None) -> int:
        return self._drop("stream", name, note)

    # The routes of both kinds of namespace: /v4/namespace/{kind}[/{name}] (kind: storage or stream).

    def _list(self, kind: str, shape: Callable[[dict[str, Any]], T]) -> list[T]:
        return [shape(d) for d in self._http.json("GET", f"/v4/namespace/{kind}")["data"]]

    def _info(self, kind: str, name: str, shape: Callable[[dict[str, Any]], T]) -> T | None:
        try:
            answer = self._http.json("GET", f"/v4/namespace/{kind}/{quote(check_namespace(name), safe='')}")
        except errors.NamespaceNotFound:
            return None
        return shape(answer["data"])

    def _create(self, kind: str, name: str, shape: Callable[[dict[str, Any]], T]) -> T:
        return shape(self._write(f"/v4/namespace/{kind}", {"namespace": check_namespace(name)}, None, None)["data"])

    def _drop(self, kind: str, name: str, note: dict[str, Any] | None) -> int:
        path = f"/v4/namespace/{kind}/{quote(check_namespace(name), safe='')}"
        return int(self._write(path, None, note, None, method="DELETE")["tx"])

    # -- transactions and the tx log ------------------------------------------------------------

    def transaction(self, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                    idempotency_key: str | None = None) -> RemoteTransaction:
        """A transaction committed as one write (see :mod:`server.client.transaction` for what HTTP allows)."""
        return RemoteTransaction(self, note=note, sync=sync, idempotency_key=idempotency_key)

    @property
    def latest_tx(self) -> int:
        """The latest committed tx (one request)."""
        return int(self._http.json("GET", "/v4/head")["tx"])

    def head(self) -> Head:
        """``(latest tx, its chain hash)``: a receipt to keep for :meth:`verify`; also the Merkle tree's
        ``size`` and ``root``, every field checked (``PROOF_FAILED`` if one is malformed). Given a
        ``public_key``, the head's signature too: ``PROOF_FAILED`` if it is missing, does not verify,
        names an unknown key or signs another head; ``Head.signed`` keeps it."""
        return proofs.head_of(self._http.json("GET", "/v4/head"), self._public_keys)

    def verify_consistency(self, old_head: Head, new_head: Head | None = None) -> Head:
        """Check, with a proof this client verifies, that the log of ``new_head`` (default: the server's
        head now) extends the log of ``old_head`` unchanged; return ``new_head``. ``PROOF_FAILED`` if
        the proof fails or the server's log is shorter than ``old_head``'s."""
        new = self.head() if new_head is None else new_head
        if new.size < old_head.size:
            raise errors.ProofFailed(f"the server's log has {new.size} txs, fewer than the {old_head.size} of the "
                                     "trusted head: it was truncated or replaced", size=old_head.size, to=new.size)
        if old_head.size == 0:  # every log extends the empty one
            return new
        answer = self._http.json("GET", "/v4/proof/consistency", query={"from": old_head.size, "to": new.size})
        proofs.check_consistency(answer, old_head, new)
        return new

    def verify_inclusion(self, tx: int, head: Head, leaf_hash: bytes | None = None) -> InclusionProof:
        """Check, with a proof this client verifies, that tx ``tx`` is in the log of ``head`` (and, if
        given, that its leaf hash is ``leaf_hash``). ``PROOF_FAILED`` if not."""
        if type(tx) is not int or not 1 <= tx <= head.size:
            raise errors.InvalidParameters(f"tx must be an integer from 1 to the head's size {head.size}, not {tx!r}",
                                           parameter="tx")
        answer = self._http.json("GET", "/v4/proof/inclusion", query={"tx": tx, "size": head.size})
        return proofs.check_inclusion(answer, tx, head, leaf_hash)

    def verifier(self, state_file: str | os.PathLike[str] | None = None, *, trust: Head | None = None) -> Verifier:
        """A :class:`~server.client.proofs.Verifier`: the head this client trusts, kept in ``state_file``.
        It becomes the one :meth:`trusted` returns (the one verified reads check against)."""
        self._verifier = Verifier(self, state_file, trust=trust)
        return self._verifier

    def trusted(self) -> Verifier:
        """The verifier verified reads (``namespace.read(keys, verified=True)``) check against: the last
        one :meth:`verifier` made, else one, in memory only, that trusts the first head it is shown."""
        if self._verifier is None:
            self._verifier = Verifier(self)
        return self._verifier

    def verify(self, receipt: tuple[int, str] | None = None) -> VerifyReport:
        """Have the server re-derive the hash chain (an admin key's right); ``ok`` says whether it is intact."""
        query = None if receipt is None else {"receipt_tx": receipt[0], "receipt_hash": receipt[1]}
        a = self._http.json("GET", "/v4/verify", query=query)
        return VerifyReport(a["ok"], a["checked"], a["head_tx"], a["head_hash"], a.get("bad_tx"), a.get("problem"))

    def tx_at(self, at: datetime | float) -> int:
        """The last tx committed at or before ``at`` (0 if none)."""
        return int(self._http.json("GET", "/v4/tx", query={"at": rfc3339(at)})["tx"])

    def tx_info(self, tx: int) -> TxInfo | None:
        """A committed tx's time, note, operations and hash; None if it was not committed."""
        try:
            return shapes.tx_info(self._http.json("GET", f"/v4/tx/{int(tx)}"))
        except ServerError as exc:
            if exc.code == "TX_NOT_FOUND":
                return None
            raise

    def changes(self, since: int = 0, *, limit: int = 1000, namespace: str | None = None) -> list[TxInfo]:
        """The txs after ``since`` that touched ``namespace`` (over HTTP the feed is per namespace,
        so ``namespace`` is required)."""
        if namespace is None:
            raise errors.InvalidParameters("over HTTP the change feed is per namespace: give namespace=",
                                           parameter="namespace")
        return self.namespace(namespace).changes(since, limit=limit)


def connect(url: str | None = None, key: str | None = None, *, public_key: Any = None,
            **transport: Any) -> RemoteStore:
    """A :class:`RemoteStore` for the server at ``url`` (default ``$STRATA_URL``, else
    ``http://127.0.0.1:8080``) with API key ``key`` (default ``$STRATA_KEY``, else none); with
    ``public_key``, heads must be signed by that key (see :meth:`RemoteStore.head`).
    No request is made until the store is used."""
    import os

    url = url or os.environ.get("STRATA_URL") or "http://127.0.0.1:8080"
    key = key if key is not None else (os.environ.get("STRATA_KEY") or None)
    return RemoteStore(url, key, public_key=public_key, **transport)
