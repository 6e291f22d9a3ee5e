"""Signed heads over HTTP: ``strata keygen``, ``strata serve --signing-key``, the client checking them,
the verifier keeping them, and ``strata verify --from-head --public-key``."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

import pytest

from engine import Store, errors, signed_head
from engine.signed_head import HeadSigner
from server import create_app
from server.cli import main
from server.client import RemoteStore, connect
from tests.server.conftest import Client, LiveServer, start_server, stop_server
from tests.server.test_client_proofs import Hostile, _Quiet


def _keygen(directory: Path, name: str = "signing.key") -> tuple[Path, bytes]:
    assert main(["keygen", "--out", str(directory / name)]) == 0
    return directory / name, bytes.fromhex((directory / f"{name}.pub").read_text().strip())


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path, bytes]]:
    tmp = tmp_path_factory.mktemp("signed")
    key, public = _keygen(tmp)
    server = start_server(tmp, "--signing-key", str(key))
    yield server, key, public
    stop_server(server.proc)


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, public = _keygen(tmp_path)
    out = capsys.readouterr().out
    key_id = signed_head.key_id(public)
    assert out == (f"key_id {key_id}\npublic_key {public.hex()}\n"
                   f"private key {key} (mode 0600; give it to strata serve --signing-key)\n"
                   f"public key {key}.pub (give it to auditors: strata verify --public-key, connect(public_key=...))\n")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert HeadSigner.load(key).public == public
    before = key.read_bytes()
    assert main(["keygen", "--out", str(key)]) == 2  # never over an existing key
    assert capsys.readouterr().err == f"strata keygen: {key} exists; a key is never overwritten (give another --out)\n"
    assert key.read_bytes() == before
    assert main(["keygen"]) == 0  # no --out: the PEM on stdout, the public key on stderr
    printed = capsys.readouterr()
    assert printed.out.startswith("-----BEGIN PRIVATE KEY-----\n") and printed.err.startswith("key_id ")


def test_serve_refuses_a_bad_key_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.key").write_text("not a key\n")
    argv = ["serve", "--data", str(tmp_path / "data"), "--port", "1", "--signing-key"]
    assert main([*argv, str(tmp_path / "bad.key")]) == 2
    assert capsys.readouterr().err == (f"strata serve: cannot use the signing key {tmp_path / 'bad.key'}: it is not a "
                                       "PEM private key (make one with strata keygen)\n")
    assert main([*argv, str(tmp_path / "none.key")]) == 2
    assert capsys.readouterr().err == (f"strata serve: cannot read the signing key {tmp_path / 'none.key'}: No such "
                                       "file or directory\n")
    assert not (tmp_path / "data").exists()


def test_the_head_carries_a_signature_only_with_a_key(tmp_path: Path) -> None:
    key, public = _keygen(tmp_path)
    plain, signing = create_app(tmp_path / "a", sync=False), create_app(tmp_path / "b", sync=False, signing_key=key)
    try:
        for app in (plain, signing):
            app.store.namespace("ns").put({"k": 1})
        assert "signed" not in Client(plain).get("/v4/head").json()
        head = Client(signing).get("/v4/head").json()
        sig = signed_head.SignedHead.from_dict(head["signed"])
        assert (sig.size, sig.root, sig.hash, sig.key_id) == (1, head["root"], head["hash"], signed_head.key_id(public))
        assert list(head) == ["tx", "hash", "time", "size", "root", "signed", "duration"]
        assert list(head["signed"]) == ["size", "root", "hash", "time", "time_us", "signature", "key_id"]
        signed_head.verify(sig, signed_head.trusted_keys(public))
    finally:
        plain.close()
        signing.close()


def test_a_client_with_the_public_key_checks_and_keeps_signed_heads(
        signed_server: tuple[LiveServer, Path, bytes], tmp_path: Path) -> None:
    server, key, public = signed_server
    url = f"http://127.0.0.1:{server.port}"
    with connect(url) as plain:
        plain.namespace("signed").put({"a": 1})
        assert plain.head().signed is None  # no key given: nothing checked, nothing kept
    with connect(url, public_key=key.with_name("signing.key.pub")) as store:
        head = store.head()
        assert head.signed is not None and head.signed.size == head.size and head.signed.root == head.root
        assert head.signed.key_id == signed_head.key_id(public)
        state = tmp_path / "trusted.json"
        verifier = store.verifier(state)
        first = verifier.refresh()
        kept = json.loads(state.read_text())
        assert kept["signed"] == first.signed.to_dict()  # type: ignore[union-attr]
        store.namespace("signed").put({"b": 2})
        again = store.verifier(state)  # the kept signed head is checked again on load
        assert again.head is not None and again.head.signed == first.signed
        moved = again.refresh()
        assert moved.size == first.size + 1 and json.loads(state.read_text())["signed"]["size"] == moved.size
        unsigned = tmp_path / "unsigned.json"  # kept before the client had the key: trusted as it was kept
        unsigned.write_text(json.dumps({k: v for k, v in kept.items() if k != "signed"}))
        older = store.verifier(unsigned)
        assert older.head == first and older.head.signed is None  # type: ignore[union-attr]
        assert older.refresh().signed is not None and "signed" in json.loads(unsigned.read_text())
    with connect(url, public_key=signed_head.generate()[1]) as stranger:
        with pytest.raises(errors.ProofFailed, match=r"^the head is signed by key [0-9a-f]{32}, which is not a"):
            stranger.head()
        with pytest.raises(errors.ProofFailed, match=r"which is not a trusted"):
            stranger.verifier(state)  # a state file signed by another key is not trusted either


def test_verify_from_a_kept_signed_head(signed_server: tuple[LiveServer, Path, bytes], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    server, key, _ = signed_server
    with connect(f"http://127.0.0.1:{server.port}") as store:
        store.namespace("signed").put({"b": 2})  # two txs at least, whatever ran before: size - 1 is a head too
        store.namespace("signed").put({"c": 3})
        kept = json.loads(server.request("GET", "/v4/head")[2])
        store.namespace("signed").put({"c": 4})
    path = tmp_path / "kept.json"
    path.write_text(json.dumps(kept))
    pub = str(key.with_name("signing.key.pub"))
    argv = ["verify", "--data", str(server.data), "--from-head", str(path), "--public-key"]
    assert main([*argv, pub]) == 0
    sig = kept["signed"]
    assert f"(root {kept['root'][:16]}..., signed by key {sig['key_id']} at {sig['time']})" in capsys.readouterr().out
    path.write_text(json.dumps({**kept, "signed": {**sig, "time_us": sig["time_us"] + 1,
                                                   "time": signed_head.time_text(sig["time_us"] + 1)}}))
    assert main([*argv, pub]) == 1
    assert capsys.readouterr().out.startswith("FAILED: the kept head's signature: the signature of the head of size")
    path.write_text(json.dumps({**kept, "size": kept["size"] - 1}))  # the signature is for another head
    assert main([*argv, pub]) == 1
    assert capsys.readouterr().out.startswith(f"FAILED: the kept head's signature is for size {kept['size']} root")
    path.write_text(json.dumps({k: v for k, v in kept.items() if k != "signed"}))
    assert main([*argv, pub]) == 2
    assert "holds no signed head" in capsys.readouterr().err
    assert main([*argv, "0" * 63]) == 2
    assert capsys.readouterr().err.startswith("strata verify: --public-key: '" + "0" * 63 + "' is neither a public key")


# -- a server that lies about its signed head ---------------------------------------------------

@pytest.fixture(scope="module")
def lying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hostile, RemoteStore, bytes]]:
    tmp = tmp_path_factory.mktemp("lying")
    with Store.open(tmp / "data", sync=False) as store:
        for i in range(5):
            store.namespace("ns").put({"k": i})
    key, public = _keygen(tmp)
    app = create_app(tmp / "data", sync=False, signing_key=key)
    server = Hostile(app)
    httpd: WSGIServer = make_server("127.0.0.1", 0, server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        with connect(f"http://127.0.0.1:{httpd.server_port}", retries=0, public_key=public) as client:
            yield server, client, public
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()


def _edit_signed(**changes: Any) -> Any:
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        signed = {**answer["signed"], **changes}
        if "time_us" in changes:
            signed["time"] = signed_head.time_text(changes["time_us"])
        return {**answer, "signed": signed}
    return lambda path, query: (query, edit)


@pytest.mark.parametrize(("change", "message"), [
    ({"size": 4}, "the signature of the head of size 4"),
    ({"root": "00" * 32}, "the signature of the head of size 5"),
    ({"hash": "00" * 32}, "the signature of the head of size 5"),
    ({"time_us": 1}, "the signature of the head of size 5"),
    ({"signature": "00" * 64}, "the signature of the head of size 5"),
    ({"key_id": "00" * 16}, "the head is signed by key 00000000000000000000000000000000, which is not a trusted"),
    ({"time": "yesterday"}, "the signed head's time 'yesterday' is not its time_us"),
])
def test_an_altered_signed_head_is_refused(lying: tuple[Hostile, RemoteStore, bytes], change: dict[str, Any],
                                           message: str) -> None:
    server, client, _ = lying
    server.rewrite = None
    assert client.head().signed is not None  # honest: verifies
    server.rewrite = _edit_signed(**change)
    with pytest.raises(errors.ProofFailed) as failed:
        client.head()
    assert failed.value.message.startswith(message)
    server.rewrite = None


def test_a_valid_signature_over_another_head_or_none_is_refused(lying: tuple[Hostile, RemoteStore, bytes]) -> None:
    server, client, _ = lying
    honest = client.head()

    def other_head(path: str, query: dict[str, str]) -> Any:  # the signed member is genuine, the head beside it not
        return query, lambda answer: {**answer, "root": "11" * 32}
    server.rewrite = other_head
    with pytest.raises(errors.ProofFailed, match=rf"^the signed head's root '{honest.root}' is not the head's '1111"):
        client.head()
    server.rewrite = lambda path, query: (query, lambda answer: {k: v for k, v in answer.items() if k != "signed"})
    with pytest.raises(errors.ProofFailed, match=r"^the server's head of size 5 is not signed, and signed heads are "):
        client.head()
    server.rewrite = None
