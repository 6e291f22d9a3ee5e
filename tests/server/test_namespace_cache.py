"""A worker's namespace handles stay bounded however many distinct names clients send."""

from __future__ import annotations

from engine import Store
from engine import store as store_module
from server.app import App
from tests.server.conftest import Client

MAX_NAMESPACE_HANDLES = getattr(store_module, "MAX_NAMESPACE_HANDLES", 1024)


def test_ten_times_the_bound_of_never_written_names_do_not_grow_the_cache_past_it(client: Client, app: App) -> None:
    # Ten times the bound shows the eviction at work as well as a hundred times would, in a tenth of the time.
    assert client.write("kept", [{"key": "k", "value": 1}]).status == 200
    for i in range(10 * MAX_NAMESPACE_HANDLES):
        r = client.get(f"/v4/storage/never-{i}/key", query={"key": "k"})
        assert r.status == 404, r
        # _handles is the only per-name cache of a worker's store (ids and prefixes are cached only
        # for namespaces that exist).
        assert len(app.store._handles) <= MAX_NAMESPACE_HANDLES
    assert len(app.store._handles) == MAX_NAMESPACE_HANDLES
    assert len(app.store._ns_ids) <= 1
    # an evicted handle is remade on demand, with the same answers
    kept = client.get("/v4/storage/kept/key", query={"key": "k"})
    assert kept.status == 200 and kept.json()["value"] == 1


def test_evicted_handles_keep_working(store: Store) -> None:
    early = store.namespace("early")
    early.put({"a": 1})
    for i in range(MAX_NAMESPACE_HANDLES + 10):
        store.namespace(f"n{i}")
    assert "early" not in store._handles and len(store._handles) == MAX_NAMESPACE_HANDLES
    assert early.get("a") == store.namespace("early").get("a") and early.get("a").value == 1  # type: ignore[union-attr]
