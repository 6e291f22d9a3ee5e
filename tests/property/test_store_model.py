"""The engine against a plain model of all versions, under random operation sequences.

Every step is followed by checks of ``latest_tx``; reads at random past txs and scans with random
prefixes, cursors and limits are rules of their own, so hypothesis interleaves them with writes,
failed writes, conflicts, conditional writes (``expect`` with the current tx, a stale one and 0, on
present, cleared, deleted, expired and absent keys), idempotent retries and close/reopen. The expiry
sweep is modelled entry by entry (which due entries a sweep takes, stale ones included), with the
sweep limits lowered (:attr:`StoreMachine.sweep_limits`) so that the cut is reached often. Set
``STRATA_LONG=1`` (the ``long`` marker's mode) for many more examples.

The machine runs on LMDB here and on etcd in ``tests/etcd/test_store_model_etcd.py``: a subclass
overrides the store seam (:meth:`StoreMachine.new_store`, :meth:`StoreMachine.open_store`,
:meth:`StoreMachine.remove_store`) and narrows :attr:`StoreMachine.capabilities`; a rule or invariant
that needs a capability says so with ``@precondition(Needs("..."))`` and is left out where it is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine import Item, Store, errors, expiry, merkle
from engine import latest as latest_index
from engine.idempotency import Claim, Replay
from tests.engine.clock import Clock  # the store's clock: time moves only when the `advance` rule says so

from .model import CLEAR, DELETE, PUT, Model
from .strategies import NAMESPACES, keys, values

LONG = os.environ.get("STRATA_LONG") == "1"


def same(a: Any, b: Any) -> bool:
    """Equality that also demands the same types (1 is not 1.0, bytes is not str) and dict order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def as_tuple(rec: Any) -> tuple[Any, ...]:
    return (rec.key, rec.value, rec.tx, rec.binary, rec.cleared)


def assert_records(got: list[Any], want: list[tuple[Any, ...]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[2:] == w[2:], (g, w)
        assert same(g[1], w[1]), (g, w)



#: What a rule may need of the backend under test beyond the core API (namespaces, transactions, reads
#: at any tx, history, diff, expiry, idempotency, the hash chain and the Merkle tree).
CAPABILITIES = frozenset({
    "streams",       # stream publish and read
    "revert",        # Namespace.revert
    "latest_index",  # LMDB's latest-version index and the namespace counters kept from it (internals)
})


@dataclass(frozen=True)
class Needs:
    """A precondition: the rule or invariant runs only on a machine whose ``capabilities`` hold
    ``capability`` (one of :data:`CAPABILITIES`)."""

    capability: str

    def __call__(self, machine: StoreMachine) -> bool:
        return self.capability in machine.capabilities


class StoreMachine(RuleBasedStateMachine):
    written = Bundle("written")
    #: What the backend under test does (LMDB: everything); a rule marked ``Needs(c)`` runs only if c is here.
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES
    #: Expiry index entries a write's sweep and an ``expire()`` tx take (engine.expiry.SWEEP_PER_WRITE,
    #: SWEEP_PER_TX, which both backends read): small, so a few puts with a ttl reach them and the model's
    #: cut (which entries first) is checked often.
    sweep_limits: ClassVar[tuple[int, int]] = (3, 5)

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.saved_sweep_limits = (expiry.SWEEP_PER_WRITE, expiry.SWEEP_PER_TX)
        self.set_sweep_limits(*self.sweep_limits)
        self.location = self.new_store()
        self.store = self.open_store()
        self.model = Model()
        self.claims: list[Claim] = []  # idempotency claims used so far (each key once)

    # -- the store seam: what a backend's machine overrides -------------------------------------

    def new_store(self) -> str:
        """Where this example's store lives, empty: a new temporary directory."""
        return tempfile.mkdtemp(prefix="strata-model-")

    def open_store(self) -> Any:
        """Open the store at ``self.location`` on the machine's clock (again after a close, on ``reopen``)."""
        return Store.open(self.location, sync=False, map_size=1 << 20, clock=self.clock)  # small map: growth

    def remove_store(self) -> None:
        """Remove what the example's store left behind (after it is closed)."""
        shutil.rmtree(self.location, ignore_errors=True)

    def teardown(self) -> None:
        try:
            self.full_audit()
        finally:
            self.set_sweep_limits(*self.saved_sweep_limits)
            self.store.close()
            self.remove_store()

    def set_sweep_limits(self, per_write: int, per_tx: int) -> None:
        """Make both backends' sweeps (and the model's) take ``per_write`` entries before a write and
        ``per_tx`` per ``expire()`` tx."""
        self.per_write = expiry.SWEEP_PER_WRITE = per_write
        self.per_tx = expiry.SWEEP_PER_TX = per_tx

    def sweep(self) -> None:
        """The model's side of the expiry sweep a write does first."""
        self.model.sweep(self.clock.us, self.per_write)

    def commit(self, ops: list[tuple[str, str, str, Any]],
               extra: dict[tuple[str, str], tuple[Any, Any]] | None = None) -> int:
        """The model's side of a successful engine write: the expiry sweep, then the write."""
        self.sweep()
        return self.model.commit(ops, self.clock.us, extra)

    @initialize()
    def start(self) -> None:
        assert self.store.latest_tx == 0

    # -- writes -------------------------------------------------------------------------------

    @rule(target=written, ns=st.sampled_from(NAMESPACES),
          items=st.dictionaries(keys(), values, min_size=1, max_size=6))
    def put(self, ns: str, items: dict[str, Any]) -> tuple[str, str]:
        tx = self.store.namespace(ns).put(items)
        assert tx == self.commit([(ns, k, PUT, v) for k, v in items.items()])
        return (ns, next(iter(items)))

    @rule(target=written, ns=st.sampled_from(NAMESPACES),
          items=st.dictionaries(keys(), values, min_size=1, max_size=4),
          ttl=st.none() | st.sampled_from([1, 2, 3.5]), per_item=st.booleans(),
          metadata=st.none() | st.sampled_from([{}, {"a": 1}, [1, "x"], "m", 0]))
    def put_with_options(self, ns: str, items: dict[str, Any], ttl: float | None, per_item: bool,
                         metadata: Any) -> tuple[str, str]:
        target = self.store.namespace(ns)
        if per_item:
            tx = target.put([Item(k, v, ttl=ttl, metadata=metadata) for k, v in items.items()])
        else:
            tx = target.put(items, ttl=ttl, metadata=metadata)
        self.sweep()
        expire_us = None if ttl is None else self.clock.us + round(ttl * 1_000_000)
        extra = {(ns, k): (expire_us, metadata) for k in items}
        assert tx == self.model.commit([(ns, k, PUT, v) for k, v in items.items()], self.clock.us, extra)
        return (ns, next(iter(items)))

    @rule(seconds=st.sampled_from([0.5, 1, 2, 4]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def expire(self) -> None:
        count = self.store.expire()
        txs = self.model.expire(self.clock.us, self.per_tx)
        assert count == sum(1 for vs in self.model.versions.values() if vs[-1][0] in txs)
        assert self.store.latest_tx == self.model.latest_tx

    @rule(ns=st.sampled_from(NAMESPACES), extra=st.lists(keys(), max_size=3, unique=True),
          known=st.lists(written, max_size=3, unique=True), delete=st.booleans())
    def clear_or_delete(self, ns: str, extra: list[str], known: list[tuple[str, str]], delete: bool) -> None:
        names = list(dict.fromkeys([k for n, k in known if n == ns] + extra))
        if not names:
            return
        target = self.store.namespace(ns)
        tx = target.delete(names) if delete else target.clear(names)
        assert tx == self.commit([(ns, k, DELETE if delete else CLEAR, None) for k in names])

    @rule(ops=st.lists(st.tuples(st.sampled_from(NAMESPACES), keys(), st.sampled_from([PUT, CLEAR, DELETE]), values),
                       min_size=1, max_size=6),
          expect=st.none() | written, wrong=st.booleans())
    def transaction(self, ops: list[tuple[str, str, str, Any]], expect: tuple[str, str] | None, wrong: bool) -> None:
        before = self.store.latest_tx
        expected_tx = self.model.live_tx(*expect, self.clock.us) + (1 if wrong else 0) if expect else None
        try:
            with self.store.transaction(note={"who": "model"}) as t:
                for ns, key, op, value in ops:
                    if op == PUT:
                        t.put(ns, key, value)
                    elif op == CLEAR:
                        t.clear(ns, key)
                    else:
                        t.delete(ns, key)
                if expect is not None:
                    assert expected_tx is not None
                    t.expect(expect[0], expect[1], tx=expected_tx)
        except errors.Conflict as exc:
            assert expect is not None and wrong
            assert exc.details["conflicts"][0]["actual"] == self.model.live_tx(*expect, self.clock.us)
            assert self.store.latest_tx == before
            return
        assert not (expect is not None and wrong)
        assert t.tx == self.commit([(ns, k, op, v if op == PUT else None) for ns, k, op, v in ops])

    @rule(target=written, data=st.data(), ns=st.sampled_from(NAMESPACES), op=st.sampled_from([PUT, CLEAR, DELETE]),
          value=values, kind=st.sampled_from(["current", "stale", "none"]))
    def conditional_write(self, data: st.DataObject, ns: str, op: str, value: Any, kind: str) -> tuple[str, str]:
        """A put, clear or delete of one key with ``expect``: the current tx, a stale one, or 0 ("*"),
        on keys present, cleared, deleted, expired or never written."""
        known = self.model.keys(ns)
        key = data.draw(st.sampled_from(known) | keys() if known else keys())
        current = self.model.live_tx(ns, key, self.clock.us)
        if kind == "current":
            expected = current
        elif kind == "none":
            expected = 0
        else:  # another tx the key had, or one it never had
            past = [v[0] for v in self.model.versions.get((ns, key), []) if v[0] != current]
            expected = data.draw(st.sampled_from(past)) if past else current + 1
        before = self.store.latest_tx
        target = self.store.namespace(ns)
        try:
            if op == PUT:
                tx = target.put({key: value}, expect={key: expected})
            else:
                tx = (target.delete if op == DELETE else target.clear)([key], expect={key: expected})
        except errors.Conflict as exc:
            assert expected != current
            assert exc.details["conflicts"] == [{"namespace": ns, "key": key, "expected": expected, "actual": current}]
            assert self.store.latest_tx == before  # not even the expiry sweep
            return (ns, key)
        assert expected == current
        assert tx == self.commit([(ns, key, op, value if op == PUT else None)])
        return (ns, key)

    @rule(ns=st.sampled_from(NAMESPACES), items=st.dictionaries(keys(), values, min_size=1, max_size=3),
          name=st.sampled_from(["k1", "k2", "k3"]))
    def idempotent_write(self, ns: str, items: dict[str, Any], name: str) -> None:
        """A write under an idempotency key and its retry: the retry writes nothing and answers the
        first answer; a key already used for another write is refused."""
        fingerprint = hashlib.sha256(repr((ns, sorted(items.items(), key=repr))).encode()).digest()
        claim = Claim(f"{name}-{len(self.claims)}", fingerprint, lambda tx, _: str(tx).encode())
        tx = self.store.namespace(ns).put(items, idempotency=claim)
        assert tx == self.commit([(ns, k, PUT, v) for k, v in items.items()])
        with pytest.raises(Replay) as replay:
            self.store.namespace(ns).put(items, idempotency=claim)
        assert replay.value.answer == str(tx).encode() and self.store.latest_tx == tx
        if self.claims:
            other = Claim(self.claims[-1].key, b"\0" * 32, claim.answer)
            with pytest.raises(errors.IdempotencyKeyReused):
                self.store.namespace(ns).put(items, idempotency=other)
            assert self.store.latest_tx == tx
        self.claims.append(claim)

    def _claim(self, name: str, request: Any) -> Claim:
        """A new idempotency claim (a key never used before) whose answer is the write's tx."""
        fingerprint = hashlib.sha256(repr((name, request)).encode()).digest()
        claim = Claim(f"{name}-{len(self.claims)}", fingerprint, lambda result, _: str(getattr(result, "tx", result)
                                                                                      ).encode())
        self.claims.append(claim)
        return claim

    @precondition(Needs("revert"))
    @rule(ns=st.sampled_from(NAMESPACES), data=st.data(), scope=st.sampled_from(["all", "keys", "prefix"]),
          dry_run=st.booleans())
    def revert(self, ns: str, data: st.DataObject, scope: str, dry_run: bool) -> None:
        to_tx = data.draw(st.integers(min_value=0, max_value=self.model.latest_tx))
        known = self.model.keys(ns)
        chosen = data.draw(st.lists(st.sampled_from(known) if known else keys(), min_size=1, max_size=4)
                           ) if scope == "keys" else None
        prefix = data.draw(st.sampled_from(["", "a", "b/", "k" * 470])) if scope == "prefix" else None
        claim = None if dry_run else self._claim("revert", (ns, to_tx, chosen, prefix))
        result = self.store.namespace(ns).revert(to_tx, keys=chosen, prefix=prefix, dry_run=dry_run,
                                                 idempotency=claim)
        if claim is not None:  # its retry writes nothing and answers the first tx
            with pytest.raises(Replay) as replay:
                self.store.namespace(ns).revert(to_tx, keys=chosen, prefix=prefix, idempotency=claim)
            assert replay.value.answer == str(result.tx).encode() and self.store.latest_tx == result.tx
        if dry_run:
            when = max(self.clock.us, self.model.times[self.model.latest_tx])
            plan = self.model.revert_plan(ns, to_tx, chosen, prefix, when)
            assert result.tx == self.model.latest_tx and not result.committed
        else:
            self.sweep()
            when = max(self.clock.us, self.model.times[self.model.latest_tx])
            plan = self.model.revert_plan(ns, to_tx, chosen, prefix, when)
            assert result.tx == self.model.revert(ns, to_tx, chosen, prefix, self.clock.us)
            assert result.committed == bool(plan)
        assert [c.key for c in result.changes] == [step[0] for step in plan]
        for change, (_, op, value, expire_us, metadata) in zip(result.changes, plan, strict=True):
            after = change.after
            assert (after is None) == (op == DELETE)
            if after is not None:
                assert after.cleared == (op == CLEAR) and same(after.value, value)
                assert same(after.metadata, metadata)
                assert (None if after.expire_time is None else round(after.expire_time.timestamp() * 1_000_000)
                        ) == expire_us

    @rule(ns=st.sampled_from(NAMESPACES), good=st.dictionaries(keys(), values, max_size=3),
          bad=st.sampled_from(["", "x" * 513, "\ud800", 7, None]))
    def rejected_write(self, ns: str, good: dict[str, Any], bad: Any) -> None:
        before = self.store.latest_tx
        items = [*good.items(), (bad, 1)]
        with pytest.raises((errors.InvalidKey, errors.KeyTooLong)):
            self.store.namespace(ns).put(items)
        assert self.store.latest_tx == before

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self.open_store()
        self.full_audit()

    def full_audit(self) -> None:
        """Every key ever written, in every namespace, at every tx, a full scan at each tx, and the
        hash chain re-derived from the data."""
        report = self.store.verify()
        assert report.ok and report.head_tx == self.model.latest_tx, report
        for ns in NAMESPACES:
            names = self.model.keys(ns)
            target = self.store.namespace(ns)
            for tx in range(self.model.latest_tx + 1):
                want = [(k, *rec) for k in names if (rec := self.model.record(ns, k, tx)) is not None]
                assert_records([as_tuple(r) for r in target.read(names, tx=tx).records], want)
                assert_records([as_tuple(r) for r in target.scan(tx=tx)], want)

    # -- reads --------------------------------------------------------------------------------

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data())
    def read_latest_with_metadata(self, ns: str, data: st.DataObject) -> None:
        known = self.model.keys(ns)
        names = data.draw(st.lists(st.sampled_from(known), max_size=6) if known else st.just([]))
        result = self.store.namespace(ns).read(names, metadata=True, fields=["expire_time"])
        assert result.tx == self.model.latest_tx
        when = max(self.clock.us, self.model.times[self.model.latest_tx])  # the latest-read rule
        want = [v for k in dict.fromkeys(names) if (v := self.model.version(ns, k, result.tx, when)) is not None]
        assert [(r.tx, r.metadata) for r in result.records] == [(v[0], v[4]) for v in want]
        assert [None if r.expire_time is None else round(r.expire_time.timestamp() * 1_000_000)
                for r in result.records] == [v[3] for v in want]
        scanned = self.store.namespace(ns).scan(metadata=True)
        assert [r.key for r in scanned] == [k for k in known if self.model.version(ns, k, result.tx, when)]

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data())
    def read_at_past_tx(self, ns: str, data: st.DataObject) -> None:
        tx = data.draw(st.integers(min_value=0, max_value=self.model.latest_tx))
        known = [k for (n, k) in self.model.versions if n == ns]
        names = data.draw(st.lists(st.sampled_from(known), max_size=6) if known else st.just([]))
        names += data.draw(st.lists(keys(), max_size=2))
        result = self.store.namespace(ns).read(names, tx=tx)
        assert result.tx == tx
        want = []
        for key in dict.fromkeys(names):
            rec = self.model.record(ns, key, tx)
            if rec is not None:
                want.append((key, *rec))
        assert_records([as_tuple(r) for r in result.records], want)

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data(),
          prefix=st.sampled_from(["", "a", "b/", "k" * 470, "k" * 479, "\x00", "z" * 497]),
          limit=st.none() | st.integers(min_value=0, max_value=5))
    def scan(self, ns: str, data: st.DataObject, prefix: str, limit: int | None) -> None:
        tx = data.draw(st.integers(min_value=0, max_value=self.model.latest_tx))
        known = self.model.keys(ns)
        after = data.draw(st.none() | (st.sampled_from(known) if known else keys()))
        got = self.store.namespace(ns).scan(prefix, tx=tx, after=after, limit=limit)
        assert got.tx == tx
        assert_records([as_tuple(r) for r in got], self.model.scan(ns, tx, prefix, after, limit))

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data(), limit=st.integers(min_value=0, max_value=4),
          newest_first=st.booleans())
    def history(self, ns: str, data: st.DataObject, limit: int, newest_first: bool) -> None:
        known = self.model.keys(ns)
        key = data.draw(st.sampled_from(known) if known else keys())
        bound = st.none() | st.integers(min_value=0, max_value=self.model.latest_tx + 1)
        before, after = data.draw(bound), data.draw(bound)
        got = self.store.namespace(ns).history(key, before=before, after=after, limit=limit,
                                               order="desc" if newest_first else "asc")
        want = [v for v in self.model.versions.get((ns, key), [])
                if (before is None or v[0] < before) and (after is None or v[0] > after)]
        if newest_first:
            want.reverse()
        want = want[:limit]
        assert [(v.tx, v.op) for v in got] == [(w[0], w[1]) for w in want]
        for v, w in zip(got, want, strict=True):
            assert same(v.value, w[2] if w[1] == PUT else None)

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data())
    def diff(self, ns: str, data: st.DataObject) -> None:
        a = data.draw(st.integers(min_value=0, max_value=self.model.latest_tx))
        b = data.draw(st.integers(min_value=a, max_value=self.model.latest_tx))
        got = {c.key: (c.kind, c.before, c.after) for c in self.store.namespace(ns).diff(a, b)}
        for key in self.model.keys(ns):
            was, now = self.model.record(ns, key, a), self.model.record(ns, key, b)
            differs = (was is None) != (now is None) or (
                was is not None and now is not None and (was[3] != now[3] or not same(was[0], now[0])))
            va, vb = self.model.version(ns, key, a), self.model.version(ns, key, b)
            if va is not None and vb is not None and (va[3], va[4]) != (vb[3], vb[4]):
                differs = True  # same value, another expiry or metadata
            # A diff reads the keys the txs in (a, b] touched: one that expired by b's time, its expiry
            # not recorded by then (a sweep cut short), is not listed (docs/engine.md, "Expiry").
            touched = self.model.version_tx(ns, key, a) != self.model.version_tx(ns, key, b)
            assert (key in got) == (differs and touched), (key, was, now)
            if key in got:
                kind = got[key][0]
                assert kind == ("added" if was is None else "deleted" if now is None
                                else "cleared" if now[3] else "changed")

    @precondition(lambda self: self.model.latest_tx > 0)
    # -- streams: events on the same timeline ---------------------------------------------------

    @precondition(Needs("streams"))
    @rule(stream=st.sampled_from(NAMESPACES), data=st.lists(values, min_size=1, max_size=4), retried=st.booleans())
    def publish(self, stream: str, data: list[Any], retried: bool) -> None:
        """A publish, or one under an idempotency key and its retry, which publishes nothing."""
        claim = self._claim("publish", (stream, data)) if retried else None
        tx = self.store.stream(stream).publish(data, idempotency=claim)
        self.sweep()  # a publish records due expiries first, as every write does
        assert tx == self.model.publish(stream, data, self.clock.us)
        if claim is not None:
            with pytest.raises(Replay) as replay:
                self.store.stream(stream).publish(data, idempotency=claim)
            assert replay.value.answer == str(tx).encode() and self.store.latest_tx == tx

    @precondition(Needs("streams"))
    @rule(stream=st.sampled_from(NAMESPACES), data=st.data(), limit=st.integers(min_value=1, max_value=4))
    def read_stream(self, stream: str, data: st.DataObject, limit: int) -> None:
        latest = self.model.latest_tx
        start = data.draw(st.integers(min_value=0, max_value=latest), label="start_tx")
        end = data.draw(st.integers(min_value=start, max_value=latest), label="end_tx")
        got: list[tuple[int, int, Any]] = []
        page = self.store.stream(stream).read(start, end, limit)
        while True:
            got += [(e.tx, e.index, e.data) for e in page.events]
            assert all(e.binary == isinstance(e.data, bytes) for e in page.events)
            if not page.more:
                break
            assert len(page.events) == limit
            page = self.store.stream(stream).read(end_tx=end, limit=limit, cursor=page.cursor)
        want = self.model.stream_events(stream, start, end)
        assert len(got) == len(want) and all(same(list(g), list(w)) for g, w in zip(got, want, strict=True))
        assert page.cursor == str(end)

    @rule()
    def future_tx_is_refused(self) -> None:
        with pytest.raises(errors.FutureTx):
            self.store.namespace(NAMESPACES[0]).read(["a"], tx=self.model.latest_tx + 1)

    @invariant()
    def merkle_head_extends_every_earlier_one(self) -> None:
        """The head's root at each size, once seen, is what every later proof is checked against."""
        head = self.store.head()
        assert head.size == self.model.latest_tx and head.root is not None
        root = self.model.roots.setdefault(head.size, bytes.fromhex(head.root))
        assert root == bytes.fromhex(head.root)

    @rule(data=st.data())
    def merkle_proofs_verify_against_earlier_heads(self, data: st.DataObject) -> None:
        sizes = sorted(s for s in self.model.roots if s > 0)
        if not sizes:
            return
        second = data.draw(st.sampled_from(sizes), label="size")
        first = data.draw(st.sampled_from([s for s in sizes if s <= second]), label="from")
        tx = data.draw(st.integers(1, second), label="tx")
        roots = self.model.roots
        proof = self.store.inclusion_proof(tx, second)
        assert (proof.tx, proof.size) == (tx, second)
        assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), tx - 1, second,
                                       [bytes.fromhex(p) for p in proof.path], roots[second])
        path = [bytes.fromhex(p) for p in self.store.consistency_proof(first, second).path]
        assert merkle.verify_consistency(first, second, roots[first], roots[second], path)

    @rule(ns=st.sampled_from(NAMESPACES), data=st.data())
    def proved_read_matches_read_and_verifies(self, ns: str, data: st.DataObject) -> None:
        """A read with proofs answers what a read does, names each key's newest version (deletes and
        expired puts too), and each entry is its tx's leaf in the tree of a head seen before."""
        latest = self.model.latest_tx
        tx = data.draw(st.none() | st.integers(min_value=0, max_value=latest), label="tx")
        known = [k for (n, k) in self.model.versions if n == ns]
        names = data.draw(st.lists(st.sampled_from(known), max_size=5) if known else st.just([]))
        names += data.draw(st.lists(keys(), max_size=1))
        namespace = self.store.namespace(ns)
        result = namespace.proved_read(names, tx=tx)
        assert (result.records, result.tx) == tuple(namespace.read(names, tx=tx))
        want = [(k, self.model.version_tx(ns, k, result.tx)) for k in dict.fromkeys(names)]
        assert result.versions == want
        assert [e.tx for e in result.entries] == sorted({v for _, v in want if v is not None})
        if not result.entries:
            return
        root = self.model.roots.setdefault(result.head.size, bytes.fromhex(result.head.root))  # type: ignore[arg-type]
        for e in result.entries:
            assert merkle.verify_inclusion(merkle.leaf_hash(e.entry), e.tx - 1, result.head.size,
                                           [bytes.fromhex(p) for p in e.path], root)
            runs = msgpack.unpackb(e.entry)[3]
            written = {k for run in runs if run[0] == ns and run[1] < 3 for k in run[2]}
            assert {k for k, v in want if v == e.tx} <= written

    @invariant()
    def latest_tx_matches(self) -> None:
        assert self.store.latest_tx == self.model.latest_tx

    @precondition(Needs("streams"))
    @invariant()
    def event_counts_match(self) -> None:
        assert {i.name: i.event_count for i in self.store.streams()} == {
            name: len(events) for name, events in self.model.events.items()}

    @precondition(Needs("latest_index"))
    @invariant()
    def latest_index_lists_each_keys_newest_version(self) -> None:
        """Reads at the latest tx come from the latest-version index: after every step it holds
        exactly each key's newest version that is not a delete, byte for byte."""
        backend = self.store._backend
        pos: bytes | None = b""
        while pos is not None:
            bad, pos = backend.read(lambda txn, at=pos: latest_index.check(txn, backend.dbs, at))
            assert bad is None
        # The namespace counters are kept from the entries each write replaced: they sum the entries.
        for info in self.store.namespaces():
            prefix = backend.read(lambda txn, name=info.name: self.store._ns_prefix(txn, name))
            entries = backend.read(lambda txn, p=prefix: [(bytes(k), len(v)) for k, v in txn.cursor(db=backend.latest)
                                                          if bytes(k).startswith(p)])
            assert (info.key_count, info.size_bytes) == (
                len(entries), sum(len(k) + n - latest_index.FRAMING for k, n in entries))

    @invariant()
    def key_counts_match(self) -> None:
        for info in self.store.namespaces():
            assert info.key_count == self.model.counted(info.name)


StoreMachine.TestCase.settings = settings(
    max_examples=1000 if LONG else 150,
    stateful_step_count=60 if LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestStoreModel = StoreMachine.TestCase
