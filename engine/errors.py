"""The one exception hierarchy of Strata, shared by the engine and the HTTP server.

Every error is an :class:`EngineError` with a stable machine-readable ``code`` (never renamed once
published: clients branch on it), a message a person can act on, and ``details``, a JSON-ready dict.
Errors about individual items of a batch carry ``details["errors"]``: one entry per bad item with
``index``, ``key``, ``code`` and ``message``, so a client can fix every item in one round trip.

No ``lmdb`` exception escapes the engine: :mod:`engine.backend` translates them at one boundary.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every Strata error. ``code`` is stable; ``details`` is JSON-serialisable."""

    code = "ENGINE_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as plain data: ``{"code", "message", **details}``."""
        return {"code": self.code, "message": self.message, **self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r})"


class InvalidParameters(EngineError):
    """An argument has the wrong type or is out of range (e.g. a negative ``tx``)."""

    code = "INVALID_PARAMETERS"


class FutureTx(EngineError):
    """A read asked for a tx above the latest committed one."""

    code = "FUTURE_TX"


class TxCompacted(EngineError):
    """A read asked for a tx older than the compaction horizon: its versions are gone."""

    code = "TX_COMPACTED"


class InvalidNamespace(EngineError):
    """A namespace name is not 1-64 characters of ``[A-Za-z0-9._-]`` (or is ``.``/``..``)."""

    code = "INVALID_NAMESPACE"


class NamespaceNotFound(EngineError):
    """The namespace was never created or written (only raised where existence matters)."""

    code = "NAMESPACE_NOT_FOUND"


class NamespaceExists(EngineError):
    """Explicit creation of a namespace that already exists."""

    code = "NAMESPACE_EXISTS"


class InvalidKey(EngineError):
    """A key is not a non-empty ``str`` of valid Unicode (lone surrogates are rejected)."""

    code = "INVALID_KEY"


class KeyTooLong(EngineError):
    """A key is longer than the limit in UTF-8 bytes (512 by default)."""

    code = "KEY_TOO_LONG"


class InvalidValue(EngineError):
    """A value is not storable: JSON types (None, bool, int in [-2**63, 2**64), finite float, str,
    list, dict with str keys) or bytes are."""

    code = "INVALID_VALUE"


class ValueTooLarge(EngineError):
    """An encoded value is larger than the limit (25 MiB by default)."""

    code = "VALUE_TOO_LARGE"


class InvalidExpiration(EngineError):
    """``expiration`` is not epoch seconds at least ``Limits.min_ttl`` in the future."""

    code = "INVALID_EXPIRATION"


class InvalidExpirationTtl(EngineError):
    """``ttl`` (``expiration_ttl``) is not a number of seconds >= ``Limits.min_ttl``."""

    code = "INVALID_EXPIRATION_TTL"


class InvalidMetadata(EngineError):
    """``metadata`` is not JSON (or holds NaN, bytes, non-str keys, ...)."""

    code = "INVALID_METADATA"


class MetadataTooLarge(EngineError):
    """``metadata`` is larger than ``Limits.max_metadata_bytes`` (1,024) serialised as JSON."""

    code = "METADATA_TOO_LARGE"


class BatchTooLarge(EngineError):
    """A write or read names more items than the limit (10,000 by default)."""

    code = "BATCH_TOO_LARGE"


class EmptyBatch(EngineError):
    """A write with no items: it would consume a tx for nothing, so it is refused."""

    code = "EMPTY_BATCH"


class DuplicateKey(EngineError):
    """One write names the same key twice: which one should win is ambiguous, so it is refused."""

    code = "DUPLICATE_KEY"


class Conflict(EngineError):
    """An ``expect`` condition failed; ``details["conflicts"]`` lists key, expected and actual tx."""

    code = "CONFLICT"


class IdempotencyKeyReused(EngineError):
    """An idempotency key already answered a different request (another method, path, query, body
    or condition) within its lifetime: a new request needs a new key (see :mod:`engine.idempotency`)."""

    code = "IDEMPOTENCY_KEY_REUSED"


class StorageFull(EngineError):
    """The disk (or a file-size limit) refused to grow the store. The store stays readable."""

    code = "STORAGE_FULL"


class StorageUnavailable(EngineError):
    """A storage cluster could not be reached: every endpoint refused, timed out or had no leader.

    ``details["endpoints"]`` lists each endpoint tried with what it answered. ``details["outcome"]`` says
    what became of a write: ``"not_written"`` (no member accepted it) or ``"unknown"`` (a member took it and
    the answer was lost; it may have committed). Retry an ``"unknown"`` write with the same request id: a
    retry-safe commit returns the tx it already got instead of committing twice. Reads are always safe to
    retry."""

    code = "STORAGE_UNAVAILABLE"


class StoreClosed(EngineError):
    """The store was closed; open it again to use it."""

    code = "STORE_CLOSED"


class StorageError(EngineError):
    """LMDB reported an error Strata has no better name for (corruption, I/O error, ...)."""

    code = "STORAGE_ERROR"


class NotSupported(EngineError):
    """The store's backend does not support this operation yet (a store on etcd: streams, the backup of a
    compacted store; see docs/scale-out.md). ``details["operation"]`` names it, ``details["backend"]`` the
    store's backend. Nothing was read or written: open the store on the LMDB backend (a directory) for it."""

    code = "NOT_SUPPORTED"

    @classmethod
    def needs_lmdb(cls, operation: str, backend: str = "etcd") -> NotSupported:
        """The error for ``operation`` on a store whose backend is ``backend``."""
        return cls(f"{operation} is not supported on the {backend} backend yet; it needs the LMDB backend "
                   "(a store opened on a directory)", operation=operation, backend=backend)

    @classmethod
    def unless_lmdb(cls, store: object, operation: str) -> None:
        """Raise the error for ``operation`` unless ``store`` is on the LMDB backend (for functions that take
        a store and reach into LMDB's layout: export, import)."""
        backend = getattr(store, "backend", "lmdb")
        if backend != "lmdb":
            raise cls.needs_lmdb(operation, backend)


class ProofFailed(EngineError):
    """A Merkle proof did not verify, or the answer carrying it was not for what was asked (another
    tx, another size, a head that does not extend the trusted one). Raised by clients that check
    proofs themselves (:mod:`server.client.proofs`): the server's answer must not be used."""

    code = "PROOF_FAILED"


class ProofTooLarge(EngineError):
    """A read with proofs would need more log entry bytes than ``Limits.max_proof_bytes`` (the key was
    written by a very large tx, or the read names too many txs): read it without proofs, or in parts."""

    code = "PROOF_TOO_LARGE"


#: Every error class by its code, for clients (and the server) that map codes back to classes.
BY_CODE: dict[str, type[EngineError]] = {
    cls.code: cls
    for cls in (
        EngineError,
        InvalidParameters,
        FutureTx,
        TxCompacted,
        InvalidNamespace,
        NamespaceNotFound,
        NamespaceExists,
        InvalidKey,
        KeyTooLong,
        InvalidValue,
        ValueTooLarge,
        InvalidExpiration,
        InvalidExpirationTtl,
        InvalidMetadata,
        MetadataTooLarge,
        BatchTooLarge,
        EmptyBatch,
        DuplicateKey,
        Conflict,
        IdempotencyKeyReused,
        StorageFull,
        StorageUnavailable,
        StoreClosed,
        StorageError,
        NotSupported,
        ProofFailed,
        ProofTooLarge,
    )
}
