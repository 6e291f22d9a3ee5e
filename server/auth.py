"""API keys: who may call what. ``Authorization: Bearer <key>``, keys listed in a JSON file.

The keys file (``--keys FILE`` or ``STRATA_KEYS_FILE``)::

    {"keys": [
        {"name": "ingest", "key": "a-long-random-secret", "scope": "write", "namespaces": ["sample"]},
        {"name": "ops", "key_sha256": "<hex sha-256 of the secret>", "scope": "admin"}
    ]}

``scope`` is ``read`` (read and scan), ``write`` (also write, delete, single-key writes) or ``admin``
(also create and drop namespaces); each includes the ones before it. ``namespaces`` (optional)
limits the key to those namespaces. A key is given as ``key`` (at least 16 characters) or, to keep
secrets out of the file, as ``key_sha256``. ``name`` is what logs show: secrets are never logged.

Lookup hashes the presented key with SHA-256 and finds the entry by digest, then confirms with
``hmac.compare_digest``: the time taken does not depend on how much of a secret an attacker guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from server.problems import FORBIDDEN, UNAUTHORIZED, HTTPProblem

SCOPES: dict[str, int] = {"read": 1, "write": 2, "admin": 3}
MIN_KEY_LENGTH = 16
_BEARER = "bearer "


class KeysFileError(ValueError):
    """The keys file is missing, not JSON, or an entry is malformed (message says which)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key: its display ``name``, ``scope``, allowed ``namespaces`` (None = all)."""

    name: str
    scope: str
    namespaces: frozenset[str] | None
    digest: bytes

    @property
    def level(self) -> int:
        return SCOPES[self.scope]


class KeyRing:
    """The configured keys. Empty means auth is off (every request is let through).

    ``authenticate(header)`` returns the :class:`ApiKey` or raises a 401 problem;
    ``authorize(key, scope, namespace)`` raises a 403 problem when the key's scope is below
    ``scope`` or ``namespace`` is outside its list.
    """

    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {k.digest: k for k in keys}
        if len(self._by_digest) != len(keys):
            raise KeysFileError("the same key is listed twice")

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Read a keys file (format in the module docstring); :class:`KeysFileError` if invalid."""
        try:
            data = orjson.loads(Path(path).read_bytes())
        except OSError as exc:
            raise KeysFileError(f"cannot read keys file {path}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise KeysFileError(f"keys file {path} is not JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) != {"keys"} or not isinstance(data["keys"], list):
            raise KeysFileError(f'keys file {path} must be an object {{"keys": [...]}}')
        return cls([parse_entry(entry, i) for i, entry in enumerate(data["keys"])])

    def authenticate(self, header: str | None) -> ApiKey:
        """The key named by an ``Authorization`` header value, or a 401 problem."""
        if not header or header[:7].lower() != _BEARER:
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <key>'")
        presented = header[7:].strip().encode("utf-8", "surrogateescape")
        digest = hashlib.sha256(presented).digest()
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise unauthorized("unknown API key")
        return key

    @staticmethod
    def authorize(key: ApiKey, scope: str, namespace: str | None) -> None:
        """Raise a 403 problem unless ``key`` has ``scope`` (or more) and may use ``namespace``."""
        if key.level < SCOPES[scope]:
            raise HTTPProblem(403, FORBIDDEN, f"API key {key.name!r} has scope {key.scope!r}; this needs {scope!r}")
        if namespace is not None and key.namespaces is not None and namespace not in key.namespaces:
            raise HTTPProblem(403, FORBIDDEN, f"API key {key.name!r} may not use namespace {namespace!r}")


def parse_entry(entry: Any, index: int) -> ApiKey:
    """One keys-file entry -> :class:`ApiKey` (``KeysFileError`` naming the entry if malformed)."""
    where = f"keys[{index}]"
    if not isinstance(entry, dict):
        raise KeysFileError(f"{where} must be an object")
    unknown = set(entry) - {"name", "key", "key_sha256", "scope", "namespaces"}
    if unknown:
        raise KeysFileError(f"{where} has unknown fields {sorted(unknown)}")
    scope = entry.get("scope")
    if scope not in SCOPES:
        raise KeysFileError(f"{where}.scope must be one of {list(SCOPES)}")
    name = entry.get("name", f"key-{index}")
    if not isinstance(name, str):
        raise KeysFileError(f"{where}.name must be a string")
    if ("key" in entry) == ("key_sha256" in entry):
        raise KeysFileError(f"{where} needs exactly one of 'key' and 'key_sha256'")
    if "key" in entry:
        secret = entry["key"]
        if not isinstance(secret, str) or len(secret) < MIN_KEY_LENGTH or secret != secret.strip():
            raise KeysFileError(f"{where}.key must be a string of at least {MIN_KEY_LENGTH} characters")
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
    else:
        hexdigest = entry["key_sha256"]
        try:
            digest = bytes.fromhex(hexdigest) if isinstance(hexdigest, str) else b""
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise KeysFileError(f"{where}.key_sha256 must be 64 hex digits")
    namespaces = entry.get("namespaces")
    if namespaces is not None and (
        not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces)
    ):
        raise KeysFileError(f"{where}.namespaces must be a list of namespace names")
    return ApiKey(name, scope, None if namespaces is None else frozenset(namespaces), digest)


def unauthorized(detail: str) -> HTTPProblem:
    """The 401 problem (with the ``WWW-Authenticate`` challenge RFC 6750 asks for)."""
    return HTTPProblem(401, UNAUTHORIZED, detail, headers=[("WWW-Authenticate", 'Bearer realm="strata"')])
