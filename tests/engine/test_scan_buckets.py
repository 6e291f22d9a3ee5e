"""Scans over long keys: prefixes longer than a bucket's stem, and paging inside one bucket.

Keys whose escaped form exceeds 497 bytes share a bucket named by their first 481 bytes and are
ordered inside it by a hash, not by their bytes; the scan must still return UTF-8 byte order and
a page must resume exactly after the key it ended on.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Record, Store
from tests.engine.clock import T0, Clock

STEM = "z" * 496
# Inside the bucket these two sort by SHA-256, which puts "...ba" first: the reverse of byte order.
LOW, HIGH = STEM + "ab", STEM + "ba"


def test_the_pair_sorts_in_reverse_inside_its_bucket() -> None:
    # The premise of the paging test below: byte order and bucket (hash) order disagree.
    assert LOW < HIGH
    assert hashlib.sha256(HIGH.encode()).digest()[:15] < hashlib.sha256(LOW.encode()).digest()[:15]


def test_paging_one_key_at_a_time_inside_a_bucket_skips_nothing(store: Store) -> None:
    ns = store.namespace("n")
    keys = [STEM + "a", LOW, HIGH, STEM + "bb", "z" * 497, "z" * 498 + "a"]
    ns.put({k: i for i, k in enumerate(keys)})
    seen: list[str] = []
    after = None
    while True:
        page = [r.key for r in ns.scan(after=after, limit=1)]
        if not page:
            break
        seen += page
        after = page[-1]
    assert seen == sorted(keys, key=str.encode)


def test_a_prefix_longer_than_the_bucket_stem_finds_its_long_keys(store: Store) -> None:
    ns = store.namespace("n")
    keys = ["k" * 500, "k" * 489 + "j" + "k" * 10, "k" * 400, "k" * 512]
    ns.put(dict.fromkeys(keys, 1))
    for length in (480, 481, 490, 497, 499, 500):
        expected = sorted((k for k in keys if k.startswith("k" * length)), key=str.encode)
        assert [r.key for r in ns.scan(prefix="k" * length)] == expected, length
    assert [r.key for r in ns.scan(prefix="k" * 489 + "j")] == ["k" * 489 + "j" + "k" * 10]


@pytest.mark.parametrize("tail", ["", "a", "aa", "a" * 16])
def test_paging_after_a_short_key_that_names_a_bucket_finds_the_long_keys_in_it(store: Store, tail: str) -> None:
    """The bucket of a long key is named by its first 481 bytes and sorts before a longer short key
    with that beginning: paging after such a key (482 to 497 bytes) must still visit the bucket."""
    ns = store.namespace("t")
    long_key = "z" * 481 + "b" * 30  # long (511 bytes): bucketed under "z" * 481
    after = "z" * 481 + tail
    ns.put({long_key: 1, after: 0})
    assert [r.key for r in ns.scan(after=after)] == [long_key]
    assert [r.key for r in ns.scan(prefix="z", after=after, limit=1)] == [long_key]


def test_a_scan_fills_created_at_of_long_keys_from_their_older_versions(tmp_path: Path) -> None:
    """A long key's plain put stores no creation time: the scan derives it from the key's versions,
    which it finds by the version's keypart, as a read does."""
    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        _created_at_through_scans(store, clock)


def _created_at_through_scans(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    long_key, short_key = "z" * 510, "y"
    tx1 = ns.put({long_key: 1, short_key: 1})
    clock.now = T0 + 5
    tx2 = ns.put({long_key: 2, short_key: 2})
    first, then = datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 5, UTC)
    fields = ["created_at", "updated_at"]
    assert list(ns.scan(fields=fields)) == [
        Record(short_key, 2, tx2, created_at=first, updated_at=then),
        Record(long_key, 2, tx2, created_at=first, updated_at=then),
    ]
    assert list(ns.scan(tx=tx1, fields=fields)) == [
        Record(short_key, 1, tx1, created_at=first, updated_at=first),
        Record(long_key, 1, tx1, created_at=first, updated_at=first),
    ]
    assert [r.created_at for r in ns.read([long_key], fields=fields).records] == [first]
