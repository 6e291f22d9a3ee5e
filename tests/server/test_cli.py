"""The ``strata`` command: loopback guard, keys-file errors, the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import build_parser, is_loopback, main


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data", str(tmp_path / "d"), "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
    # options without a subcommand mean "serve"
    assert main(["--host", "10.1.2.3", "--data", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()  # refused before touching the data directory


def test_serve_refuses_a_negative_expiry_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data", str(tmp_path / "d"), "--expire-every", "-1"]) == 2
    assert "--expire-every" in capsys.readouterr().err


@pytest.mark.parametrize("ttl", ["0", "soon", "0.5s", "4000d"])
def test_serve_refuses_a_bad_idempotency_ttl(tmp_path: Path, capsys: pytest.CaptureFixture[str], ttl: str) -> None:
    assert main(["serve", "--data", str(tmp_path / "d"), "--idempotency-ttl", ttl]) == 2
    assert "--idempotency-ttl" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_idempotency_ttl_reaches_the_store(tmp_path: Path) -> None:
    from server import create_app
    from server.lifecycle import idempotency_ttl

    assert idempotency_ttl("7d") == 7 * 86400 and idempotency_ttl("3600") == 3600
    app = create_app(tmp_path / "d", sync=False, store_options={"idempotency_ttl": idempotency_ttl("2h")})
    try:
        assert app.store.idempotency_ttl_us == 2 * 3600 * 1_000_000
    finally:
        app.close()


def test_serve_reports_a_bad_keys_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": [{"key": "short", "scope": "read"}]}')
    assert main(["serve", "--data", str(tmp_path / "d"), "--keys", str(keys)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_serve_defaults() -> None:
    from server.serve_config import resolve

    args = build_parser().parse_args(["serve"])
    assert (args.insecure, args.keys) == (False, None)
    config = resolve(args, {})  # no flag and no STRATA_* variable: the defaults
    assert (config.data, config.host, config.port) == ("./data", "127.0.0.1", 8080)


def test_demo_prints_records_at_an_old_tx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--data", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "read at tx 1:" in out and "city:2: {'name': 'Oldtown'} (tx 1)" in out
    assert "city:1: (cleared) (tx 2)" in out
    last = out.split("read at tx 3:")[1]
    assert "city:2" not in last and "logo: b'\\x89PNG' (tx 1)" in last
