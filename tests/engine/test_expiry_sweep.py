"""Expiry: the earliest pending expiry, ``expire()`` over more than one tx's worth of due keys, and
the bounds of ``ttl`` and ``expiration``. Time comes from the settable clock."""

from __future__ import annotations

import pytest

from engine import Store, errors, expiry
from engine.schema import time_of
from tests.conftest import fingerprint
from tests.engine.clock import T0, Clock, clock, store  # noqa: F401 (fixtures)

S = 1_000_000  # microseconds per second


def test_next_expiry_is_the_earliest_pending_one(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    assert store.next_expiry() is None
    ns.put({"late": 1}, ttl=50)
    ns.put({"soon": 1}, ttl=10)
    assert store.next_expiry() == time_of(round(T0) * S + 10 * S)
    clock.now = T0 + 10
    assert store.expire() == 1
    assert store.next_expiry() == time_of(round(T0) * S + 50 * S)


@pytest.mark.parametrize(("now", "recorded", "txs"), [(T0 + 2, expiry.SWEEP_PER_TX + 1, 2),
                                                      (T0 + 1.5, expiry.SWEEP_PER_TX, 1)])
def test_expire_records_what_is_due_in_txs_of_at_most_1000_deletes(
        store: Store, clock: Clock, now: float, recorded: int, txs: int) -> None:
    """1,000 keys expire at T0 + 1 (tx 1), one more at T0 + 2 (tx 2). At T0 + 2 exactly the last one
    is due too and takes a second tx; half a second earlier it is not, and one tx records the rest."""
    ns = store.namespace("n")
    ns.put({f"k{i:04}": i for i in range(expiry.SWEEP_PER_TX)}, ttl=1)
    ns.put({"z": 1}, ttl=2)
    clock.now = now
    assert store.expire() == recorded
    assert store.latest_tx == 2 + txs
    first = store.tx_info(3)
    assert first is not None and first.note == {"expired": True}
    assert len(first.operations) == expiry.SWEEP_PER_TX and {op.op for op in first.operations} == {"delete"}
    if txs == 2:
        second = store.tx_info(4)
        assert second is not None and second.note == {"expired": True}
        assert [(op.key, op.op) for op in second.operations] == [("z", "delete")]
        assert store.next_expiry() is None
    else:
        assert store.next_expiry() == time_of(round(T0) * S + 2 * S)
    assert store.expire() == 0 and store.latest_tx == 2 + txs


def test_ttl_and_expiration_are_accepted_up_to_their_maximum(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"ttl": 1}, ttl=expiry.MAX_TTL)
    ns.put({"at": 1}, expiration=T0 + 1 + expiry.MAX_TTL)  # the earliest allowed (now + min_ttl) plus MAX_TTL
    before = fingerprint(store)
    with pytest.raises(errors.InvalidExpirationTtl) as ttl:
        ns.put({"ttl": 2}, ttl=expiry.MAX_TTL + 1)
    message = "ttl must be a number of seconds from 1 to 10000000000, not 10000000001"
    code = "INVALID_EXPIRATION_TTL"
    assert ttl.value.to_dict() == {"code": code, "message": message,
                                   "errors": [{"index": 0, "key": "ttl", "code": code, "message": message}]}
    with pytest.raises(errors.InvalidExpiration) as at:
        ns.put({"at": 2}, expiration=T0 + 2 + expiry.MAX_TTL)
    message = "expiration must be epoch seconds at least 1 s in the future (>= 1800000001), not 11800000002.0"
    code = "INVALID_EXPIRATION"
    assert at.value.to_dict() == {"code": code, "message": message,
                                  "errors": [{"index": 0, "key": "at", "code": code, "message": message}]}
    assert fingerprint(store) == before


@pytest.mark.parametrize("write", ["publish", "drop stream", "drop namespace"])
def test_writes_outside_put_record_due_expiries_first(store: Store, clock: Clock, write: str) -> None:
    """A publish or a drop past an expiry commits after the expiry's delete, in a tx of its own, so a
    diff across it shows the key leaving, as a read at it does."""
    store.stream("s").publish([1])
    store.namespace("other").put({"keep": 1})
    ns = store.namespace("n")
    before = ns.put({"a": 1, "b": 2}, ttl=1)
    clock.now = T0 + 1  # exactly the expiry instant: due
    if write == "publish":
        tx = store.stream("s").publish([2])
    elif write == "drop stream":
        tx = store.drop_stream("s")
    else:
        tx = store.drop_namespace("other")
    swept = store.tx_info(before + 1)
    assert swept is not None and swept.note == {"expired": True} and tx == before + 2
    assert ns.read(["a", "b"], tx=tx).records == []
    assert [(c.key, c.kind) for c in ns.diff(before, tx)] == [("a", "deleted"), ("b", "deleted")]
    assert [(c.key, c.kind) for c in ns.diff(before + 1, tx)] == []


def test_a_refused_drop_records_no_expiry(store: Store, clock: Clock) -> None:
    store.namespace("n").put({"a": 1}, ttl=1)
    clock.now = T0 + 2
    print_before = fingerprint(store)
    with pytest.raises(errors.NamespaceNotFound):
        store.drop_namespace("missing")
    with pytest.raises(errors.NamespaceNotFound):
        store.drop_stream("missing")
    assert fingerprint(store) == print_before and store.latest_tx == 1
