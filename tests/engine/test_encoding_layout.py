"""The on-disk layout of version keys, byte for byte as the docstring of engine/encoding.py spells it:
a store written by one version of the code must be read by the next, so these bytes are a contract."""

from __future__ import annotations

import hashlib

from engine.encoding import inv_tx, keypart, ns_prefix, range_start

NS = b"\x00\x00\x00\x07"


def test_a_short_key_is_escaped_and_terminated() -> None:
    assert ns_prefix(7) == NS
    assert keypart(NS, b"a\x00b") == NS + b"a\x00\xffb" + b"\x00\x00"
    assert keypart(NS, b"k" * 497) == NS + b"k" * 497 + b"\x00\x00"
    assert inv_tx(1) == b"\xff" * 7 + b"\xfe"


def test_a_long_key_lives_in_a_481_byte_bucket() -> None:
    raw = b"k" * 498
    assert keypart(NS, raw) == NS + b"k" * 481 + b"\x00\x01" + hashlib.sha256(raw).digest()[:15] + b"\x01"


def test_a_bucket_name_is_cut_to_480_bytes_only_not_to_split_an_escaped_nul() -> None:
    raw = b"k" * 480 + b"\x00" + b"z" * 20  # byte 481 of the escaped key is the 00 of a 00 FF pair
    assert keypart(NS, raw) == NS + b"k" * 480 + b"\x00\x01" + hashlib.sha256(raw).digest()[:15] + b"\x01"


def test_a_scan_of_a_long_prefix_starts_at_its_first_480_escaped_bytes() -> None:
    assert range_start(NS, b"k" * 490) == NS + b"k" * 480
    assert range_start(NS, b"ab\x00") == NS + b"ab\x00\xff"
