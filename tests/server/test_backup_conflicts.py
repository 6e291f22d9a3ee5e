"""Backups that meet something in the way: 409 ``CONFLICT`` naming it, never a 500; and the partial
directories of killed backups are removed at the next backup, never a live backup's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

import engine
from engine import Store, errors
from server.app import App
from tests.conftest import fingerprint
from tests.server.conftest import REPO, Client, LiveServer, start_server, stop_server


def test_a_backup_under_a_regular_file_is_a_409_naming_the_file(client: Client, app: App, tmp_path: Path) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "plain").write_text("not a directory")
    before = fingerprint(app.store)
    for path in ("plain/b1", "plain/deeper/b1"):
        r = client.post("/v4/admin/backup", json={"path": path})
        assert (r.status, r.code) == (409, "CONFLICT"), r
        doc = r.json()
        assert doc["errors"] == [{"location": "/path", "message": "'plain' is a file, not a directory",
                                  "value": path}]
        assert "'plain'" in doc["detail"] and str(tmp_path) not in r.body.decode()
    r = client.post("/v4/admin/backup", json={"path": "plain"})  # the target itself is a file
    assert (r.status, r.code) == (409, "CONFLICT") and "exists" in r.json()["detail"], r
    assert (tmp_path / "backups" / "plain").read_text() == "not a directory"
    assert fingerprint(app.store) == before
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["plain"]  # no partial left


def test_an_existing_backup_name_is_a_409(client: Client, tmp_path: Path) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    assert client.post("/v4/admin/backup", json={"path": "b1"}).status == 201
    again = client.post("/v4/admin/backup", json={"path": "b1"})
    assert (again.status, again.code) == (409, "CONFLICT"), again
    assert again.json()["errors"][0]["location"] == "/path" and str(tmp_path) not in again.body.decode()


def test_the_backup_answer_time_is_utc_with_z_and_the_manifest_source_is_absolute(
        client: Client, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = App("data-rel", sync=False)  # a data directory given relative to the working directory
    try:
        rel_client = Client(relative)
        rel_client.write("s", [{"key": "a", "value": 1}])
        info = rel_client.post("/v4/admin/backup", json={"path": "b1"}).json()
    finally:
        relative.close()
    assert info["time"].endswith("Z") and "+" not in info["time"]
    assert datetime.fromisoformat(info["time"]).utcoffset().total_seconds() == 0
    manifest = engine.backup.read_manifest(info["path"])
    assert manifest is not None
    assert manifest["source"] == str(tmp_path / "data-rel") and os.path.isabs(manifest["source"])
    assert manifest["time"] == info["time"]


# -- over a live server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("backups"))
    pad = "x" * 2000
    for batch in range(20):  # about 2 MB, so the concurrent copies overlap
        items = [{"key": f"k{batch}-{i}", "value": pad} for i in range(50)]
        assert live.request("POST", "/v4/storage/s/write", json=items)[0] == 200
    yield live
    stop_server(live.proc)


def test_concurrent_backups_to_one_new_name_give_one_201_and_409s(server: LiveServer) -> None:
    barrier = threading.Barrier(4)
    answers: list[tuple[int, dict[str, object]]] = []

    def post() -> None:
        barrier.wait()
        status, _, body = server.request("POST", "/v4/admin/backup", json={"path": "race/one"})
        answers.append((status, orjson.loads(body)))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409], answers
    for status, doc in answers:
        if status == 409:
            assert doc["code"] == "CONFLICT" and doc["errors"][0]["location"] == "/path", doc
    backups = server.data.parent / "backups" / "race"
    assert sorted(p.name for p in backups.iterdir()) == ["one"]  # no partial directory left over
    won = next(doc for status, doc in answers if status == 201)
    restored = Store.restore(backups / "one", server.data.parent / "restored-race")
    assert (restored.tx, restored.hash) == (won["tx"], won["hash"])


HOLD_PARTIAL = """
import sys
from pathlib import Path
from engine.backup import _partial_dir
with _partial_dir(Path(sys.argv[1])) as tmp:
    (tmp / "data.mdb").write_bytes(b"half a copy" * 1000)
    print(tmp, flush=True)
    sys.stdin.read()  # until the test kills it, or closes stdin
"""


def hold_partial(target: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real process that is in the middle of writing a backup of ``target``: its partial
    directory exists and is locked. Returns the process and the directory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD_PARTIAL, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stdout is not None
    partial = Path(proc.stdout.readline().strip())
    assert partial.is_dir() and partial.name.startswith(f".{target.name}.partial-{proc.pid}-")
    return proc, partial


def release(proc: subprocess.Popen[str]) -> None:
    """Let a holder finish: leaving ``with`` closes its stdin (its cue to exit) and stdout, then waits."""
    with proc:
        pass


def killed_partial(target: Path) -> Path:
    proc, partial = hold_partial(target)
    proc.send_signal(signal.SIGKILL)
    release(proc)
    assert partial.is_dir()  # what a killed backup leaves behind
    return partial


def test_a_backup_removes_partials_of_killed_backups_but_not_of_live_ones(server: LiveServer) -> None:
    backups = server.data.parent / "backups"
    dead_here = killed_partial(backups / "nightly" / "b1")
    dead_root = killed_partial(backups / "b0")
    live, live_partial = hold_partial(backups / "nightly" / "b2")
    try:
        status, _, body = server.request("POST", "/v4/admin/backup", json={"path": "weekly/w1"})
        assert status == 201, body
        assert not dead_here.exists() and not dead_root.exists()
        assert live_partial.is_dir()  # its writer is alive: never removed
    finally:
        release(live)


def test_an_engine_backup_removes_dead_partials_beside_its_target(tmp_path: Path, store: Store) -> None:
    store.namespace("s").put({"a": 1})
    dead = killed_partial(tmp_path / "bk" / "old")
    live, live_partial = hold_partial(tmp_path / "bk" / "busy")
    try:
        store.backup(tmp_path / "bk" / "new")
        assert not dead.exists() and live_partial.is_dir()
        assert engine.backup.remove_abandoned_partials(tmp_path / "bk") == []  # the live one stays
    finally:
        release(live)
    with pytest.raises(errors.Conflict, match=r"backup target .*new' exists and is not an empty directory"):
        store.backup(tmp_path / "bk" / "new")
