"""The state machine of ``test_store_model`` against a live 2-worker ``strata serve``, through the client.

Same rules, same model, same expected records: only the line that opens the store differs
(``connect(url)`` instead of ``Store.open``). What a server cannot share with the embedded machine:

* its clock is the wall clock, so the rules that move the store's clock (``advance``, ``expire``,
  ``ttl``) and ``reopen`` are left out, and puts with options carry metadata only;
* one server serves every example, so each example works in namespaces and streams of its own
  (``m<N>-alpha``, ...; the view below adds and strips the prefix) and its model starts at the tx the
  server had reached (reads below it see empty namespaces, as the model says);
* over HTTP a transaction writes one namespace (puts and clears, or deletes) and a condition guards
  an item of the same write, so the transaction rule draws those; idempotent retries use the
  client's ``Idempotency-Key`` instead of engine claims.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from engine import errors
from server.client import connect
from tests.engine.clock import Clock
from tests.property import test_store_model as base
from tests.property.model import CLEAR, DELETE, PUT, Model
from tests.property.strategies import NAMESPACES, keys, values
from tests.server.conftest import start_server, stop_server

_examples = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    live = start_server(tmp_path_factory.mktemp("client-model"))
    ClientMachine.url = f"http://127.0.0.1:{live.port}"
    yield
    stop_server(live.proc)


def _unprefixed(exc: errors.EngineError, prefix: str) -> None:
    for conflict in exc.details.get("conflicts") or ():
        if str(conflict.get("namespace", "")).startswith(prefix):
            conflict["namespace"] = conflict["namespace"][len(prefix):]


class _Namespace:
    """A namespace of the example's own, under the name the rules use."""

    def __init__(self, inner: Any, prefix: str) -> None:
        self._inner, self._prefix = inner, prefix

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except errors.Conflict as exc:
                _unprefixed(exc, self._prefix)
                raise

        return call


class _Transaction:
    def __init__(self, inner: Any, prefix: str) -> None:
        self._inner, self._prefix = inner, prefix

    def __getattr__(self, name: str) -> Any:
        if name == "tx":
            return self._inner.tx
        method = getattr(self._inner, name)
        return lambda ns, *a, **kw: method(self._prefix + ns, *a, **kw)

    def __enter__(self) -> _Transaction:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._inner.commit()
            except errors.Conflict as failed:
                _unprefixed(failed, self._prefix)
                raise


class _Store:
    """The remote store as the rules see it: namespaces and streams renamed with the example's prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.remote = connect(url)
        self.prefix = prefix

    def namespace(self, name: str) -> _Namespace:
        return _Namespace(self.remote.namespace(self.prefix + name), self.prefix)

    def stream(self, name: str) -> Any:
        return self.remote.stream(self.prefix + name)

    def transaction(self, **kwargs: Any) -> _Transaction:
        return _Transaction(self.remote.transaction(**kwargs), self.prefix)

    def _own(self, infos: list[Any]) -> list[Any]:
        n = len(self.prefix)
        return [dataclasses.replace(i, name=i.name[n:]) for i in infos if i.name.startswith(self.prefix)]

    def namespaces(self) -> list[Any]:
        return self._own(self.remote.namespaces())

    def streams(self) -> list[Any]:
        return self._own(self.remote.streams())

    @property
    def latest_tx(self) -> int:
        return self.remote.latest_tx

    def verify(self) -> Any:
        return self.remote.verify()

    def close(self) -> None:
        self.remote.close()


class ClientMachine(base.StoreMachine):
    url = ""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.clock = Clock()  # the model's commit times only: the server keeps its own
        self.store = _Store(self.url, f"m{next(_examples)}-")
        self.base = self.store.latest_tx
        self.model = Model(latest_tx=self.base, times=defaultdict(int))
        self.idempotency_keys: list[tuple[str, int]] = []

    def teardown(self) -> None:
        try:
            self.full_audit()
        finally:
            self.store.close()

    def full_audit(self) -> None:
        """As the embedded machine's, from the tx the example started at (its namespaces are empty below)."""
        report = self.store.verify()
        assert report.ok and report.head_tx == self.model.latest_tx, report
        for ns in NAMESPACES:
            names = self.model.keys(ns)
            target = self.store.namespace(ns)
            for tx in range(self.base, self.model.latest_tx + 1):
                want = [(k, *rec) for k in names if (rec := self.model.record(ns, k, tx)) is not None]
                base.assert_records([base.as_tuple(r) for r in target.read(names, tx=tx).records], want)
                base.assert_records([base.as_tuple(r) for r in target.scan(tx=tx)], want)

    # The server's clock is the wall clock: no rule may move it, nor expect values to expire.
    def start(self) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def expire(self) -> None: ...
    def reopen(self) -> None: ...

    @rule(target=base.StoreMachine.written, ns=st.sampled_from(NAMESPACES),
          items=st.dictionaries(keys(), values, min_size=1, max_size=4), ttl=st.none(), per_item=st.booleans(),
          metadata=st.none() | st.sampled_from([{}, {"a": 1}, [1, "x"], "m", 0]))
    def put_with_options(self, ns: str, items: dict[str, Any], ttl: float | None, per_item: bool,
                         metadata: Any) -> tuple[str, str]:
        return base.StoreMachine.put_with_options(self, ns, items, ttl, per_item, metadata)

    @rule(ns=st.sampled_from(NAMESPACES), deletes=st.booleans(), expect=st.none() | base.StoreMachine.written,
          wrong=st.booleans(), items=st.lists(st.tuples(keys(), st.sampled_from([PUT, CLEAR]), values), min_size=1,
                                              max_size=6))
    def transaction(self, ns: str, deletes: bool, expect: tuple[str, str] | None, wrong: bool,
                    items: list[tuple[str, str, Any]]) -> None:
        """The embedded rule's body, on what one write request can hold: one namespace (the expected
        key's), puts and clears or deletes only, the expected key among the keys written."""
        if expect is not None:
            ns = expect[0]
            items = [*items, (expect[1], PUT, 1)]
        ops = [(ns, key, DELETE if deletes else op, value) for key, op, value in items]
        base.StoreMachine.transaction(self, ops, expect, wrong)

    def idempotent_write(self, ns: str, items: dict[str, Any], name: str) -> None: ...

    @rule(ns=st.sampled_from(NAMESPACES), items=st.dictionaries(keys(), values, min_size=1, max_size=3))
    def idempotent_retry(self, ns: str, items: dict[str, Any]) -> None:
        """A write and its retry under one Idempotency-Key: the retry commits nothing and answers the
        first tx; the key of an earlier write, on another write, is refused."""
        key = uuid.uuid4().hex
        tx = self.store.namespace(ns).put(items, idempotency_key=key)
        assert tx == self.commit([(ns, k, PUT, v) for k, v in items.items()])
        assert self.store.namespace(ns).put(items, idempotency_key=key) == tx
        assert self.store.latest_tx == tx
        if self.idempotency_keys:
            with pytest.raises(errors.IdempotencyKeyReused):
                self.store.namespace(ns).put({**items, "\x00other": 1}, idempotency_key=self.idempotency_keys[-1][0])
            assert self.store.latest_tx == tx
        self.idempotency_keys.append((key, tx))


ClientMachine.TestCase.settings = settings(
    max_examples=40 if base.LONG else 8,
    stateful_step_count=60 if base.LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestClientModel = ClientMachine.TestCase
