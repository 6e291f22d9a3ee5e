"""Arguments of the ``strata`` commands that used to crash, mislead or write where they should not:
``history --limit``, ``tail --since`` past the head, ``demo`` on a kept store, ``--version``, and
``bench`` (its help, and a missing optional dependency found before the run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Store
from server.cli import main
from tests.conftest import fingerprint
from tests.server.conftest import REPO


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Six txs in namespace s."""
    path = tmp_path / "data"
    with Store.open(path, sync=False) as store:
        for i in range(6):
            store.namespace("s").put({"k": i})
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def strata(*argv: str, cwd: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """The ``strata`` command in a real process (``prelude``: Python run before it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = f"import sys\n{prelude}\nfrom server.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_history_limit_below_one_is_a_clear_error(store_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  limit: str) -> None:
    code, out, err = run(capsys, "history", "k", "--ns", "s", "--data", str(store_dir), "--limit", limit)
    assert (code, out) == (2, "")
    assert err == f"strata history: --limit must be at least 1, not {limit}\n"
    code, out, _ = run(capsys, "history", "k", "--ns", "s", "--data", str(store_dir), "--limit", "1")
    assert code == 0 and "1 version(s)" in out and "more: --before 6" in out


def test_tail_since_past_the_head_is_future_tx(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tail", "--data", str(store_dir), "--since", "999", "--no-follow")
    assert (code, out) == (2, "")
    assert err == "strata tail: FUTURE_TX: --since 999 is above the latest tx 6\n"
    code, out, err = run(capsys, "tail", "--data", str(store_dir), "--since", "-1", "--no-follow")
    assert code == 2 and "--since must be a tx" in err
    code, out, _ = run(capsys, "tail", "--data", str(store_dir), "--since", "6", "--no-follow")  # the head: fine
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "tail", "--data", str(store_dir), "--since", "5", "--no-follow")
    assert code == 0 and out.startswith("tx 6 ")


def test_demo_refuses_a_store_that_holds_data(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(store_dir) as store:
        before = fingerprint(store)
    code, out, err = run(capsys, "demo", "--data", str(store_dir))
    assert (code, out) == (2, "")
    assert err.startswith(f"strata demo: {store_dir} is not empty") and "Give a new directory" in err
    with Store.open(store_dir) as store:
        assert fingerprint(store) == before and store.latest_tx == 6
    (store_dir.parent / "file").write_text("x")
    assert run(capsys, "demo", "--data", str(store_dir.parent / "file"))[0] == 2
    fresh = store_dir.parent / "fresh"
    code, out, _ = run(capsys, "demo", "--data", str(fresh))  # a new directory is what it is for
    assert code == 0 and "tx 3: deleted city:2" in out and (fresh / "data.mdb").is_file()
    (store_dir.parent / "empty").mkdir()
    assert run(capsys, "demo", "--data", str(store_dir.parent / "empty"))[0] == 0


def test_version(tmp_path: Path) -> None:
    from importlib import metadata

    done = strata("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"strata {metadata.version('strata-kv')}\n"


def test_bench_help_names_the_command_and_has_no_markup(tmp_path: Path) -> None:
    done = strata("bench", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: strata bench ") and "--quick" in done.stdout
    assert "``" not in done.stdout and "python -m benchmarks" not in done.stdout


def test_bench_without_its_extra_stops_before_running(tmp_path: Path) -> None:
    # sys.modules[name] = None is how Python itself spells "this module cannot be imported".
    done = strata("bench", "--quick", "--no-docs", "--out", str(tmp_path / "out"), cwd=tmp_path,
                  prelude="sys.modules['matplotlib'] = None\nsys.modules['diskcache'] = None")
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("strata bench: the benchmarks need matplotlib, diskcache, from the bench extra: "
                           "pip install -e '.[bench]'\n")
    assert done.stdout == "" and not (tmp_path / "out").exists()
