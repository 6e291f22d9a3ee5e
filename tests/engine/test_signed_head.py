"""Signed heads (engine/signed_head.py): the exact signed bytes, key ids, signing and every refusal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import errors, signed_head
from engine.signed_head import HeadSigner, KeyFileError, SignedHead

# RFC 8032 section 7.1, TEST 1: the secret key and the public key it derives.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
ROOT, CHAIN = "ab" * 32, "cd" * 32
TIME_US = 1_764_000_000_123_456


@pytest.fixture
def signer() -> HeadSigner:
    return HeadSigner(Ed25519PrivateKey.from_private_bytes(RFC_SEED))


def test_the_signed_bytes_are_the_documented_94() -> None:
    expected = (b"strata-head-v1" + (5).to_bytes(8, "big") + bytes.fromhex(ROOT) + bytes.fromhex(CHAIN)
                + TIME_US.to_bytes(8, "big"))
    assert len(expected) == 94 == signed_head.SIGNED_LEN
    assert signed_head.signed_bytes(5, bytes.fromhex(ROOT), bytes.fromhex(CHAIN), TIME_US) == expected


def test_key_id_is_the_first_16_bytes_of_sha256_of_the_raw_public_key(signer: HeadSigner) -> None:
    assert signer.public == RFC_PUBLIC
    assert signer.key_id == hashlib.sha256(RFC_PUBLIC).hexdigest()[:32] == "21fe31dfa154a261626bf854046fd227"


def test_a_head_signs_and_verifies_and_round_trips_as_json(signer: HeadSigner) -> None:
    head = signer.sign(5, ROOT, CHAIN, TIME_US)
    assert head.to_dict() == {
        "size": 5, "root": ROOT, "hash": CHAIN, "time": "2025-11-24T16:00:00.123456Z", "time_us": TIME_US,
        # Ed25519 is deterministic: the same key and bytes give this signature on any machine.
        "signature": "ce0abb6c8e03d2f8e7c7cf5ce4e2c41962815190cf9779d7dc41a390ee285c67"
                     "99e98ea5a6947dcba75db91f773ed49531170584b3b0a07df776171a0b1a1708",
        "key_id": "21fe31dfa154a261626bf854046fd227"}
    assert SignedHead.from_dict(head.to_dict()) == head
    signed_head.verify(head, {signer.key_id: signer.public})  # no exception
    assert signed_head.time_text(1_764_000_000_000_000) == "2025-11-24T16:00:00Z"


@pytest.mark.parametrize(("field", "value"), [
    ("size", 6), ("size", 4), ("root", "ab" * 31 + "aa"), ("hash", "cd" * 31 + "cc"), ("time_us", TIME_US + 1),
    ("signature", "00" * 64)])
def test_each_altered_field_fails_the_signature(signer: HeadSigner, field: str, value: object) -> None:
    data = {**signer.sign(5, ROOT, CHAIN, TIME_US).to_dict(), field: value}
    if field == "time_us":
        data["time"] = signed_head.time_text(TIME_US + 1)
    with pytest.raises(errors.ProofFailed, match=r"^the signature of the head of size \d+ \(key 21fe31df") as failed:
        signed_head.verify(SignedHead.from_dict(data), {signer.key_id: signer.public})
    assert failed.value.code == "PROOF_FAILED" and failed.value.details["field"] == "signed.signature"


def test_a_flipped_bit_anywhere_in_the_signature_fails(signer: HeadSigner) -> None:
    head = signer.sign(5, ROOT, CHAIN, TIME_US)
    raw = bytes.fromhex(head.signature)
    for bit in range(0, 512, 7):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << bit % 8
        forged = SignedHead(5, ROOT, CHAIN, TIME_US, flipped.hex(), head.key_id)
        with pytest.raises(errors.ProofFailed):
            signed_head.verify(forged, {signer.key_id: signer.public})


def test_another_key_is_refused_by_id_and_by_signature(signer: HeadSigner) -> None:
    other = HeadSigner(Ed25519PrivateKey.generate())
    head = other.sign(5, ROOT, CHAIN, TIME_US)
    with pytest.raises(errors.ProofFailed, match=rf"^the head is signed by key {other.key_id}, which is not a trusted "
                                                 rf"key \({signer.key_id}\)$"):
        signed_head.verify(head, {signer.key_id: signer.public})
    relabelled = SignedHead(5, ROOT, CHAIN, TIME_US, head.signature, signer.key_id)  # claims the trusted key's id
    with pytest.raises(errors.ProofFailed, match=r"does not verify"):
        signed_head.verify(relabelled, {signer.key_id: signer.public})
    both = signed_head.trusted_keys([signer.public, other.public.hex()])  # a rotated key: either may sign
    signed_head.verify(head, both)
    signed_head.verify(signer.sign(5, ROOT, CHAIN, TIME_US), both)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("size", -1, "the signed head's size is not an unsigned 64-bit integer: -1"),
    ("size", True, "the signed head's size is not an unsigned 64-bit integer: True"),
    ("time_us", 1 << 64, "the signed head's time_us is not an unsigned 64-bit integer"),
    ("root", "AB" * 32, "the signed head's root is not 64 lowercase hex digits"),
    ("hash", None, "the signed head's hash is not 64 lowercase hex digits: 'None'"),
    ("signature", "ab" * 63, "the signed head's signature is not 128 lowercase hex digits"),
    ("key_id", "ab" * 17, "the signed head's key_id is not 32 lowercase hex digits"),
    ("time", "2025-11-24T16:00:00Z", "the signed head's time '2025-11-24T16:00:00Z' is not its time_us"),
])
def test_a_malformed_signed_head_is_refused(signer: HeadSigner, field: str, value: object, message: str) -> None:
    data = {**signer.sign(5, ROOT, CHAIN, TIME_US).to_dict(), field: value}
    with pytest.raises(errors.ProofFailed, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        SignedHead.from_dict(data)
    with pytest.raises(errors.ProofFailed, match=r"^a signed head must be a JSON object, not list$"):
        SignedHead.from_dict([])


def test_key_files(tmp_path: Path, signer: HeadSigner) -> None:
    pem, public = signed_head.generate()
    (tmp_path / "k.pem").write_bytes(pem)
    loaded = HeadSigner.load(tmp_path / "k.pem")
    assert loaded.public == public and loaded.key_id == signed_head.key_id(public)
    pub_pem = loaded._private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "k.pub").write_text(public.hex() + "\n")
    (tmp_path / "k-pub.pem").write_bytes(pub_pem)
    for given in (public, public.hex(), str(tmp_path / "k.pub"), tmp_path / "k-pub.pem", pub_pem.decode()):
        assert signed_head.public_key(given) == public
    (tmp_path / "garbage").write_text("not a key\n")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "ec.pem").write_bytes(ec_pem)
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    (tmp_path / "enc.pem").write_bytes(encrypted)
    refusals = {
        "missing": f"cannot read the signing key {tmp_path / 'missing'}: No such file or directory",
        "garbage": f"cannot use the signing key {tmp_path / 'garbage'}: it is not a PEM private key (make one with "
                   "strata keygen)",
        "ec.pem": f"cannot use the signing key {tmp_path / 'ec.pem'}: it is not an Ed25519 key (make one "
                  "with strata keygen)",
        "enc.pem": f"cannot use the signing key {tmp_path / 'enc.pem'}: it is encrypted (give an unencrypted key)",
    }
    for name, message in refusals.items():
        with pytest.raises(KeyFileError) as refused:
            HeadSigner.load(tmp_path / name)
        assert str(refused.value) == message
    with pytest.raises(KeyFileError, match=r"^a public key must be 64 hex digits \(as strata keygen prints\) or a PEM"):
        signed_head.public_key(tmp_path / "garbage")
    with pytest.raises(KeyFileError, match=r"^'nope' is neither a public key \(64 hex digits\) nor a readable"):
        signed_head.public_key("nope")
    assert os.path.exists(tmp_path / "k.pem")
