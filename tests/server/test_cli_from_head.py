"""``strata verify --from-head FILE``: the log checked against a kept head with one consistency proof."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import Store, export_history, import_history
from tests.server.test_cli_audit import run


def _store(path: Path, n: int) -> None:
    with Store.open(path, sync=False) as store:
        for i in range(n):
            store.namespace("s").put({f"k{i % 3}": i}, note={"i": i})


def _keep(path: Path, data: Path) -> Path:
    """What an auditor keeps: GET /v4/head's answer (as the engine gives it)."""
    with Store.open(data, sync=False) as store:
        path.write_text(json.dumps(store.head().to_dict()))
    return path


def test_the_log_extends_a_kept_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    _store(data, 5)
    kept = _keep(tmp_path / "head5.json", data)
    root5 = json.loads(kept.read_text())["root"]
    _store(data, 7)  # 12 txs now
    code, out, err = run(capsys, "verify", "--data", str(data), "--from-head", str(kept))
    with Store.open(data, sync=False) as store:
        root12 = store.head().root
    assert (code, err) == (0, "")
    assert out == f"OK: the log of 12 txs extends the kept head of 5 txs (root {root5[:16]}...), 5 hashes; " \
                  f"head root {root12}\n"


def test_a_rewritten_or_truncated_log_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path / "data", 12)
    kept = _keep(tmp_path / "head12.json", tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as source:
        rows = list(export_history(source))
    rows[3]["note"] = {"i": "rewritten"}  # tx 3, replayed into a store whose chain and tree are all consistent
    with Store.open(tmp_path / "forged", sync=False) as forged:
        import_history(forged, rows)
        assert forged.verify().ok
    code, out, _ = run(capsys, "verify", "--data", str(tmp_path / "forged"), "--from-head", str(kept))
    assert code == 1 and out.startswith("FAILED: the log of 12 txs does not extend the kept head of 12 txs (root ")
    _store(tmp_path / "short", 4)
    code, out, _ = run(capsys, "verify", "--data", str(tmp_path / "short"), "--from-head", str(kept))
    assert (code, out) == (1, "FAILED: the log has 4 txs, fewer than the 12 of the kept head: it was truncated or "
                              "replaced\n")


@pytest.mark.parametrize("content", ['{"size": 0, "root": "' + "ab" * 32 + '"}', '{"size": 3}', "not json",
                                     '{"size": 3, "root": "' + "AB" * 32 + '"}'])
def test_a_malformed_head_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                content: str) -> None:
    _store(tmp_path / "data", 3)
    (tmp_path / "head.json").write_text(content)
    code, out, err = run(capsys, "verify", "--data", str(tmp_path / "data"), "--from-head", str(tmp_path / "head.json"))
    assert (code, out) == (2, "")
    assert err.startswith(f"strata verify: --from-head {tmp_path / 'head.json'} must be a JSON file with a size")
    code, _, err = run(capsys, "verify", "--data", str(tmp_path / "data"), "--from-head", "x",
                       "--receipt", "1:" + "a" * 64)
    assert (code, err) == (2, "strata verify: give --receipt or --from-head, not both\n")
