"""Key layout: order preservation, reversibility, LMDB's 511-byte cap, prefix-freeness."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import encoding
from tests.property.strategies import keys

NS = encoding.ns_prefix(7)

# The suite shares 2 cores with other work: on a loaded machine generating or running an example
# can exceed hypothesis' time budgets (the too_slow health check, the 200 ms deadline), which says
# nothing about these pure functions. Time is not what they test, so neither budget applies.
UNDER_LOAD = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


@UNDER_LOAD
@given(st.lists(st.text(alphabet=["a", "b", "\x00", "\x01", "é", "\uffff"], min_size=1, max_size=30),
                min_size=2, max_size=20))
def test_short_keyparts_sort_like_utf8(names: list[str]) -> None:
    by_key = sorted(set(names), key=utf8)
    by_part = sorted(set(names), key=lambda k: encoding.keypart(NS, utf8(k)))
    assert by_key == by_part


@UNDER_LOAD
@given(keys())
def test_every_keypart_fits_lmdb_with_its_tx(key: str) -> None:
    kp = encoding.keypart(NS, key.encode())
    assert len(kp) + encoding.TX_LEN <= 511
    assert encoding.is_long(kp) == (len(encoding.escape(key.encode())) > encoding.SHORT_MAX)


@UNDER_LOAD
@given(st.text(alphabet=["a", "\x00", "é", "/"], min_size=1, max_size=60))
def test_short_keys_decode_back(key: str) -> None:
    kp = encoding.keypart(NS, key.encode())
    assert not encoding.is_long(kp)
    assert encoding.key_of_short(kp) == key


@UNDER_LOAD
@given(keys(), keys())
def test_keyparts_are_prefix_free(a: str, b: str) -> None:
    ka, kb = encoding.keypart(NS, a.encode()), encoding.keypart(NS, b.encode())
    if a != b:
        assert not ka.startswith(kb) and not kb.startswith(ka)


def test_bucket_never_splits_an_escaped_nul() -> None:
    key = "k" * 480 + "\x00" * 16  # the escape pair 00 FF would straddle byte 481
    kp = encoding.keypart(NS, key.encode())
    assert encoding.is_long(kp)
    body = kp[len(NS):]
    assert body[:480] == b"k" * 480 and body[480:482] == encoding.BUCKET_MARK


@UNDER_LOAD
@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_inverted_tx_sorts_newest_first(a: int, b: int) -> None:
    assert (encoding.inv_tx(a) < encoding.inv_tx(b)) == (a > b)
    assert encoding.tx_of(b"key" + encoding.inv_tx(a)) == a


@UNDER_LOAD
@given(keys(), st.text(alphabet=["a", "k", "\x00", "z"], max_size=500))
def test_range_start_is_a_prefix_of_every_matching_keypart(key: str, prefix: str) -> None:
    if key.startswith(prefix):
        assert encoding.keypart(NS, key.encode()).startswith(encoding.range_start(NS, prefix.encode()))
