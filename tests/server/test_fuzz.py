"""No input crashes the app or leaks a 500, and every rejected request leaves the store unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import create_app
from tests.server.conftest import Client

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
keys = st.text(min_size=0, max_size=12) | st.sampled_from(["a", "b", "x" * 513, ""])
items = st.fixed_dictionaries(
    {"key": keys}, optional={"value": json_values | st.sampled_from(["aGk=", "%%"]), "binary": st.booleans()}
) | json_values
bodies = st.one_of(
    json_values,
    st.lists(items, max_size=6),
    st.fixed_dictionaries({}, optional={"keys": st.lists(keys, max_size=5) | json_values,
                                        "tx": st.integers(-2, 2**64 - 1) | json_values,
                                        "prefix": keys | json_values, "limit": st.integers(-1, 20000) | json_values,
                                        "namespace": keys | json_values}),
)
paths = st.sampled_from(["read", "write", "delete", "scan", "write?atomic=false", "key?key=a", "key?key=a&tx=1"])
storages = st.sampled_from(["fz", "..", "a" * 65, "ok.name", "bad name"])


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    app = create_app(tmp_path_factory.mktemp("fuzz"), sync=False)
    client = Client(app)
    client.write("fz", [{"key": "a", "value": 1}])
    yield client
    app.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_requests_never_500_and_rejections_change_nothing(fuzz_client: Client, data: Any) -> None:
    # One store for every example (opening one per example would dominate the run time).
    client = fuzz_client
    store = client.app.store
    method = data.draw(st.sampled_from(["POST", "GET", "DELETE"]))
    path = f"/v4/storage/{data.draw(storages)}/{data.draw(paths)}"
    path, _, query = path.partition("?")
    raw = data.draw(st.one_of(bodies.map(orjson.dumps), st.binary(max_size=40)))
    before = store.latest_tx
    r = client.request(method, path, query=query, body=raw, content_type="application/json")
    assert r.status < 500, r
    doc = r.json()
    if r.status >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert doc["status"] == r.status and isinstance(doc["code"], str)
        assert store.latest_tx == before, r
