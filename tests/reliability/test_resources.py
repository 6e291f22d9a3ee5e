"""Disk full over HTTP: 507 STORAGE_FULL, the store stays readable and intact, writes resume.

The server and its workers run under RLIMIT_FSIZE (with SIGXFSZ ignored, so the file system
answers EFBIG as a full disk answers ENOSPC) set a little above the size of a seeded store. A
write too big for the room left gets 507 ``STORAGE_FULL`` and moves nothing; reads still work; a
write that fits still commits. Restarted without the limit ("space freed"), the big write
succeeds and ``verify()`` passes.
"""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from engine import Store
from tests.reliability.helpers import check_verify, start_synced_server
from tests.server.conftest import LiveServer, stop_server

BIG = [{"key": "big", "value": base64.b64encode(b"z" * 4_000_000).decode(), "binary": True}]


def latest(server: LiveServer) -> int:
    return int(orjson.loads(server.request("GET", "/healthz")[2])["tx"])


def test_disk_full_over_http(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        store.namespace("n").put({f"k{i}": {"i": i} for i in range(200)})
    size = (tmp_path / "data" / "data.mdb").stat().st_size
    server = start_synced_server(tmp_path, fsize_limit=size + 256 * 1024)
    try:
        before = latest(server)
        status, headers, body = server.request("POST", "/v4/storage/n/write", json=BIG)
        assert (status, orjson.loads(body)["code"]) == (507, "STORAGE_FULL"), body
        assert headers["content-type"] == "application/problem+json"
        assert latest(server) == before
        status, _, body = server.request("POST", "/v4/storage/n/read", json={"keys": ["k0", "k199", "big"]})
        assert status == 200 and [d["key"] for d in orjson.loads(body)["data"]] == ["k0", "k199"]
        for _ in range(3):  # the worker is still healthy: the same refusal, then a write that fits
            assert server.request("POST", "/v4/storage/n/write", json=BIG)[0] == 507
        status, _, body = server.request("POST", "/v4/storage/n/write", json=[{"key": "small", "value": 1}])
        assert status == 200 and orjson.loads(body)["tx"] == before + 1
    finally:
        stop_server(server.proc)
    server = start_synced_server(tmp_path)  # space is back
    try:
        status, _, body = server.request("POST", "/v4/storage/n/write", json=BIG)
        assert status == 200 and orjson.loads(body)["tx"] == before + 2
        status, _, body = server.request("GET", "/v4/storage/n/key?key=big")
        assert base64.b64decode(orjson.loads(body)["value"]) == b"z" * 4_000_000
    finally:
        stop_server(server.proc)
    with Store.open(tmp_path / "data") as store:
        assert store.namespace("n").get("k7").value == {"i": 7}  # type: ignore[union-attr]
        check_verify(store)
