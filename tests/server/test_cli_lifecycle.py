"""``strata backup / restore / export / import / compact`` on real stores, through ``server.cli.main``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Store, errors
from server.cli import main


def make_store(path: Path, txs: int = 30) -> tuple[int, str]:
    """Two namespaces, overwrites, a clear, a delete, a binary value and notes; returns the head."""
    with Store.open(path, sync=False) as store:
        a, b = store.namespace("a"), store.namespace("b")
        for i in range(txs):
            a.put({f"k{j}": {"i": i, "j": j} for j in range(10)}, note={"by": "test", "i": i} if i % 5 == 0 else None)
            if i % 7 == 3:
                b.put({"bin": bytes([i, 0, 255]), f"x{i}": [i, "s", None, 1.5]})
        a.clear(["k1"])
        a.delete(["k2"])
        store.sync()
        return store.head()


def head_text(data: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["head", "--data", str(data)]) == 0
    return capsys.readouterr().out


def rows(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_full_history_export_then_import_gives_the_same_head(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src, dst, out = tmp_path / "src", tmp_path / "dst", tmp_path / "all.jsonl"
    make_store(src)
    assert main(["export", "--history", "--data", str(src), "--out", str(out)]) == 0
    header = rows(out)[0]
    assert header["mode"] == "history" and header["namespace"] is None and header["txs"] == header["until"]
    assert not list(tmp_path.glob("*.partial-*"))
    assert main(["import", str(out), "--data", str(dst)]) == 0
    assert "in " in capsys.readouterr().out
    assert head_text(dst, capsys) == head_text(src, capsys)
    assert main(["verify", "--data", str(dst)]) == 0
    # replaying again is refused (the txs exist), and the store is unchanged
    assert main(["import", str(out), "--data", str(dst), "--quiet"]) == 2
    assert "row 1" in capsys.readouterr().err
    assert head_text(dst, capsys) == head_text(src, capsys)


def test_export_to_stdout_and_import_from_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    make_store(src, 8)
    capsys.readouterr()
    assert main(["export", "--ns", "b", "--data", str(src)]) == 0
    captured = capsys.readouterr()
    lines = [orjson.loads(line) for line in captured.out.splitlines()]
    assert "exported" in captured.err and lines[0]["mode"] == "snapshot"
    binary = next(r for r in lines[1:] if r["key"] == "bin")
    assert binary["binary"] is True
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(captured.out.encode())))
    assert main(["import", "-", "--ns", "copy", "--data", str(tmp_path / "dst")]) == 0
    with Store.open(src) as a, Store.open(tmp_path / "dst") as b:
        keys = [r["key"] for r in lines[1:]]
        want = {r.key: (r.value, r.binary) for r in a.namespace("b").read(keys).records}
        got = {r.key: (r.value, r.binary) for r in b.namespace("copy").read(keys).records}
        assert got == want and want["bin"] == (bytes([3, 0, 255]), True)


def test_snapshot_at_a_tx_and_one_namespace_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    make_store(src, 12)
    snap, hist = tmp_path / "snap.jsonl", tmp_path / "b.jsonl"
    assert main(["export", "--ns", "a", "--tx", "5", "--data", str(src), "--out", str(snap)]) == 0
    assert rows(snap)[0]["tx"] == 5 and rows(snap)[1] == {"key": "k0", "value": {"i": 3, "j": 0}, "tx": 4}
    assert main(["export", "--history", "--ns", "b", "--data", str(src), "--out", str(hist)]) == 0
    capsys.readouterr()
    # a one-namespace history has gaps in its tx numbers: it needs --renumber
    assert main(["import", str(hist), "--data", str(tmp_path / "d1"), "--quiet"]) == 2
    assert main(["import", str(hist), "--renumber", "--ns", "bb", "--data", str(tmp_path / "d1")]) == 0
    with Store.open(tmp_path / "d1") as store:
        assert store.latest_tx == len(rows(hist)) - 1
        assert store.namespace("bb").read(["bin"]).records[0].value == bytes([10, 0, 255])
    # header-less rows: records for --ns
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes(b'{"key": "x", "value": 1}\n\n{"key": "y", "value": [2]}\n')
    assert main(["import", str(bare), "--data", str(tmp_path / "d2")]) == 2  # no --ns
    assert main(["import", str(bare), "--ns", "n", "--data", str(tmp_path / "d2")]) == 0
    with Store.open(tmp_path / "d2") as store:
        assert [r.value for r in store.namespace("n").read(["x", "y"]).records] == [1, [2]]
    # options that do not fit the file are refused before anything is written
    assert main(["import", str(snap), "--history", "--data", str(tmp_path / "d3")]) == 2
    assert main(["import", str(snap), "--renumber", "--data", str(tmp_path / "d3")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"key": "x", "value": 1}\nnot json\n')
    assert main(["import", str(bad), "--ns", "n", "--data", str(tmp_path / "d3")]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["export", "--data", str(src)]) == 2  # a snapshot needs --ns
    assert main(["import", str(tmp_path / "missing.jsonl"), "--data", str(tmp_path / "d3")]) == 2


def test_backup_and_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, bk, dst = tmp_path / "src", tmp_path / "bk" / "one", tmp_path / "restored"
    make_store(src, 10)
    assert main(["backup", str(bk), "--data", str(src)]) == 0
    assert "written to" in capsys.readouterr().out
    assert (bk / "data.mdb").is_file() and (bk / "strata-backup.json").is_file()
    assert main(["restore", str(bk), str(dst)]) == 0
    assert "hash chain verified" in capsys.readouterr().out
    assert head_text(dst, capsys) == head_text(src, capsys)
    # neither overwrites
    assert main(["backup", str(bk), "--data", str(src)]) == 2
    assert main(["restore", str(bk), str(dst)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["restore", str(tmp_path), str(tmp_path / "x")]) == 2  # not a backup
    assert main(["backup", str(tmp_path / "b2"), "--data", str(tmp_path / "nothing")]) == 2  # no store


def test_compact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    make_store(src, 20)
    before = head_text(src, capsys)
    assert main(["compact", "--before", "99", "--data", str(src)]) == 2
    assert "FUTURE_TX" in capsys.readouterr().err
    assert main(["compact", "--before", "10", "--data", str(src)]) == 0
    assert capsys.readouterr().out.startswith("horizon 10: freed ")
    with Store.open(src) as store:
        assert store.horizon == 10
        with pytest.raises(errors.TxCompacted, match="tx 9 was compacted away: the oldest readable tx is 10"):
            store.namespace("a").read(["k0"], tx=9)
    assert head_text(src, capsys) == before and main(["verify", "--data", str(src)]) == 0
    # a history export from below the horizon is refused, and no partial file is left
    assert main(["export", "--history", "--data", str(src), "--out", str(tmp_path / "h.jsonl")]) == 2
    assert not list(tmp_path.glob("h.jsonl*"))
    # a retention policy, once
    assert main(["compact", "--retain-txs", "3", "--data", str(src)]) == 0
    with Store.open(src) as store:
        assert store.horizon == store.latest_tx - 2
    assert main(["compact", "--data", str(src)]) == 0  # nothing pending: a no-op
    assert main(["compact", "--retain-for", "30d", "--data", str(src)]) == 0
    assert main(["compact", "--retain-for", "soon", "--data", str(src)]) == 2
    assert main(["compact", "--before", "3", "--retain-for", "1d", "--data", str(src)]) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal_and_not_with_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    make_store(src, 5)
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["export", "--history", "--data", str(src), "--out", str(tmp_path / "a.jsonl")]) == 0
    assert "tx/s" in term.getvalue() and "export history" in term.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["export", "--history", "--quiet", "--data", str(src), "--out", str(tmp_path / "b.jsonl")]) == 0
    assert main(["backup", str(tmp_path / "bk"), "--quiet", "--data", str(src)]) == 0
    assert quiet.getvalue() == ""
    piped = io.StringIO()  # not a terminal: no bar either
    monkeypatch.setattr(sys, "stderr", piped)
    assert main(["import", str(tmp_path / "a.jsonl"), "--data", str(tmp_path / "dst")]) == 0
    assert piped.getvalue() == ""


def test_serve_checks_the_retention_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data", str(tmp_path / "d"), "--retain-for", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
    assert main(["serve", "--data", str(tmp_path / "d"), "--retain-txs", "0"]) == 2
    assert not (tmp_path / "d").exists()  # refused before touching the data directory
