"""The Merkle proof routes in-process: head's size and root, inclusion and consistency proofs, their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import merkle
from server import create_app
from tests.server.conftest import Client
from tests.server.test_auth import ADMIN, READ, SCOPED, write_keys


def _unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_head_proofs_verify_against_the_heads_a_client_saw(client: Client) -> None:
    heads = []
    for i in range(9):
        client.write("s", [{"key": f"k{i}", "value": i}])
        heads.append(client.get("/v4/head").json())
    assert [(h["tx"], h["size"]) for h in heads] == [(n, n) for n in range(1, 10)]
    roots = {h["size"]: bytes.fromhex(h["root"]) for h in heads}
    proof = client.get("/v4/proof/inclusion", query={"tx": "3", "size": "7"}).json()
    assert list(proof) == ["tx", "size", "leaf_hash", "path", "duration"]
    assert (proof["tx"], proof["size"], len(proof["path"])) == (3, 7, 3)
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 2, 7, _unhex(proof["path"]), roots[7])
    latest = client.get("/v4/proof/inclusion", query={"tx": "9"}).json()
    assert latest["size"] == 9
    assert merkle.verify_inclusion(bytes.fromhex(latest["leaf_hash"]), 8, 9, _unhex(latest["path"]), roots[9])
    for first in range(1, 10):
        body = client.get("/v4/proof/consistency", query={"from": str(first)}).json()
        assert (body["from"], body["to"]) == (first, 9) and list(body) == ["from", "to", "path", "duration"]
        assert merkle.verify_consistency(first, 9, roots[first], roots[9], _unhex(body["path"]))
    same = client.get("/v4/proof/consistency", query={"from": "4", "to": "4"}).json()
    assert same["path"] == []


@pytest.mark.parametrize(("path", "query", "code", "message", "location"), [
    ("inclusion", {}, "INVALID_PARAMETERS", "the tx query parameter (the tx to prove) is required", "query.tx"),
    ("inclusion", {"tx": "0"}, "INVALID_PARAMETERS", "tx must be an integer from 1 to the size 3, not 0", "query.tx"),
    ("inclusion", {"tx": "3", "size": "2"}, "INVALID_PARAMETERS",
     "tx must be an integer from 1 to the size 2, not 3", "query.tx"),
    ("inclusion", {"tx": "1", "size": "4"}, "FUTURE_TX", "size 4 is above the latest committed tx (3)", "query.size"),
    ("inclusion", {"tx": "x"}, "INVALID_PARAMETERS", "tx must be an integer from 0 to 9223372036854775807",
     "query.tx"),
    ("inclusion", {"tx": "1", "at": "2"}, "INVALID_PARAMETERS", None, None),
    ("consistency", {}, "INVALID_PARAMETERS", "the from query parameter (the size of the older tree) is required",
     "query.from"),
    ("consistency", {"from": "0"}, "INVALID_PARAMETERS",
     "from must be an integer from 1 to 3 (the size proved to extend it), not 0", "query.from"),
    ("consistency", {"from": "3", "to": "2"}, "INVALID_PARAMETERS",
     "from must be an integer from 1 to 2 (the size proved to extend it), not 3", "query.from"),
    ("consistency", {"from": "1", "to": "5"}, "FUTURE_TX", "to 5 is above the latest committed tx (3)", "query.to"),
])
def test_bad_proof_requests_are_exact_problems(client: Client, path: str, query: dict[str, str], code: str,
                                               message: str | None, location: str | None) -> None:
    for i in range(3):
        client.write("s", [{"key": "a", "value": i}])
    r = client.get(f"/v4/proof/{path}", query=query)
    assert r.status == 400 and r.code == code
    if message is not None:
        assert r.json()["detail"] == message
        assert r.json()["errors"][0]["location"] == location


def test_proofs_need_a_key_for_the_whole_log(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys.json", [{"name": "reader", "key": READ, "scope": "read"},
                                               {"name": "admin", "key": ADMIN, "scope": "admin"},
                                               {"name": "scoped", "key": SCOPED, "scope": "admin",
                                                "namespaces": ["mine"]}])
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    try:
        client = Client(app)
        assert client.write("mine", [{"key": "a", "value": 1}], token=ADMIN).status == 200
        for path, query in (("/v4/proof/inclusion", {"tx": "1"}), ("/v4/proof/consistency", {"from": "1"})):
            assert client.get(path, query=query, token=READ).status == 200
            assert client.get(path, query=query, token=SCOPED).code == "FORBIDDEN"
            assert client.get(path, query=query).status == 401
    finally:
        app.close()
