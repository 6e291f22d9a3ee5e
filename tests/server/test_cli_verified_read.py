"""``strata read --verified``: the shell proves every record it prints against the head kept in
``--state`` (signed, with ``--public-key``), through a real server behind a WSGI wrapper that can lie
(tests/server/test_proved_reads.py's :class:`Liar`): the same lines as ``strata read`` when the
server is honest, ``PROOF_FAILED`` and exit 1 (nothing printed, the kept head unchanged) when it lies
or rewrites its log, exit 2 for bad use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Store, export_history, import_history, signed_head
from server import create_app
from server.app import App
from server.cli import main
from tests.server.test_proved_reads import Liar, _data, _fill, _serve

KEYS = ["a", "b", "bin", "c", "f", "never"]
# What `strata read` prints for KEYS at the latest tx (6) and at tx 2, as JSON Lines.
LATEST = [{"key": "a", "tx": 3},
          {"key": "bin", "value": "AAE=", "tx": 1, "binary": True},
          {"key": "c", "value": "three", "tx": 2, "binary": False},
          {"key": "f", "value": 1.0, "tx": 6, "binary": False}]
AT_2 = [{"key": "a", "value": 1, "tx": 1, "binary": False},
        {"key": "b", "value": {"x": [1, 2]}, "tx": 1, "binary": False},
        {"key": "bin", "value": "AAE=", "tx": 1, "binary": True},
        {"key": "c", "value": "three", "tx": 2, "binary": False}]
World = tuple[Liar, str, dict[str, App], Path]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """An honest store of 6 txs whose server signs its heads, and a forged copy (tx 1's note rewritten,
    every hash recomputed), unsigned; ``tmp/signing.key.pub`` is the honest server's public key and
    ``tmp/other.pub`` another key. Nothing writes to them."""
    tmp = tmp_path_factory.mktemp("cli-verified")
    _fill(tmp / "honest")
    with Store.open(tmp / "honest", sync=False) as source:
        rows = list(export_history(source))
    rows[1]["note"] = {"by": "mallory"}
    with Store.open(tmp / "forged", sync=False) as forged:
        import_history(forged, rows)
    private, public = signed_head.generate()
    (tmp / "signing.key").write_bytes(private)
    (tmp / "signing.key.pub").write_text(public.hex() + "\n")
    (tmp / "other.pub").write_text(signed_head.generate()[1].hex() + "\n")
    apps = {"honest": create_app(tmp / "honest", sync=False, signing_key=tmp / "signing.key"),
            "forged": create_app(tmp / "forged", sync=False)}
    server = Liar(apps["honest"])
    httpd, _ = _serve(server)
    try:
        yield server, f"http://127.0.0.1:{httpd.server_port}", apps, tmp
    finally:
        httpd.shutdown()
        httpd.server_close()
        for app in apps.values():
            app.close()


@pytest.fixture
def liar(world: World) -> Liar:
    server, _, apps, _ = world
    server.app, server.edit = apps["honest"], None
    return server


def strata(capfd: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str, str]:
    code = main(["read", *argv, "--ns", "ledger", "--url", world[1]])
    out, err = capfd.readouterr()
    return code, out, err


def _head(state: Path) -> tuple[int, str, str]:
    """The head a state file keeps (its signature, made when the server answered, may be a newer one
    of the same head)."""
    kept = json.loads(state.read_text())
    return kept["size"], kept["root"], kept["hash"]


def lines(out: str) -> list[object]:
    return [json.loads(line) for line in out.splitlines()]


def test_an_honest_server_prints_what_strata_read_prints(capfd: pytest.CaptureFixture[str], world: World,
                                                         liar: Liar, tmp_path: Path) -> None:
    state, pub = tmp_path / "trusted.json", world[3] / "signing.key.pub"
    verified = ("--verified", "--state", str(state), "--public-key", str(pub))
    code, out, err = strata(capfd, world, *KEYS, *verified, "-o", "json")
    assert (code, lines(out), err) == (0, LATEST, "")
    assert strata(capfd, world, *KEYS, "-o", "json") == (0, out, "")
    kept = json.loads(state.read_text())  # trusted on first use, signature and all
    head = world[2]["honest"].store.head()
    assert (kept["size"], kept["root"], kept["hash"]) == (6, head.root, head.hash)
    assert kept["signed"]["key_id"] == signed_head.key_id(bytes.fromhex(pub.read_text()))
    code, out, err = strata(capfd, world, *KEYS, "--tx", "2", *verified, "-o", "json")
    assert (code, lines(out), err) == (0, AT_2, "")
    code, table, err = strata(capfd, world, "c", "f", "never", *verified, "-o", "table")
    assert (code, table, err) == (0, 'KEY  TX  VALUE\nc    2   "three"\nf    6   1.0\n', "")
    assert strata(capfd, world, "c", "f", "never", "-o", "table") == (0, table, "")
    assert strata(capfd, world, "never", *verified) == (0, "", "")
    assert _head(state) == (6, head.root, head.hash)


def test_a_lying_server_is_refused_and_the_kept_head_stays(capfd: pytest.CaptureFixture[str], world: World,
                                                           liar: Liar, tmp_path: Path) -> None:
    state = tmp_path / "trusted.json"
    verified = ("--verified", "--state", str(state), "--public-key", str(world[3] / "signing.key.pub"))
    assert strata(capfd, world, "c", *verified)[0] == 0
    kept = _head(state)
    liar.edit = _data("c", value="four")
    assert strata(capfd, world, "c", "-o", "json") == (0, '{"key":"c","value":"four","tx":2,"binary":false}\n', "")
    assert strata(capfd, world, "a", "c", *verified, "-o", "json") == (
        1, "", "strata read: PROOF_FAILED: the answer's record of key 'c' is not the one tx 2 wrote, as its proven "
               "log entry holds it: another value\n")
    assert _head(state) == kept


def test_a_rewritten_log_is_refused_against_the_kept_head(capfd: pytest.CaptureFixture[str], world: World,
                                                          liar: Liar, tmp_path: Path) -> None:
    state = tmp_path / "trusted.json"
    assert strata(capfd, world, "c", "--verified", "--state", str(state))[0] == 0
    kept = _head(state)
    liar.app = world[2]["forged"]  # same size, tx 1 rewritten, every hash recomputed, and unsigned
    code, out, err = strata(capfd, world, "c", "--verified", "--state", str(state))
    assert (code, out) == (1, "")
    assert err.startswith("strata read: PROOF_FAILED: the consistency proof from size 6 to 6 does not verify: the "
                          "log the server shows now does not extend the one trusted"), err
    code, out, err = strata(capfd, world, "c", "--verified", "--state", str(state), "--public-key",
                            str(world[3] / "signing.key.pub"))
    assert (code, out, err) == (1, "", "strata read: PROOF_FAILED: the server's head of size 6 is not signed, and "
                                       "signed heads are required (a public key was given)\n")
    assert _head(state) == kept


def test_a_head_signed_by_another_key_is_refused(capfd: pytest.CaptureFixture[str], world: World, liar: Liar,
                                                 tmp_path: Path) -> None:
    state, other = tmp_path / "trusted.json", world[3] / "other.pub"
    other_id = signed_head.key_id(bytes.fromhex(other.read_text()))
    signer = signed_head.key_id(bytes.fromhex((world[3] / "signing.key.pub").read_text()))
    refused = f"the head is signed by key {signer}, which is not a trusted key ({other_id})"
    code, out, err = strata(capfd, world, "c", "--verified", "--state", str(state), "--public-key", str(other))
    assert (code, out, err, state.exists()) == (1, "", f"strata read: PROOF_FAILED: {refused}\n", False)
    assert strata(capfd, world, "c", "--verified", "--state", str(state), "--public-key",
                  str(world[3] / "signing.key.pub"))[0] == 0
    code, out, err = strata(capfd, world, "c", "--verified", "--state", str(state), "--public-key", str(other))
    assert (code, out, err) == (1, "", f"strata read: PROOF_FAILED: the head kept in {state}: {refused}\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["--state", "s.json"], "INVALID_PARAMETERS: --state and --public-key go with --verified"),
    (["--public-key", "k"], "INVALID_PARAMETERS: --state and --public-key go with --verified"),
    (["--verified"], "INVALID_PARAMETERS: --verified needs --state FILE: the head this reader trusts, kept between "
                     "runs"),
    (["--verified", "--state", "not-json.json"], "--state not-json.json: it is not JSON; a trusted-head file is JSON "
                                                 "with an integer size and a root and hash (as strata read --verified "
                                                 "and the client's verifier write it, or GET /v4/head's answer)"),
    (["--verified", "--state", "list.json"], "--state list.json: it is not a trusted head; a trusted-head file is "
                                             "JSON with an integer size and a root and hash (as strata read "
                                             "--verified and the client's verifier write it, or GET /v4/head's "
                                             "answer)"),
    (["--verified", "--state", "s.json", "--public-key", "nope"],
     "--public-key: 'nope' is neither a public key (64 hex digits) nor a readable key file: No such file or "
     "directory"),
    (["--verified", "--state", "no-such-dir/s.json"],
     "--state no-such-dir/s.json: cannot keep the trusted head: No such file or directory"),
])
def test_bad_use_exits_2(capfd: pytest.CaptureFixture[str], world: World, liar: Liar, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-json.json").write_text("size 6")
    (tmp_path / "list.json").write_text("[6]")
    assert strata(capfd, world, "c", *argv) == (2, "", f"strata read: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.json", "not-json.json"]


def test_a_verified_read_needs_a_server(capfd: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATA_URL", raising=False)
    state = str(tmp_path / "s.json")
    assert main(["read", "c", "--ns", "ledger", "--verified", "--state", state]) == 2
    assert capfd.readouterr() == ("", "strata read: INVALID_PARAMETERS: --verified reads through a server: give "
                                      "--url URL (or set STRATA_URL)\n")
    assert main(["read", "c", "--ns", "ledger", "--data", str(tmp_path), "--verified", "--state", state]) == 2
    assert capfd.readouterr() == ("", "strata read: INVALID_PARAMETERS: --verified reads through a server (--url): "
                                      "a store's own files prove nothing to the one reading them\n")
