"""Signed heads: a server's Ed25519 signature over its log's head, and checking one (docs/design.md,
"Signed heads").

A signed head says "at ``time``, the log of ``size`` txs had Merkle root ``root`` and chain hash
``hash``", signed with a key the auditor knows. Kept, it is evidence that cannot be denied later: a
log that no longer extends it (a failed consistency proof) contradicts the server's own signature.

**The signed bytes** (94 bytes, fixed layout, nothing else is ever signed with the same prefix)::

    0..14   b"strata-head-v1"   ASCII: domain separation and format version
    14..22  size                u64 big-endian (the latest tx)
    22..54  root                32 bytes: the Merkle root of txs 1..size
    54..86  hash                32 bytes: the chain hash of tx ``size`` (a receipt for ``verify()``)
    86..94  time_us             u64 big-endian: when the head was signed, UTC microseconds

**Keys.** Ed25519 (RFC 8032) through the ``cryptography`` package. A private key file is PKCS#8 PEM
(as ``openssl genpkey -algorithm ed25519`` writes it); a public key is its 32 raw bytes, written as 64
hex digits (a PEM ``PUBLIC KEY`` is accepted too). ``key_id`` = the first 16 bytes of SHA-256 of the
raw public key, in hex (32 digits): short enough to print, stable, and it names which key signed.

Checking (:func:`verify`) raises :class:`~engine.errors.ProofFailed` (``PROOF_FAILED``) for a bad
signature, a key id no trusted key has, or a malformed field; no I/O.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ProofFailed

PREFIX = b"strata-head-v1"
_layout = struct.Struct(">14sQ32s32sQ")
SIGNED_LEN = _layout.size  # 94
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_U64 = (1 << 64) - 1


class KeyFileError(ValueError):
    """A key file that cannot be used, with a one-line reason (``strata serve`` prints it and exits 2)."""


def signed_bytes(size: int, root: bytes, chain_hash: bytes, time_us: int) -> bytes:
    """The 94 bytes a head's signature covers (layout in the module docstring)."""
    return _layout.pack(PREFIX, size, root, chain_hash, time_us)


def key_id(public: bytes) -> str:
    """The id of a raw 32-byte public key: hex of the first 16 bytes of its SHA-256."""
    return hashlib.sha256(public).digest()[:16].hex()


def time_text(time_us: int) -> str:
    """``time_us`` as the RFC 3339 UTC text every time of the API uses (microseconds when not zero)."""
    moment = _EPOCH + timedelta(microseconds=time_us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}Z" if moment.microsecond else "Z")


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A head and its signature; hashes and the signature in lowercase hex."""

    size: int
    root: str
    hash: str
    time_us: int
    signature: str
    key_id: str

    def message(self) -> bytes:
        """The bytes :attr:`signature` signs."""
        return signed_bytes(self.size, bytes.fromhex(self.root), bytes.fromhex(self.hash), self.time_us)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "root": self.root, "hash": self.hash, "time": time_text(self.time_us),
                "time_us": self.time_us, "signature": self.signature, "key_id": self.key_id}

    @classmethod
    def from_dict(cls, data: Any) -> SignedHead:
        """A signed head from its JSON form, every field checked (``PROOF_FAILED`` if one is malformed;
        ``time`` must be ``time_us`` written as :func:`time_text` writes it)."""
        if type(data) is not dict:
            raise ProofFailed(f"a signed head must be a JSON object, not {type(data).__name__}", field="signed")
        for name in ("size", "time_us"):
            value = data.get(name)
            if type(value) is not int or not 0 <= value <= _MAX_U64:
                raise ProofFailed(f"the signed head's {name} is not an unsigned 64-bit integer: {value!r}",
                                  field=f"signed.{name}")
        for name, pattern, digits in (("root", _HEX64, 64), ("hash", _HEX64, 64), ("signature", _HEX128, 128),
                                      ("key_id", _HEX32, 32)):
            value = data.get(name)
            if type(value) is not str or not pattern.fullmatch(value):
                raise ProofFailed(f"the signed head's {name} is not {digits} lowercase hex digits: "
                                  f"{str(value)[:140]!r}", field=f"signed.{name}")
        if data.get("time") != time_text(data["time_us"]):
            raise ProofFailed(f"the signed head's time {str(data.get('time'))[:40]!r} is not its time_us "
                              f"{data['time_us']} ({time_text(data['time_us'])})", field="signed.time")
        return cls(data["size"], data["root"], data["hash"], data["time_us"], data["signature"], data["key_id"])


class HeadSigner:
    """An Ed25519 private key that signs heads (held by ``strata serve --signing-key``)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(self.public)

    @classmethod
    def load(cls, path: str | Path) -> HeadSigner:
        """The key in a PKCS#8 PEM file; :class:`KeyFileError` with a one-line reason if it is not one."""
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:  # not PEM, encrypted, or an unsupported key
            reason = "it is encrypted (give an unencrypted key)" if "encrypted" in str(exc).lower() else \
                "it is not a PEM private key (make one with strata keygen)"
            raise KeyFileError(f"cannot use the signing key {path}: {reason}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"cannot use the signing key {path}: it is not an Ed25519 key (make one with "
                               "strata keygen)")
        return cls(private)

    def sign(self, size: int, root: str, chain_hash: str, time_us: int) -> SignedHead:
        """Sign the head ``(size, root, hash)`` at ``time_us``."""
        message = signed_bytes(size, bytes.fromhex(root), bytes.fromhex(chain_hash), time_us)
        return SignedHead(size, root, chain_hash, time_us, self._private.sign(message).hex(), self.key_id)


def generate() -> tuple[bytes, bytes]:
    """A new key pair: ``(private key as PKCS#8 PEM, raw 32-byte public key)``."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key(value: str | bytes | Path) -> bytes:
    """A raw public key from what a user gives: 32 raw bytes, 64 hex digits, a PEM ``PUBLIC KEY``, or the
    path of a file holding the hex or the PEM. :class:`KeyFileError` if it is none of those."""
    if type(value) is bytes and len(value) == 32:
        return value
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    if isinstance(value, Path) or not (_HEX64.fullmatch(text.strip().lower()) or "-----BEGIN" in text):
        try:
            text = Path(text).read_text("ascii", "replace")
        except OSError as exc:
            raise KeyFileError(f"{text[:80]!r} is neither a public key (64 hex digits) nor a readable key file: "
                               f"{exc.strerror or exc}") from None
    stripped = text.strip()
    if _HEX64.fullmatch(stripped.lower()):
        return bytes.fromhex(stripped)
    try:
        loaded = serialization.load_pem_public_key(stripped.encode())
    except ValueError:
        raise KeyFileError("a public key must be 64 hex digits (as strata keygen prints) or a PEM PUBLIC KEY") \
            from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeyFileError("the public key is not an Ed25519 key")
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def trusted_keys(keys: bytes | str | Path | Iterable[bytes | str | Path] | Mapping[str, bytes]) -> dict[str, bytes]:
    """``{key_id: raw public key}`` from one key or several (a server may rotate its key)."""
    if isinstance(keys, Mapping):
        return dict(keys)
    many = [keys] if isinstance(keys, str | bytes | Path) else list(keys)
    raw = [public_key(k) for k in many]
    return {key_id(k): k for k in raw}


def verify(signed: SignedHead, keys: Mapping[str, bytes]) -> None:
    """Check ``signed``'s signature with the trusted key its ``key_id`` names (``keys``: from
    :func:`trusted_keys`); ``PROOF_FAILED`` if no trusted key has that id or the signature fails."""
    public = keys.get(signed.key_id)
    if public is None:
        raise ProofFailed(f"the head is signed by key {signed.key_id}, which is not a trusted key "
                          f"({', '.join(sorted(keys)) or 'none given'})", field="signed.key_id", key_id=signed.key_id)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(signed.signature), signed.message())
    except InvalidSignature:
        raise ProofFailed(f"the signature of the head of size {signed.size} (key {signed.key_id}) does not verify: "
                          "the head was altered, or not signed by this key", field="signed.signature",
                          size=signed.size) from None
