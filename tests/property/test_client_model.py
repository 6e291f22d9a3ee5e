"""The state machine of ``test_store_model`` against a live 2-worker ``strata serve``, through the client.

Same rules, same model, same expected records: only the line that opens the store differs
(``connect(url)`` instead of ``Store.open``). What a server cannot share with the embedded machine:

* its clock is the wall clock, so the rules that move the store's clock (``advance``, ``expire``,
  ``ttl``) and ``reopen`` are left out, and puts with options carry metadata only;
* one server serves every example, so each example works in namespaces and streams of its own
  (``m<N>-alpha``, ...) and counts txs from the tx the server had reached when it started: the view
  below renames and shifts txs both ways, so the rules draw the same txs whatever ran before (a draw
  that depended on the server's tx would make hypothesis's replays differ);
* over HTTP a transaction writes one namespace (puts and clears, or deletes) and a condition guards
  an item of the same write, so the transaction rule draws those; an engine idempotency claim
  becomes the request's ``Idempotency-Key`` (its retry answers the first answer, shown to the rules
  as the engine's ``Replay``), and ``idempotent_write`` gives way to ``idempotent_retry``, whose
  "key reused" case needs a different request, which over HTTP is a different body.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from engine import errors, expiry
from engine.idempotency import Claim, Replay
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


class _View:
    """Shifts txs between the model's numbering (from 0 at the example's start) and the server's (from
    ``base``, the server's latest tx then): arguments up by ``base``, answers down. A model tx in
    ``[0, base]`` reads the server at ``base``, where the example's namespaces are still empty, as the
    model's are at 0. Names get the example's prefix on the way in and lose it on the way out."""

    def __init__(self, base: int, prefix: str) -> None:
        self.base, self.prefix = base, prefix
        self.sent: set[str] = set()

    def claimed(self, claim: Claim | None, call: Callable[[str | None], Any]) -> Any:
        """``call(idempotency_key)`` for an engine claim: the claim's key (made the example's own) as
        the request's Idempotency-Key. A second call under one claim is the client's retry of a write
        whose answer was lost: the server answers it with the first answer, and this raises the
        engine's :class:`Replay` with it, as the embedded store does."""
        if claim is None:
            return call(None)
        key = self.prefix + claim.key
        result = call(key)
        if key not in self.sent:
            self.sent.add(key)
            return result
        raise Replay(claim.answer(result, None))

    def up(self, tx: int | None) -> int | None:
        return None if tx is None else tx + self.base

    def down(self, tx: int) -> int:
        return tx - self.base if tx else 0

    def cursor_up(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        tx, _, index = cursor.partition(":")
        return f"{int(tx) + self.base}" + (f":{index}" if index else "")

    def cursor_down(self, cursor: str) -> str:
        tx, _, index = cursor.partition(":")
        return f"{self.down(int(tx))}" + (f":{index}" if index else "")

    def record(self, rec: Any) -> Any:
        return None if rec is None else rec._replace(tx=self.down(rec.tx))

    def change(self, change: Any) -> Any:
        return dataclasses.replace(change, before=self.record(change.before), after=self.record(change.after))

    def conflict(self, exc: errors.EngineError) -> None:
        for c in exc.details.get("conflicts") or ():
            c.update(namespace=c["namespace"][len(self.prefix):], expected=self.down(c["expected"]),
                     actual=self.down(c["actual"]))

    def write(self, call: Any, *args: Any, expect: dict[str, int] | None = None, **kwargs: Any) -> int:
        if expect is not None:
            kwargs["expect"] = {k: 0 if tx == 0 else tx + self.base for k, tx in expect.items()}
        try:
            return self.down(call(*args, **kwargs))
        except errors.Conflict as exc:
            self.conflict(exc)
            raise


class _Scan:
    def __init__(self, view: _View, inner: Any) -> None:
        self.view, self.inner, self.tx = view, inner, view.down(inner.tx)

    def __iter__(self) -> Iterator[Any]:
        return (self.view.record(r) for r in self.inner)


class _Namespace:
    def __init__(self, view: _View, inner: Any) -> None:
        self.v, self.inner = view, inner

    def put(self, *args: Any, **kwargs: Any) -> int:
        return self.v.write(self.inner.put, *args, **kwargs)

    def clear(self, *args: Any, **kwargs: Any) -> int:
        return self.v.write(self.inner.clear, *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> int:
        return self.v.write(self.inner.delete, *args, **kwargs)

    def read(self, keys: list[str], *, tx: int | None = None, **kwargs: Any) -> Any:
        result = self.inner.read(keys, tx=self.v.up(tx), **kwargs)
        return result._replace(records=[self.v.record(r) for r in result.records], tx=self.v.down(result.tx))

    def scan(self, prefix: str = "", *, tx: int | None = None, **kwargs: Any) -> _Scan:
        return _Scan(self.v, self.inner.scan(prefix, tx=self.v.up(tx), **kwargs))

    def history(self, key: str, *, before: int | None = None, after: int | None = None, **kwargs: Any) -> list[Any]:
        got = self.inner.history(key, before=self.v.up(before), after=self.v.up(after), **kwargs)
        return [dataclasses.replace(v, tx=self.v.down(v.tx)) for v in got]

    def diff(self, from_tx: int, to_tx: int) -> Iterator[Any]:
        return (self.v.change(c) for c in self.inner.diff(from_tx + self.v.base, to_tx + self.v.base))

    def revert(self, to_tx: int, *, idempotency: Claim | None = None, **kwargs: Any) -> Any:
        def call(key: str | None) -> Any:
            result = self.inner.revert(to_tx + self.v.base, idempotency_key=key, **kwargs)
            return dataclasses.replace(result, tx=self.v.down(result.tx), to_tx=to_tx,
                                       changes=[self.v.change(c) for c in result.changes])

        return self.v.claimed(idempotency, call)


class _Stream:
    def __init__(self, view: _View, inner: Any) -> None:
        self.v, self.inner = view, inner

    def publish(self, data: list[Any], *, idempotency: Claim | None = None) -> int:
        return self.v.claimed(idempotency, lambda key: self.v.down(self.inner.publish(data, idempotency_key=key)))

    def read(self, start_tx: int | None = None, end_tx: int | None = None, limit: int = 100, *,
             cursor: str | None = None) -> Any:
        page = self.inner.read(self.v.up(start_tx), self.v.up(end_tx), limit, cursor=self.v.cursor_up(cursor))
        return page._replace(events=[dataclasses.replace(e, tx=self.v.down(e.tx)) for e in page.events],
                             cursor=self.v.cursor_down(page.cursor), tx=self.v.down(page.tx))


class _Transaction:
    def __init__(self, view: _View, inner: Any) -> None:
        self.v, self.inner = view, inner

    @property
    def tx(self) -> int | None:
        return None if self.inner.tx is None else self.v.down(self.inner.tx)

    def put(self, ns: str, *args: Any, **kwargs: Any) -> None:
        self.inner.put(self.v.prefix + ns, *args, **kwargs)

    def clear(self, ns: str, key: str) -> None:
        self.inner.clear(self.v.prefix + ns, key)

    def delete(self, ns: str, key: str) -> None:
        self.inner.delete(self.v.prefix + ns, key)

    def expect(self, ns: str, key: str, *, tx: int) -> None:
        self.inner.expect(self.v.prefix + ns, key, tx=0 if tx == 0 else tx + self.v.base)

    def __enter__(self) -> _Transaction:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.v.write(self.inner.commit)


class _Store:
    """The remote store as the rules see it: the example's own namespaces and streams, txs from 0."""

    def __init__(self, url: str, prefix: str) -> None:
        self.remote = connect(url)
        self.v = _View(self.remote.latest_tx, prefix)

    def namespace(self, name: str) -> _Namespace:
        return _Namespace(self.v, self.remote.namespace(self.v.prefix + name))

    def stream(self, name: str) -> _Stream:
        return _Stream(self.v, self.remote.stream(self.v.prefix + name))

    def transaction(self, **kwargs: Any) -> _Transaction:
        return _Transaction(self.v, self.remote.transaction(**kwargs))

    def _own(self, infos: list[Any]) -> list[Any]:
        n = len(self.v.prefix)
        return [dataclasses.replace(i, name=i.name[n:]) for i in infos if i.name.startswith(self.v.prefix)]

    def namespaces(self) -> list[Any]:
        return self._own(self.remote.namespaces())

    def streams(self) -> list[Any]:
        return self._own(self.remote.streams())

    @property
    def latest_tx(self) -> int:
        return self.v.down(self.remote.latest_tx)

    def verify(self) -> Any:
        report = self.remote.verify()
        return dataclasses.replace(report, head_tx=self.v.down(report.head_tx))

    def close(self) -> None:
        self.remote.close()


class ClientMachine(base.StoreMachine):
    url = ""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.clock = Clock()  # the model's commit times only: the server keeps its own
        # The server's own sweep limits (nothing falls due here: no rule moves the server's clock).
        self.per_write, self.per_tx = expiry.SWEEP_PER_WRITE, expiry.SWEEP_PER_TX
        self.store = _Store(self.url, f"m{next(_examples)}-")
        self.model = Model()
        self.idempotency_keys: list[tuple[str, int]] = []
        self.claims: list[Claim] = []

    def teardown(self) -> None:
        try:
            self.full_audit()
        finally:
            self.store.close()

    # The server's clock is the wall clock: no rule may move it, nor expect values to expire.
    def start(self) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def expire(self) -> None: ...
    def reopen(self) -> None: ...
    # The Merkle tree covers the server's whole log, which other examples share: its sizes are not this
    # example's txs. The client's proofs are checked against a live server in test_client_proofs.
    def merkle_head_extends_every_earlier_one(self) -> None: ...
    def merkle_proofs_verify_against_earlier_heads(self, data: st.DataObject) -> None: ...
    # Likewise a read's proofs name txs of the whole log; verified reads have their own live tests
    # (test_proved_reads).
    def proved_read_matches_read_and_verifies(self, ns: str, data: st.DataObject) -> None: ...
    # The server's LMDB file is another process's: its latest-version index is checked by the embedded machine.
    def latest_index_lists_each_keys_newest_version(self) -> None: ...

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
    max_examples=40 if base.LONG else 12,
    stateful_step_count=60 if base.LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestClientModel = ClientMachine.TestCase
