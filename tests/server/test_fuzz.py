"""No input crashes the app or leaks a 500, every rejected request leaves the store unchanged, and
every accepted request did exactly what a simple model says: the records of each namespace at
each tx (in their response form) and the tx counter."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import create_app
from tests.conftest import fingerprint
from tests.property.test_store_model import same
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

# Well-formed requests, half of the examples: random bytes are almost always refused, and what an
# accepted request did is what the model checks. A few keys, so requests meet each other's records.
model_keys = st.sampled_from(["a", "b", "ab", "é", "k\x00", "x" * 512])
model_items = st.one_of(
    st.fixed_dictionaries({"key": model_keys, "value": json_values}, optional={"binary": st.just(False)}),
    st.fixed_dictionaries({"key": model_keys, "value": st.binary(max_size=6).map(lambda b: base64.b64encode(b).decode())
                           | st.sampled_from(["%%", "aGk"]), "binary": st.just(True)}),
    st.fixed_dictionaries({"key": model_keys}),  # a clear
    st.fixed_dictionaries({"key": model_keys}, optional={"value": json_values, "binary": st.booleans()}),
)


def well_formed(draw: Any, latest: int) -> tuple[str, str, str, bytes]:
    """``(method, action, query, body)`` of a request the API is meant to accept (mostly)."""
    # 0..latest + 1 (a future tx, refused); drawn without the bound, which changes from example to
    # example (hypothesis demands the same strategies when it replays one)
    tx = st.none() | st.integers(0, 1 << 16).map(lambda n: n % (latest + 2))
    route = draw(st.sampled_from(["write"] * 4 + ["delete", "read", "read", "scan", "scan", "get", "put", "remove"]))
    key = draw(model_keys.filter(lambda k: k.isascii() and k.isalnum()))
    if route == "write":
        any_keys = st.lists(model_items, min_size=1, max_size=5)  # a key twice: refused, or set aside
        body = draw(st.lists(model_items, min_size=1, max_size=5, unique_by=lambda i: i["key"]) | any_keys)
        return "POST", "write", draw(st.sampled_from(["", "atomic=false"])), orjson.dumps(body)
    if route == "delete":
        doomed = draw(st.lists(model_keys, min_size=1, max_size=4, unique=True))
        return "POST", "delete", "", orjson.dumps(draw(st.sampled_from([doomed, {"keys": doomed}])))
    if route == "read":
        body = {"keys": draw(st.lists(model_keys, max_size=5)), "tx": draw(tx)}
        return "POST", "read", "", orjson.dumps({k: v for k, v in body.items() if v is not None})
    if route == "scan":
        body = {"prefix": draw(st.sampled_from([None, "", "a", "x" * 300, "é"])),
                "limit": draw(st.none() | st.integers(1, 4)), "tx": draw(tx)}
        return "POST", "scan", "", orjson.dumps({k: v for k, v in body.items() if v is not None})
    if route == "get":
        at = draw(tx)
        return "GET", "key", f"key={key}" + ("" if at is None else f"&tx={at}"), b""
    if route == "put":
        return "POST", "key", f"key={key}", orjson.dumps(draw(json_values))
    return "DELETE", "key", f"key={key}", b""


Records = dict[str, dict[str, Any]]  # key -> the record as a read answers it
State = dict[str, Records]  # namespace -> its records


class StoreModel:
    """What the store holds: the records of every namespace after each tx, and the tx counter."""

    def __init__(self) -> None:
        self.states: list[State] = [{}]  # states[tx]

    @property
    def tx(self) -> int:
        return len(self.states) - 1

    def records(self, ns: str, tx: int | None = None) -> Records:
        return self.states[self.tx if tx is None else tx].get(ns, {})

    def after(self, ns: str, changes: dict[str, dict[str, Any] | None]) -> State:
        """The state with ``changes`` applied to ``ns`` (None: the key is deleted)."""
        records = dict(self.records(ns))
        for key, record in changes.items():
            if record is None:
                records.pop(key, None)
            else:
                records[key] = record
        return {**self.states[-1], ns: records}

    def commit(self, ns: str, changes: dict[str, dict[str, Any] | None]) -> None:
        self.states.append(self.after(ns, changes))


def put_record(key: str, item: dict[str, Any], tx: int) -> dict[str, Any]:
    """The record a write item leaves: a clear without ``value``; binary values come back as base64."""
    if "value" not in item:
        return {"key": key, "tx": tx}
    if item.get("binary") is True:
        value = base64.b64encode(base64.b64decode(item["value"], validate=True)).decode("ascii")
        return {"key": key, "value": value, "tx": tx, "binary": True}
    return {"key": key, "value": item["value"], "tx": tx, "binary": False}


def check_write(model: StoreModel, ns: str, query: str, body: Any, doc: dict[str, Any]) -> None:
    """An accepted write put or cleared every item it did not list as failed, in one new tx."""
    if query == "atomic=false":
        failed = {e["index"] for e in doc["errors"]}
        assert doc["failed"] == len(failed) and doc["succeeded"] == len(body) - len(failed), doc
    else:
        failed = set()
        assert doc["count"] == len(body), doc
    good = [item for i, item in enumerate(body) if i not in failed]
    if query == "atomic=false":  # Cloudflare's unsuccessful_keys: failed keys no written item wrote
        written = {item["key"] for item in good} if doc["tx"] is not None else set()
        assert doc["unsuccessful_keys"] == list(dict.fromkeys(
            body[i]["key"] for i in sorted(failed) if type(body[i]) is dict and type(body[i].get("key")) is str
            and body[i]["key"] not in written)), doc
    if not good:
        assert doc["tx"] is None, doc
        return
    tx = model.tx + 1
    assert doc["tx"] == tx, doc
    changes: dict[str, dict[str, Any] | None] = {item["key"]: put_record(item["key"], item, tx) for item in good}
    assert len(changes) == len(good)  # a key twice in one write is refused, never merged
    model.commit(ns, changes)


def check_delete(model: StoreModel, ns: str, keys: list[str], doc: dict[str, Any], latest: int) -> None:
    """An accepted delete removed every key: in a new tx, or in none if it changed nothing."""
    changes: dict[str, dict[str, Any] | None] = dict.fromkeys(keys)
    if latest == model.tx:  # no tx taken: only a delete of keys that hold nothing may do that
        assert not set(keys) & set(model.records(ns)), (keys, doc)  # (in a namespace never written too)
        return
    assert doc["tx"] == latest == model.tx + 1, doc
    model.commit(ns, changes)


def expected_read(model: StoreModel, ns: str, keys: list[str], tx: int | None) -> list[dict[str, Any]]:
    records = model.records(ns, tx)
    return [records[k] for k in dict.fromkeys(keys) if k in records]  # request order, each key once


def expected_scan(model: StoreModel, ns: str, prefix: str, limit: int, tx: int | None) -> tuple[list[Any], Any]:
    records = model.records(ns, tx)
    matching = sorted((k for k in records if k.startswith(prefix)), key=lambda k: k.encode())
    page = [records[k] for k in matching[:limit]]
    return page, (page[-1]["key"] if len(matching) > limit else None)


def record_form(rec: Any) -> dict[str, Any]:
    """An engine record in the form a read answers it (written here, not taken from the server)."""
    if rec.cleared:
        return {"key": rec.key, "tx": rec.tx}
    if rec.binary:
        return {"key": rec.key, "value": base64.b64encode(rec.value).decode("ascii"), "tx": rec.tx, "binary": True}
    return {"key": rec.key, "value": rec.value, "tx": rec.tx, "binary": False}


def assert_store_holds(store: Any, model: StoreModel, ns: str) -> None:
    """The namespace, read through the engine, holds exactly the model's records."""
    held = [] if store.namespace_info(ns) is None else [record_form(r) for r in store.namespace(ns).scan()]
    want = expected_scan(model, ns, "", 1 << 30, None)[0]
    assert same(held, want), (held, want)


def check_accepted(model: StoreModel, method: str, ns: str, action: str, query: str, raw: bytes,
                   doc: dict[str, Any], latest: int) -> None:
    """Compare what an accepted request answered and did with the model; advance the model."""
    route = (method, action)
    params = dict(parse_qsl(query))
    key, at = params.get("key", ""), (int(params["tx"]) if "tx" in params else None)
    if route in (("POST", "read"), ("POST", "scan"), ("GET", "key")):
        assert latest == model.tx, doc  # reads write nothing
    if route == ("POST", "write"):
        check_write(model, ns, query, orjson.loads(raw), doc)
    elif route == ("POST", "delete"):
        body = orjson.loads(raw)
        items = body if type(body) is list else body["keys"]
        # A delete's list holds keys, or objects {"key", "if_match"?, "if_none_match"?}.
        check_delete(model, ns, [k["key"] if type(k) is dict else k for k in items], doc, latest)
    elif route == ("DELETE", "key"):
        check_delete(model, ns, [key], doc, latest)
    elif route == ("POST", "key"):  # the raw body is the JSON value of the key
        assert doc["tx"] == latest == model.tx + 1, doc
        model.commit(ns, {key: {"key": key, "value": orjson.loads(raw), "tx": latest, "binary": False}})
    elif route == ("POST", "read"):
        body = orjson.loads(raw) if raw else {}  # an empty body reads as {}
        keys, tx = (body, None) if type(body) is list else (body.get("keys") or [], body.get("tx"))
        assert doc["tx"] == (model.tx if tx is None else tx), doc
        want = expected_read(model, ns, keys, tx)
        assert same(doc["data"], want) and doc["count"] == len(want), (doc, want)
    elif route == ("POST", "scan"):
        body = orjson.loads(raw) if raw else {}
        tx = body.get("tx")
        want, cursor = expected_scan(model, ns, body.get("prefix") or "", body.get("limit") or 1000, tx)
        assert doc["tx"] == (model.tx if tx is None else tx), doc
        assert same(doc["data"], want) and doc.get("cursor") == cursor, (doc, want)
    elif route == ("GET", "key"):
        record = {k: v for k, v in doc.items() if k != "duration"}
        assert same(record, model.records(ns, at)[key]), (doc, model.records(ns, at))
    else:
        raise AssertionError(f"{method} {action} answered {doc}")
    assert latest == model.tx, (latest, model.tx)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, StoreModel]]:
    app = create_app(tmp_path_factory.mktemp("fuzz"), sync=False)
    client = Client(app)
    model = StoreModel()
    client.write("fz", [{"key": "a", "value": 1}])
    model.commit("fz", {"a": {"key": "a", "value": 1, "tx": 1, "binary": False}})
    yield client, model
    app.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_requests_never_500_and_do_what_the_model_says(fuzz_client: tuple[Client, StoreModel],
                                                                data: Any) -> None:
    # One store (and its model) for every example (opening one per example would dominate the run time).
    client, model = fuzz_client
    store = client.app.store
    if data.draw(st.booleans(), label="well-formed"):
        ns = data.draw(st.sampled_from(["fz", "ok.name"]))
        method, action, query, raw = well_formed(data.draw, model.tx)
    else:
        ns = data.draw(storages)
        method = data.draw(st.sampled_from(["POST", "GET", "DELETE"]))
        action, _, query = data.draw(paths).partition("?")
        raw = data.draw(st.one_of(bodies.map(orjson.dumps), st.binary(max_size=40)))
    before = fingerprint(store)
    r = client.request(method, f"/v4/storage/{ns}/{action}", query=query, body=raw, content_type="application/json")
    assert r.status < 500, r
    doc = r.json()
    if r.status >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert doc["status"] == r.status and isinstance(doc["code"], str)
        assert fingerprint(store) == before, r  # not a byte of the store changed
        if r.status == 404 and doc["code"] == "KEY_NOT_FOUND":  # a key the model does not hold either
            params = dict(parse_qsl(query))
            assert params["key"] not in model.records(ns, int(params["tx"]) if "tx" in params else None), doc
        return
    check_accepted(model, method, ns, action, query, raw, doc, int(store.latest_tx))
    assert_store_holds(store, model, ns)
