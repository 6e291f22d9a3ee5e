"""``strata export``: a namespace that does not exist, ``--since`` after a compaction, and
importing such a history (refused into an empty store unless ``--renumber``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine import Store
from server.cli import main


def _store(path: Path) -> None:
    with Store.open(path, sync=False) as store:
        for i in range(10):
            store.namespace("n").put({"k": i})
        store.create_namespace("empty")
        store.compact(5)


def test_export_of_a_namespace_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path / "s")
    out = tmp_path / "x.jsonl"
    for extra in ([], ["--history"]):
        capsys.readouterr()
        assert main(["export", "--ns", "nope", *extra, "--data", str(tmp_path / "s"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "NAMESPACE_NOT_FOUND" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists() and not list(tmp_path.glob("*.partial-*"))


def test_history_export_since_the_horizon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "s", tmp_path / "h.jsonl"
    _store(src)
    assert main(["export", "--history", "--data", str(src), "--out", str(out), "--quiet"]) == 2
    assert "give --since 4" in capsys.readouterr().err
    assert main(["export", "--history", "--since", "4", "--data", str(src), "--out", str(out), "--quiet"]) == 0
    assert "6 tx(s) after tx 4 up to tx 10" in capsys.readouterr().out
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert rows[0]["since"] == 4 and [r["tx"] for r in rows[1:]] == [5, 6, 7, 8, 9, 10]
    assert rows[0]["namespaces"] == ["empty", "n"]
    assert main(["export", "--ns", "n", "--since", "4", "--data", str(src), "--out", str(out)]) == 2
    assert "--since applies to --history" in capsys.readouterr().err

    dst = tmp_path / "dst"
    assert main(["import", str(out), "--data", str(dst), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "starts after tx 4" in err and "--renumber" in err and "Traceback" not in err
    with Store.open(dst) as store:
        assert store.latest_tx == 0
    assert main(["import", str(out), "--data", str(dst), "--renumber", "--quiet"]) == 0
    assert "in 6 tx(s) (txs 1 to 6)" in capsys.readouterr().out
    with Store.open(dst) as store:
        assert store.namespace("n").get("k").value == 9  # type: ignore[union-attr]
        assert [n.name for n in store.namespaces()] == ["empty", "n"]
