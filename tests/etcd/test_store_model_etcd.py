"""The engine's state machine (tests/property/test_store_model.py) on a store on etcd, against the same model.

:class:`EtcdStoreMachine` is the LMDB machine with its store seam overridden: each example opens
``Store.open("etcd://.../model/N")`` on the module's 3-member cluster (a fresh prefix per example: an
empty store, never a new cluster) with the machine's settable clock, so the time-dependent rules (TTL,
``advance``, ``expire``, the expiry sweep before each write, the latest-read rule) run as on LMDB, and
``reopen`` closes the store and opens the prefix again (a new client, a new sealer). Every other rule
and invariant is the LMDB machine's, unchanged, checked against the same :class:`tests.property.model.Model`.

The stream rules (``publish``, its idempotent retry, ``read_stream``, the invariant
``event_counts_match``) run on etcd too, against the same model.

Left out on etcd (each is marked ``@precondition(Needs(capability))`` in the machine, and
:data:`EXCLUDED` removes the capability here; a test below checks that each still has no counterpart):

- the invariant ``latest_index_lists_each_keys_newest_version``: it reads LMDB's latest-version index and
  the namespace counters kept from it through ``store._backend``; etcd has neither (its latest reads are a
  range at the head revision, ``key_count`` a ``count_only`` range, ``size_bytes`` summed per call), so
  there is nothing stored that could drift. ``key_counts_match`` still holds ``key_count`` to the model.

Compaction and backup/restore are not rules of the machine. Examples run one after another on the
module's cluster and each closes its store (and its sealer) before the next opens: a store's tx numbers
need a cluster no one else writes meanwhile (docs/scale-out.md, "One store per cluster").
``test_the_state_machine_on_etcd_at_length`` (``long``) runs many more examples.

The expiry sweep takes the same entries into the same txs on both backends (engine.expiry's
``SWEEP_PER_WRITE`` and ``SWEEP_PER_TX``, which the machine lowers so the cut is reached often, and at
etcd's default ``--max-txn-ops``): ``test_forty_four_expiries_at_once_on_etcd`` runs the machine at the
engine's own limits with 44 expiries due at once, more than one sweep tx takes.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from engine import Store, expiry
from tests.property.test_store_model import CAPABILITIES, Needs, StoreMachine

from .cluster import EtcdCluster

#: Capabilities of the LMDB machine the etcd backend lacks, with why.
EXCLUDED = {
    "latest_index": "LMDB's latest-version index and its counters: internals etcd does not have",
}
_prefixes = itertools.count()


class EtcdStoreMachine(StoreMachine):
    """:class:`StoreMachine` on a fresh prefix of ``cluster`` per example (see the module docstring)."""

    capabilities: ClassVar[frozenset[str]] = CAPABILITIES - EXCLUDED.keys()

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        super().__init__()

    def new_store(self) -> str:
        return self.cluster.store_url(f"model/{next(_prefixes)}")

    def open_store(self) -> Any:
        return Store.open(self.location, clock=self.clock)

    def remove_store(self) -> None:
        """Nothing: the prefix stays in the module's cluster (a temporary one), never opened again."""


def run(cluster: EtcdCluster, max_examples: int, steps: int) -> None:
    run_state_machine_as_test(lambda: EtcdStoreMachine(cluster), settings=settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))


def test_the_state_machine_on_etcd(etcd_cluster: EtcdCluster) -> None:
    # Few short examples: each step costs several etcd round trips (the invariants read namespaces and
    # seal the head), so this keeps the module near 10 s; the long variant is where depth comes from.
    run(etcd_cluster, max_examples=5, steps=12)


@pytest.mark.long
@pytest.mark.timeout(3600)  # about 5 s an example on a loaded 2-core machine
def test_the_state_machine_on_etcd_at_length(etcd_cluster: EtcdCluster) -> None:
    run(etcd_cluster, max_examples=200, steps=50)


def test_the_docstring_names_every_rule_left_out_on_etcd() -> None:
    state = StoreMachine.setup_state()
    left_out = {step.function.__name__ for step in [*state.rules, *state.invariants]
                if any(isinstance(p, Needs) and p.capability in EXCLUDED for p in step.preconditions)}
    assert left_out == {"latest_index_lists_each_keys_newest_version"}
    assert all(f"``{name}``" in (__doc__ or "") for name in left_out)
    assert EXCLUDED.keys() <= CAPABILITIES


def test_what_is_left_out_still_has_no_counterpart_on_etcd(etcd_cluster: EtcdCluster) -> None:
    """LMDB's latest-version index is read through ``store._backend``, which a store on etcd has not; streams,
    once left out, answer (the machine runs their rules)."""
    with Store.open(etcd_cluster.store_url(f"model/{next(_prefixes)}")) as store:
        assert store.streams() == []
        assert not hasattr(store, "_backend")


def forty_four_expiries_at_once(machine: StoreMachine) -> None:
    """At the engine's own sweep limits: 44 keys put with ``ttl=1`` (11 puts of 4), the clock moved 2 s,
    a put (one sweep tx of 24 before it: 20 still due and counted), ``expire()`` (one tx of the 20), the
    key counts checked after each, then the machine's full audit (every read at every tx, the chain)."""
    machine.set_sweep_limits(*machine.saved_sweep_limits)
    assert (machine.per_write, machine.per_tx) == (expiry.SWEEP_PER_WRITE, expiry.SWEEP_PER_TX) == (24, 1000)
    try:
        machine.start()
        for i in range(11):
            machine.put_with_options("alpha", {f"e{4 * i + j}": j for j in range(4)}, 1, False, None)
        machine.advance(2)
        machine.put("alpha", {"x": 1})
        assert machine.store.latest_tx == 13 and machine.store.namespace_info("alpha").key_count == 21
        machine.key_counts_match()
        machine.expire()
        assert machine.store.latest_tx == 14 and machine.store.namespace_info("alpha").key_count == 1
        machine.key_counts_match()
    finally:
        machine.teardown()


def test_forty_four_expiries_at_once_on_lmdb() -> None:
    forty_four_expiries_at_once(StoreMachine())


def test_forty_four_expiries_at_once_on_etcd(etcd_cluster: EtcdCluster) -> None:
    forty_four_expiries_at_once(EtcdStoreMachine(etcd_cluster))
