"""``strata get/put/rm/read/scan/ns``: the same commands print the same lines on a store's files
(``--data``) and through a live server (``--url``, or ``STRATA_URL``); tables on request, JSON Lines
when piped; errors as ``CODE: message`` with a non-zero exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from server.cli import main
from server.client import connect
from tests.server.conftest import LiveServer


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def session(capfd: pytest.CaptureFixture[str], target: list[str], ns: str) -> list[Any]:
    """A session of data commands; what each printed (JSON Lines, parsed) and its exit status."""
    steps = [
        ["put", "user:1", '{"name": "Ann", "n": 18446744073709551615}', "--ns", ns],
        ["put", "user:2", '"text"', "--ns", ns],
        ["put", "logo", "PNG", "--binary", "--ns", ns],
        ["get", "user:1", "--ns", ns],
        ["rm", "user:2", "--ns", ns],
        ["read", "user:1", "user:2", "logo", "--tx", "{tx2}", "--ns", ns],
        ["scan", "--prefix", "user:", "--ns", ns],
        ["scan", "--ns", ns, "--limit", "1"],
        ["get", "user:2", "--ns", ns],
        ["put", "", "1", "--ns", ns],
        ["put", "k", "not json", "--ns", ns],
        ["read", "a", "--tx", "999999", "--ns", ns],
    ]
    out: list[Any] = []
    txs: list[int] = []
    for step in steps:
        argv = [str(txs[1]) if a == "{tx2}" else a for a in step]
        code, printed, err = run(capfd, *argv, *target)
        lines = [orjson.loads(line) for line in printed.splitlines()]
        txs += [line["tx"] for line in lines if set(line) == {"tx"}]
        out.append((code, lines, err.split(":")[1].strip() if err else None))
    base = txs[0] - 1
    return [(code, [{**line, "tx": line["tx"] - base} for line in lines], error) for code, lines, error in out]


def test_the_same_commands_print_the_same_lines_embedded_and_remote(
        capfd: pytest.CaptureFixture[str], live_server: LiveServer, tmp_path: Path) -> None:
    embedded = session(capfd, ["--data", str(tmp_path / "data")], "users")
    remote = session(capfd, ["--url", f"http://127.0.0.1:{live_server.port}"], "users-remote")
    assert embedded == remote == [
        (0, [{"tx": 1}], None),
        (0, [{"tx": 2}], None),
        (0, [{"tx": 3}], None),
        (0, [{"key": "user:1", "value": {"name": "Ann", "n": 18446744073709551615}, "tx": 1, "binary": False}], None),
        (0, [{"tx": 4}], None),
        (0, [{"key": "user:1", "value": {"name": "Ann", "n": 18446744073709551615}, "tx": 1, "binary": False},
             {"key": "user:2", "value": "text", "tx": 2, "binary": False}], None),
        (0, [{"key": "user:1", "value": {"name": "Ann", "n": 18446744073709551615}, "tx": 1, "binary": False}], None),
        (0, [{"key": "logo", "value": "UE5H", "tx": 3, "binary": True}], None),
        (1, [], "KEY_NOT_FOUND"),
        (2, [], "INVALID_KEY"),
        (2, [], "INVALID_VALUE"),
        (2, [], "FUTURE_TX"),
    ]


def test_tables_namespaces_and_the_environment(capfd: pytest.CaptureFixture[str], live_server: LiveServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_URL", f"http://127.0.0.1:{live_server.port}")
    assert run(capfd, "ns", "create", "tables") == (0, '{"created":"tables"}\n', "")
    tx = connect(f"http://127.0.0.1:{live_server.port}").namespace("tables").put({"a": [1, 2], "b": b"\x00" * 5})
    code, out, _ = run(capfd, "scan", "--ns", "tables", "-o", "table")
    w = max(2, len(str(tx)))
    assert (code, out) == (0, f"KEY  {'TX':{w}}  VALUE\n"
                              f"a    {tx:<{w}}  [1,2]\n"
                              f"b    {tx:<{w}}  (binary, 5 bytes)\n")
    code, out, _ = run(capfd, "ns", "-o", "table")
    assert code == 0 and out.splitlines()[0].split() == ["NAMESPACE", "KEYS", "TX", "UPDATED"]
    rows = [line.split()[:3] for line in out.splitlines()[1:] if line.startswith("tables")]
    assert rows == [["tables", "2", str(tx)]]
    assert run(capfd, "ns", "drop", "tables")[:2] == (0, f'{{"tx":{tx + 1}}}\n')
    code, _, err = run(capfd, "ns", "drop", "tables")
    assert (code, err) == (2, "strata ns: NAMESPACE_NOT_FOUND: namespace 'tables' does not exist\n")
    code, _, err = run(capfd, "get", "a", "--ns", "x", "--data", "/nonexistent/strata")
    assert (code, err) == (2, "strata get: INVALID_PARAMETERS: no store at /nonexistent/strata (give --data DIR, "
                              "or --url URL)\n")
