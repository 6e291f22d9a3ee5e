"""The audit commands of ``strata`` on a real store: history, at, diff, verify, head, tail, bench."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Store
from server.cli import main
from tests.engine.raw import open_raw
from tests.server.conftest import REPO


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """tx 1 put a=1 b=bytes (note), tx 2 put a=2, tx 3 clear b, tx 4 other ns, tx 5 delete a."""
    path = tmp_path / "data"
    with Store.open(path) as store:
        s = store.namespace("s")
        s.put({"a": 1, "b": b"\x00\x01"}, note={"by": "alice"})
        s.put({"a": 2})
        s.clear(["b"])
        store.namespace("o").put({"x": True})
        s.delete(["a"])
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "a", "--ns", "s", "--data", str(store_dir))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "history of s/a: 3 version(s), newest first"
    assert lines[1].split()[:2] == ["tx", "5"] and lines[1].endswith("delete")
    assert lines[2].split()[-2:] == ["put", "2"] and lines[3].split()[-2:] == ["put", "1"]
    code, out, _ = run(capsys, "history", "b", "--ns", "s", "--data", str(store_dir), "--order", "asc", "--limit", "1")
    assert "(binary, 2 bytes) AAE=" in out and "more: --after 1" in out
    assert run(capsys, "history", "", "--ns", "s", "--data", str(store_dir))[0] == 2


def test_at_reads_as_of_a_time(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(store_dir) as store:
        info = store.tx_info(2)
    assert info is not None
    stamp = info.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    code, out, _ = run(capsys, "at", stamp, "a", "b", "zz", "--ns", "s", "--data", str(store_dir))
    assert code == 0
    assert out.splitlines() == [f"at {stamp}: tx 2 (committed {stamp})", "  a: 2 (tx 2)",
                                "  b: (binary, 2 bytes) AAE= (tx 1)", "  zz: (absent)"]
    code, out, _ = run(capsys, "at", "2000-01-01T00:00:00+01:00", "a", "--ns", "s", "--data", str(store_dir))
    assert "tx 0 (before the first tx" in out and "a: (absent)" in out
    now = datetime.now(UTC).isoformat()
    assert "b: (cleared) (tx 3)" in run(capsys, "at", now, "b", "--ns", "s", "--data", str(store_dir))[1]
    code, _, err = run(capsys, "at", "yesterday", "a", "--ns", "s", "--data", str(store_dir))
    assert code == 2 and "RFC 3339" in err


def test_diff(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", "1", "5", "--ns", "s", "--data", str(store_dir))
    assert code == 0
    assert out.splitlines() == ["diff of s from tx 1 to tx 5:", "  deleted  a: 1 (tx 1) -> (absent)",
                                "  cleared  b: (binary, 2 bytes) AAE= (tx 1) -> (cleared) (tx 3)",
                                "  2 key(s) differ"]
    code, _, err = run(capsys, "diff", "5", "1", "--ns", "s", "--data", str(store_dir))
    assert code == 2 and "INVALID_PARAMETERS" in err
    code, _, err = run(capsys, "diff", "1", "9", "--ns", "s", "--data", str(store_dir))
    assert code == 2 and "FUTURE_TX" in err


def test_head_and_verify_with_a_receipt_then_tampering(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "head", "--data", str(store_dir))
    assert code == 0
    receipt = out.splitlines()[-1].removeprefix("receipt ")
    tx, digest = receipt.split(":")
    assert tx == "5" and len(digest) == 64 and f"hash {digest}" in out
    code, out, _ = run(capsys, "verify", "--data", str(store_dir), "--receipt", receipt)
    assert code == 0 and out.startswith("OK: 5 txs verified and receipt 5:")
    code, out, _ = run(capsys, "verify", "--data", str(store_dir), "--receipt", f"3:{'0' * 64}")
    assert code == 1 and out.startswith("FAILED at tx 3:")
    assert run(capsys, "verify", "--data", str(store_dir), "--receipt", "3-abc")[0] == 2
    # a receipt past the head names no tx of this store: an error, not "txs 1 to 49 verified"
    code, out, err = run(capsys, "verify", "--data", str(store_dir), "--receipt", f"50:{digest}")
    assert (code, out) == (2, "")
    assert err.startswith("strata verify: FUTURE_TX: ") and "50" in err and "Traceback" not in err
    # flip one byte of a stored value behind the engine's back: verify names the tx that wrote it
    env = open_raw(store_dir)
    with env.begin(write=True) as txn:
        versions = env.open_db(b"versions", txn=txn)
        cur = txn.cursor(db=versions)
        for key, value in cur:
            if bytes(value).endswith(b"\x00\x01"):  # b's bytes, written by tx 1
                txn.put(key, bytes(value)[:-1] + b"\x02", db=versions)
                break
        else:
            raise AssertionError("b's version not found")
    env.close()
    code, out, _ = run(capsys, "verify", "--data", str(store_dir))
    assert code == 1 and out.startswith("FAILED at tx 1:")


def test_tail_prints_each_tx(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tail", "--since", "0", "--no-follow", "--data", str(store_dir))
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line.startswith("tx ")] == ["1", "2", "3", "4", "5"]
    assert 'note {"by":"alice"}' in out and "  put    s/a = 1" in out and "  put    o/x = true" in out
    code, out, _ = run(capsys, "tail", "--ns", "s", "--since", "2", "--no-follow", "--data", str(store_dir))
    assert [line.split()[1] for line in out.splitlines() if line.startswith("tx ")] == ["3", "5"]
    assert "  clear  s/b" in out and "  delete s/a" in out


#: ``python -m server`` with Ctrl-C delivered as KeyboardInterrupt. A process started with SIGINT
#: ignored (a test runner under nohup, some CI agents) passes that on through exec, and Python then
#: leaves it ignored, so the child could not be interrupted; the child restores it itself.
INTERRUPTIBLE_STRATA = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                        "runpy.run_module('server', run_name='__main__', alter_sys=True)")


def test_tail_follows_writes_of_another_process_until_interrupted(store_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    # --since 5 (the latest tx): however late the child starts, it prints exactly what follows.
    with subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE_STRATA, "tail", "--ns", "s", "--since", "5",
                           "--data", str(store_dir)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            with Store.open(store_dir) as store:
                assert store.latest_tx == 5
                store.namespace("o").put({"skip": 1})
                store.namespace("s").put({"live": "yes"}, note={"by": "tail-test"})
            assert proc.stdout is not None
            first = proc.stdout.readline()  # blocks until tail prints (pytest-timeout bounds a hang)
            assert first.startswith("tx 7 ") and 'note {"by":"tail-test"}' in first
            assert proc.stdout.readline() == '  put    s/live = "yes"\n'
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0  # a hang guard only
            assert proc.stderr is not None and proc.stderr.read() == ""
        finally:
            if proc.poll() is None:  # failed before the interrupt, or ignored it: never leak the child
                proc.kill()
                proc.wait()


def test_audit_commands_need_an_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["head"], ["verify"], ["tail"], ["history", "k", "--ns", "s"], ["diff", "0", "0", "--ns", "s"],
                 ["at", "2026-01-01T00:00:00Z", "k", "--ns", "s"]):
        code, _, err = run(capsys, *argv, "--data", str(tmp_path / "none"))
        assert code == 2 and "no store at" in err, argv
    assert not (tmp_path / "none").exists()


def test_bench_runs_the_harness_from_the_repository(tmp_path: Path) -> None:
    # from another directory, benchmarks/ is not importable: the command finds it beside server/
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "server", "bench", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--quick" in done.stdout


def test_bench_explains_a_missing_dependency(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert main(["bench", "--quick"]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err
