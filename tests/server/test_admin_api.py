"""The admin API: compaction, its status, hot backups; scopes; backup paths confined; 410 below the horizon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Retention, Store
from server import create_app
from server.app import App
from server.lifecycle import LOCK_NAME, LifecycleLeader, backup_target, parse_duration
from tests.server.conftest import Client

READ = "read-key-0123456789"
WRITE = "write-key-0123456789"
ADMIN = "admin-key-0123456789"
SCOPED = "scoped-admin-0123456789"


def fill(client: Client, txs: int = 6) -> None:
    """txs 1..txs each overwrite keys a and b of namespace s (and tx 3 deletes c)."""
    for i in range(1, txs + 1):
        client.write("s", [{"key": "a", "value": i}, {"key": "b", "value": {"n": i}}, {"key": "c", "value": i}]
                     if i < 3 else [{"key": "a", "value": i}, {"key": "b", "value": {"n": i}}])
        if i == 3:
            client.post("/v4/storage/s/delete", json=["c"])


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    keys = tmp_path / "keys.json"
    keys.write_bytes(orjson.dumps({"keys": [
        {"name": "reader", "key": READ, "scope": "read"},
        {"name": "writer", "key": WRITE, "scope": "write"},
        {"name": "admin", "key": ADMIN, "scope": "admin"},
        {"name": "scoped", "key": SCOPED, "scope": "admin", "namespaces": ["s"]},
    ]}))
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    yield app
    app.close()


def test_compact_then_reads_below_the_horizon_are_410(client: Client) -> None:
    fill(client)
    latest = client.get("/v4/head").json()["tx"]
    before = client.read("s", ["a", "b"], tx=5).json()
    r = client.post("/v4/admin/compact", json={"before_tx": 5})
    assert r.status == 200, r
    body = r.json()
    assert body["mode"] == "before_tx" and body["horizon"] == 5 and body["pending"] is False
    assert body["freed"] > 0 and {"txs", "chunks", "seconds", "duration"} <= set(body)
    # at and after the horizon: the same answers
    assert client.read("s", ["a", "b"], tx=5).json()["data"] == before["data"]
    assert client.read("s", ["a"], tx=latest).status == 200
    # below it: 410 Gone, TX_COMPACTED, pointing at the tx
    r = client.read("s", ["a"], tx=4)
    assert r.status == 410 and r.code == "TX_COMPACTED", r
    assert r.json()["horizon"] == 5 and r.json()["errors"][0]["location"] == "/tx"
    assert client.get("/v4/storage/s/key", query={"key": "a", "tx": "2"}).status == 410
    assert client.post("/v4/storage/s/scan", json={"tx": 1}).code == "TX_COMPACTED"
    # the change feed carries the values puts stored: from below the horizon it is 410 too
    assert client.get("/v4/storage/s/changes", query={"since": "0"}).status == 410
    r = client.get("/v4/storage/s/sse", query={"start_tx": "0"})
    assert r.status == 410 and r.json()["errors"][0]["location"] == "query.start_tx"
    assert client.get("/v4/storage/s/changes", query={"since": "4"}).status == 200
    # the log keeps its hashes: verify still passes
    assert client.get("/v4/verify").json()["ok"] is True
    status = client.get("/v4/admin/compaction").json()
    assert status["horizon"] == 5 and status["pending"] is None and status["retention"] is None
    assert status["freed_versions"] == body["freed"] and status["latest_tx"] == latest


def test_compact_body_checks(client: Client) -> None:
    fill(client, 3)
    for bad in ({"before_tx": -1}, {"before_tx": "2"}, {"before_tx": True}, {"tx": 2}, [2]):
        assert client.post("/v4/admin/compact", json=bad).status == 400, bad
    r = client.post("/v4/admin/compact", json={"before_tx": 99})
    assert r.status == 400 and r.code == "FUTURE_TX" and r.json()["errors"][0]["location"] == "/before_tx"
    assert client.post("/v4/admin/compact", body=b"x", content_type="text/plain").status == 415
    # no body, no policy: finish pending work (there is none) and change nothing
    r = client.post("/v4/admin/compact")
    assert r.status == 200 and r.json()["mode"] == "resume" and r.json()["horizon"] == 0
    assert client.read("s", ["a"], tx=1).status == 200


def test_compact_without_a_tx_applies_the_servers_retention(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", sync=False, retention=Retention(txs=2, interval=3600))
    try:
        client = Client(app)
        fill(client)  # 7 txs
        r = client.post("/v4/admin/compact", json={})
        assert r.status == 200 and r.json()["mode"] == "retention" and r.json()["horizon"] == 6, r
        assert client.read("s", ["a"], tx=5).code == "TX_COMPACTED"
        assert client.get("/v4/admin/compaction").json()["retention"] == {"txs": 2, "seconds": None,
                                                                          "interval": 3600}
        again = client.post("/v4/admin/compact").json()  # nothing left to do
        assert again["horizon"] == 6 and again["freed"] == 0
    finally:
        app.close()


def test_backup_into_the_backup_dir_restores_to_the_same_head(client: Client, app: App, tmp_path: Path) -> None:
    fill(client)
    head = client.get("/v4/head").json()
    r = client.post("/v4/admin/backup", json={"path": "nightly/b1"})
    assert r.status == 201, r
    info = r.json()
    assert info["name"] == "nightly/b1" and (info["tx"], info["hash"]) == (head["tx"], head["hash"])
    assert Path(info["path"]) == tmp_path / "backups" / "nightly" / "b1" and info["size_bytes"] > 0
    assert app.backup_dir == tmp_path / "backups"
    with Store.open(Store.restore(info["path"], tmp_path / "restored").path) as restored:
        assert restored.head() == (head["tx"], head["hash"])
    # the same name again: refused, nothing overwritten, no server path echoed back
    again = client.post("/v4/admin/backup", json={"path": "nightly/b1"})
    assert again.status == 409 and again.code == "CONFLICT" and str(tmp_path) not in again.body.decode()
    # no path: a timestamped name
    auto = client.post("/v4/admin/backup")
    assert auto.status == 201 and auto.json()["name"].startswith("backup-")


@pytest.mark.parametrize("path", [
    "/tmp/evil", "../evil", "a/../../evil", "..", ".", "a//b", "a/./b", ".hidden", "a/.partial", "a\\..\\b",
    "a\x00b", "", "x" * 300, "a b", "a/", "~/x",
])
def test_backup_paths_outside_the_backup_dir_are_refused(client: Client, tmp_path: Path, path: str) -> None:
    r = client.post("/v4/admin/backup", json={"path": path})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS", (path, r)
    assert r.json()["errors"][0]["location"] == "/path"
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_backup_path_cannot_escape_through_a_symlink(client: Client, tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "backups" / "link")
    r = client.post("/v4/admin/backup", json={"path": "link/b1"})
    assert r.status == 400 and "outside" in r.json()["detail"]
    assert not any((tmp_path / "elsewhere").iterdir())
    assert client.post("/v4/admin/backup", json={"path": 5}).status == 400
    assert client.post("/v4/admin/backup", json={"path": "ok", "to": "/x"}).status == 400


def test_backup_target_rules(tmp_path: Path) -> None:
    assert backup_target(tmp_path, "a/b-1.2_x") == tmp_path.resolve() / "a" / "b-1.2_x"
    for bad, message in (("/abs", "must be relative to the server's backup directory, not absolute"),
                         ("..", "must not contain empty, '.' or '..' segments"),
                         ("a/..", "must not contain empty, '.' or '..' segments"),
                         ("-/.x", "each path segment must be 1 to 128 characters .* and not start with a dot")):
        with pytest.raises(ValueError, match=message):
            backup_target(tmp_path, bad)


def test_admin_routes_need_an_admin_key_for_every_namespace(secured: App) -> None:
    client = Client(secured)
    calls = [("POST", "/v4/admin/compact", {}), ("GET", "/v4/admin/compaction", ...),
             ("POST", "/v4/admin/backup", {"path": "b1"})]
    for method, path, body in calls:
        assert client.request(method, path, json=body).status == 401, path
        assert client.request(method, path, json=body, token="nope-nope-nope-nope").status == 401, path
        for token in (READ, WRITE):
            r = client.request(method, path, json=body, token=token)
            assert r.status == 403 and r.code == "FORBIDDEN", (path, token)
        r = client.request(method, path, json=body, token=SCOPED)  # admin, but of namespace s only
        assert r.status == 403 and "whole store" in r.json()["detail"], path
    assert not secured.backup_dir.exists()  # nothing was written by the refused calls
    for method, path, body in calls:
        assert client.request(method, path, json=body, token=ADMIN).status in (200, 201), path


def test_parse_duration() -> None:
    assert parse_duration("30d").total_seconds() == 30 * 86400
    assert parse_duration("1d12h").total_seconds() == 36 * 3600
    assert parse_duration("90m").total_seconds() == 5400 and parse_duration("3600").total_seconds() == 3600
    assert parse_duration("2w").total_seconds() == 14 * 86400 and parse_duration("1.5h").total_seconds() == 5400
    for bad in ("", "d", "30x", "1d 2h", "-1d", "h12"):
        with pytest.raises(ValueError, match=f"^'{bad}' is not a duration: use a number with a unit s, m, h, d or w"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="a duration must be above zero, not '0s'"):
        parse_duration("0s")


def test_only_one_retention_leader_per_data_dir(tmp_path: Path) -> None:
    """Two workers' leaders: exactly one holds the lock; when it stops, the other takes over."""
    policy = Retention(txs=1, interval=0.01)
    with Store.open(tmp_path / "data", sync=False) as s1, Store.open(tmp_path / "data2", sync=False) as s2:
        s1.namespace("s").put({"a": 1})
        s1.namespace("s").put({"a": 2})
        first = LifecycleLeader(s1, tmp_path / "data", policy)
        second = LifecycleLeader(s2, tmp_path / "data", policy)  # same lock file: a second worker
        assert first._try_lock() and not second._try_lock()
        first.start()
        deadline_passes = 0
        while s1.horizon < 2 and deadline_passes < 2000:  # bounded wait for the first pass
            first._stop_event.wait(0.005)
            deadline_passes += 1
        assert s1.horizon == 2
        first.stop()
        assert not first.leading and second._try_lock()
        second._release()
        assert (tmp_path / "data" / LOCK_NAME).exists()


def test_the_lifecycle_leader_records_due_expiries_without_any_write(tmp_path: Path) -> None:
    """Expired keys become deletes in the history (and leave key_count) with nobody writing."""
    from tests.engine.clock import T0, Clock

    clock = Clock()
    with Store.open(tmp_path / "data", sync=False, clock=clock) as store:
        ns = store.namespace("s")
        ns.put({"gone": 1}, ttl=5)
        ns.put({"kept": 2})
        clock.now = T0 + 10  # "gone" is due; nothing writes after this
        assert ns.info().key_count == 2
        leader = LifecycleLeader(store, tmp_path / "data", expire_every=0.01)
        leader.start()
        try:
            for _ in range(2000):  # bounded wait for the first sweep
                if ns.info().key_count == 1:
                    break
                leader._stop_event.wait(0.005)
        finally:
            leader.stop()
        assert ns.info().key_count == 1
        newest = ns.history("gone", limit=1)[0]
        assert newest.deleted and newest.note == {"expired": True}
    with pytest.raises(ValueError, match="retention policy or an expiry period"):
        LifecycleLeader(None, tmp_path, None, None)
