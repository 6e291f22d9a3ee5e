"""schemathesis against ``/openapi.json`` of a real ``strata serve``: no 5xx, answers match the schema.

Every operation of the served OpenAPI document (except the endpoint that streams server-sent
events, which never ends by itself) gets generated requests, valid and invalid, sent with an
admin key to a server with API keys on, and every answer is checked: no server error, status
code documented, content type and body conforming to the document. CI: 8 examples per operation; ``-m long``: 300.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import LiveServer, start_server, stop_server

# What the issue asks: no 5xx, and answers that match the document. (schemathesis's checks that
# the server accepts every schema-valid body and refuses every schema-violating one judge how
# tight the document's schemas are, not the server; they are left out.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TOKEN = "admin-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    (tmp / "keys.json").write_bytes(orjson.dumps({"keys": [{"key": TOKEN, "scope": "admin"}]}))
    server = start_server(tmp, "--keys", str(tmp / "keys.json"))
    server.request("POST", "/v4/storage/sample/write", json=[{"key": "a", "value": 1}, {"key": "b"}], headers=AUTH)
    yield server
    stop_server(server.proc)


@pytest.fixture(scope="module")
def api_schema(api_server: LiveServer) -> Any:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{api_server.port}/openapi.json")
    return schema


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/sse$")


def _short_wait(case: Any) -> None:
    """A long poll (``changes?wait=S``, S up to 60) on a quiet namespace answers after S seconds: a
    valid wait is cut to 0.1 s so the fuzz stays fast; an invalid one is sent as drawn, to be refused."""
    query = case.query
    if isinstance(query, dict) and "wait" in query:
        try:
            wait = float(query["wait"])
        except (TypeError, ValueError):
            return
        if 0.1 < wait <= 60:
            query["wait"] = "0.1"


def _check(case: Any) -> None:
    _short_wait(case)
    case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)


@schema.parametrize()
# CI runs the same examples every time (a red CI must mean a changed behaviour, not a new random
# draw); the long mode below explores new ones on every run.
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms(case: Any) -> None:
    _check(case)


@pytest.mark.long
@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_long(case: Any) -> None:
    _check(case)
