"""/healthz, /openapi.json (checked against the route table) and /metrics."""

from __future__ import annotations

import re

import orjson

from engine import errors
from server.app import DEFAULT_OPENAPI
from server.metrics import Metrics
from server.routes import TABLE
from tests.server.conftest import Client

METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}


def test_healthz(client: Client) -> None:
    r = client.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "ok", "tx": 0}
    client.write("s", [{"key": "a", "value": 1}])
    assert client.get("/healthz").json()["tx"] == 1


def test_openapi_document_matches_the_route_table(client: Client) -> None:
    r = client.get("/openapi.json")
    assert r.status == 200 and r.body == DEFAULT_OPENAPI.read_bytes()
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, m.upper()) for path, item in doc["paths"].items() for m in item if m in METHODS}
    routed = {(template, method) for template, method, _, _ in TABLE}
    assert documented == routed
    for path, item in doc["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            params = item.get("parameters", [])
            assert any(p["name"] == name and p["in"] == "path" for p in params), (path, name)


def test_openapi_references_resolve() -> None:
    doc = orjson.loads(DEFAULT_OPENAPI.read_bytes())
    refs = set(re.findall(rb'"\$ref":\s*"#/components/schemas/(\w+)"', DEFAULT_OPENAPI.read_bytes()))
    assert refs and {r.decode() for r in refs} <= set(doc["components"]["schemas"])


def test_metrics_count_requests_by_route_and_status(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    client.read("s", ["a"])
    client.read("s", ["a"])
    client.read("s", ["a"], tx=99)
    client.get("/nope")
    client.request("PUT", "/v4/storage/s/read")
    text = client.get("/metrics").body.decode()
    read = 'route="/v4/storage/{storage}/read",method="POST"'
    assert f'strata_http_requests_total{{{read},status="200"}} 2' in text
    assert f'strata_http_requests_total{{{read},status="400"}} 1' in text
    assert 'strata_http_requests_total{route="unmatched",method="",status="404"} 1' in text
    assert 'method="other",status="405"} 1' in text
    assert f'strata_http_request_duration_seconds_count{{{read}}} 3' in text
    assert f'strata_http_request_duration_seconds_bucket{{{read},le="+Inf"}} 3' in text
    assert "strata_latest_tx 1" in text
    assert re.search(r"^strata_map_size_bytes [1-9]\d*$", text, re.M)
    assert re.search(r"^strata_map_used_bytes [1-9]\d*$", text, re.M)
    assert "strata_metrics_shared 1" in text


def test_histogram_buckets_are_cumulative() -> None:
    m = Metrics([("/r", "GET")])
    for ns in (100_000, 2_000_000, 2_000_000, 20_000_000_000):
        m.observe(0, 200, ns)
    m.observe(0, 418, 1)
    text = m.render({}).decode()
    assert 'le="0.0005"} 2' in text  # 1 ns and 100 us
    assert 'le="0.001"} 2' in text and 'le="0.0025"} 4' in text
    assert 'le="5.0"} 4' in text and 'le="+Inf"} 5' in text
    assert 'status="other"} 1' in text and 'status="200"} 4' in text
    assert 'strata_http_request_duration_seconds_sum{route="/r",method="GET"} 20.004100001' in text


def test_every_route_and_code_is_documented() -> None:
    doc = (DEFAULT_OPENAPI.parent / "http-api.md").read_text()
    headings = set(re.findall(r"^### (GET|HEAD|POST|DELETE|PUT) (\S+?)(?:\?|$)", doc, re.M))
    assert headings == {(method, template) for template, method, _, _ in TABLE}
    for code in errors.BY_CODE:
        if code != "ENGINE_ERROR":
            assert f"| `{code}` |" in doc, code
    for code in ("NOT_FOUND", "KEY_NOT_FOUND", "METHOD_NOT_ALLOWED", "UNSUPPORTED_MEDIA_TYPE",
                 "PAYLOAD_TOO_LARGE", "UNAUTHORIZED", "FORBIDDEN", "INVALID_JSON", "INTERNAL_ERROR"):
        assert f"| `{code}` |" in doc, code


def test_every_error_code_is_in_the_openapi_problem_schema() -> None:
    # A code missing from the enum makes every response carrying it invalid against the schema
    # (schemathesis found exactly that when expiry added four codes).
    import json

    problem = json.loads(DEFAULT_OPENAPI.read_text())["components"]["schemas"]["Problem"]
    enum = set(problem["properties"]["code"]["enum"])
    assert set(errors.BY_CODE) - {"ENGINE_ERROR"} <= enum
    for code in ("NOT_FOUND", "KEY_NOT_FOUND", "METHOD_NOT_ALLOWED", "UNSUPPORTED_MEDIA_TYPE",
                 "PAYLOAD_TOO_LARGE", "UNAUTHORIZED", "FORBIDDEN", "INVALID_JSON", "INTERNAL_ERROR"):
        assert code in enum, code
