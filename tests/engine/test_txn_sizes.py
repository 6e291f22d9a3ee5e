"""A namespace's ``key_count`` and ``size_bytes`` after each kind of write, exactly.

``size_bytes`` sums, over the live keys, the bytes of each key's newest version as stored (docs/design.md,
"Version keys"): its keypart (short form: 4-byte namespace id, escaped key, ``00 00``; long form:
4 + 481 + 2 + 15 + 1 = 503 bytes) and its record (a plain put: the msgpack value; a clear: ``C1 01``;
a long key's put: ``C1 03`` and msgpack ``[op, key, packed value]``; a put with metadata or an
expiry: ``C1 03`` and msgpack ``[op, key or None, packed, expire_us, metadata, created_us]``).
"""

from __future__ import annotations

from engine import Store

LONG = "b" * 510
# C1 03, fixarray(3), op 0, str16 (DA 01 FE + 510 bytes), bin8 of the packed value 1 (C4 01 01).
LONG_RECORD = 2 + 1 + 1 + 3 + 510 + 3


def counts(store: Store) -> tuple[int, int]:
    info = store.namespace_info("n")
    assert info is not None
    return info.key_count, info.size_bytes


def test_key_count_and_size_follow_each_write(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    assert counts(store) == (1, 7 + 1)  # keypart 4 + 1 + 2, record 01
    ns.put({"a": "xyz"})
    assert counts(store) == (1, 7 + 4)  # the older version no longer counts; record A3 78 79 7A
    ns.put({"a\x00b": True})
    assert counts(store) == (2, 11 + (4 + 4 + 2) + 1)  # 00 escaped as 00 FF; record C3
    ns.clear(["a"])
    assert counts(store) == (2, 11 + 7 + 2)  # a cleared key is live: keypart and C1 01
    ns.put({LONG: 1})
    assert counts(store) == (3, 20 + 503 + LONG_RECORD)
    tx = ns.delete(["a", LONG])
    assert counts(store) == (1, 11)  # deleted keys count nothing
    assert ns.delete(["a"]) == tx  # a no-op delete takes no tx and changes nothing
    assert counts(store) == (1, 11)
    with store.transaction() as t:
        t.put("n", "c", 1)
        t.delete("n", "a\x00b")
        t.put("n", "c", 22)  # the same key again: one version, the last value
    assert counts(store) == (1, 7 + 1)
    assert [(r.key, r.value) for r in ns.scan()] == [("c", 22)]
    ns.put({"d": 1}, metadata={"m": 1})
    # C1 03, fixarray(6): op 0, no key (C0: a short key is read from its keypart), bin8 of the packed
    # value (C4 01 01), no expiry (C0), {"m": 1} (81 A1 6D 01), created_us as uint64 (CF + 8 bytes).
    assert counts(store) == (2, 8 + 7 + 2 + 1 + 1 + 1 + 3 + 1 + 4 + 9)
