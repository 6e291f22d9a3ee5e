"""The client checks Merkle proofs itself: against a live server, and against a hostile one.

The honest half runs against a live 2-worker ``strata serve``. The hostile half needs a server that
lies, so it is a tiny WSGI wrapper (served by wsgiref) around real in-process apps over real stores:
it answers valid proofs of another tx or size (relabelled or not), heads of a rewritten or truncated
log, and malformed fields. The client must raise ``PROOF_FAILED`` every time and keep trusting the
head it had.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from engine import Store, errors, export_history, import_history, merkle, txtree
from engine.txtree import Head
from server import create_app
from server.app import App
from server.client import RemoteStore, connect
from tests.server.conftest import LiveServer


@pytest.fixture
def remote(live_server: LiveServer) -> Iterator[RemoteStore]:
    with connect(f"http://127.0.0.1:{live_server.port}") as store:
        yield store


def test_a_verifier_moves_forward_only_through_verified_proofs(remote: RemoteStore, tmp_path: Path) -> None:
    ns = remote.namespace("proofs-live")
    for i in range(3):
        ns.put({"k": i})
    state = tmp_path / "trusted.json"
    verifier = remote.verifier(state)
    first = verifier.refresh()  # trusted on first use
    assert json.loads(state.read_text()) == {"size": first.size, "root": first.root, "hash": first.hash}
    txs = [ns.put({"k": i}) for i in range(3, 8)]
    again = remote.verifier(state)  # a later run reads the state file
    assert again.head == first and again.head.root == first.root  # type: ignore[union-attr]
    proof = again.prove(txs[-1])  # newer than the trusted head: refreshes through a consistency proof
    assert again.head is not None and again.head.size >= txs[-1] and proof.tx == txs[-1]
    assert json.loads(state.read_text())["size"] == again.head.size
    assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), txs[-1] - 1, again.head.size,
                                   [bytes.fromhex(p) for p in proof.path], bytes.fromhex(again.head.root))  # type: ignore[arg-type]
    assert remote.verify_consistency(first).size >= again.head.size
    with pytest.raises(errors.InvalidParameters, match=r"^tx must be an integer from 1 to the head's size"):
        remote.verify_inclusion(first.size + 1, first)


# -- a hostile server ---------------------------------------------------------------------------

Rewrite = Callable[[str, dict[str, str]], tuple[dict[str, str], Callable[[dict[str, Any]], dict[str, Any]] | None]]


class Hostile:
    """Serves ``app`` (switchable), rewriting the proof requests' queries and answers with ``rewrite``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.rewrite: Rewrite | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        edit = None
        if self.rewrite is not None and environ["PATH_INFO"].startswith(("/v4/proof/", "/v4/head")):
            query, edit = self.rewrite(environ["PATH_INFO"], dict(parse_qsl(environ.get("QUERY_STRING", ""))))
            environ["QUERY_STRING"] = urlencode(query)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None
        body = b"".join(self.app(environ, capture))
        if edit is not None and captured["status"].startswith("200"):
            body = json.dumps(edit(json.loads(body))).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _history(path: Path, n: int) -> None:
    with Store.open(path, sync=False) as store:
        ns = store.namespace("ledger")
        for i in range(n):
            ns.put({f"acct:{i % 3}": {"balance": i}}, note={"i": i})


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hostile, RemoteStore, dict[str, App]]]:
    """An honest log of 12 txs, a rewritten one (tx 4's note changed, chain and tree recomputed by a
    replay: internally consistent), and one truncated to 6 txs. Nothing writes to them."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    _history(tmp_path / "honest", 12)
    with Store.open(tmp_path / "honest", sync=False) as source:
        rows = list(export_history(source))
    rows[4]["note"] = {"i": "rewritten"}  # rows[0] is the header; rows[4] is tx 4
    with Store.open(tmp_path / "forged", sync=False) as forged:
        import_history(forged, rows)
    _history(tmp_path / "short", 6)
    apps = {name: create_app(tmp_path / name, sync=False) for name in ("honest", "forged", "short")}
    server = Hostile(apps["honest"])
    httpd: WSGIServer = make_server("127.0.0.1", 0, server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        with connect(f"http://127.0.0.1:{httpd.server_port}", retries=0) as client:
            yield server, client, apps
    finally:
        httpd.shutdown()
        httpd.server_close()
        for app in apps.values():
            app.close()


@pytest.fixture
def hostile(hostile_server: tuple[Hostile, RemoteStore, dict[str, App]]) -> tuple[Hostile, RemoteStore, dict[str, App]]:
    """The hostile server, honest again at the start of each test."""
    server, _, apps = hostile_server
    server.app, server.rewrite = apps["honest"], None
    return hostile_server


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda answer: {**answer, field: value}


def _shift(param: str, by: int, relabel: bool) -> Rewrite:
    """Ask the real app for ``param + by``; with ``relabel``, put the asked value back into the answer."""
    def rewrite(path: str, query: dict[str, str]) -> tuple[dict[str, str], Any]:
        if param not in query:
            return query, None
        asked = int(query[param])
        field = {"tx": "tx", "size": "size", "from": "from", "to": "to"}[param]
        return {**query, param: str(asked + by)}, (_set(field, asked) if relabel else None)
    return rewrite


@pytest.mark.parametrize("relabel", [False, True], ids=["as-is", "relabelled"])
@pytest.mark.parametrize(("param", "by"), [("tx", 1), ("tx", -1), ("size", -1), ("size", -5)])
def test_a_valid_inclusion_proof_of_another_tx_or_size_is_refused(
        hostile: tuple[Hostile, RemoteStore, dict[str, App]], param: str, by: int, relabel: bool) -> None:
    server, client, _ = hostile
    head = client.head()
    assert client.verify_inclusion(5, head).tx == 5  # honest: verifies
    server.rewrite = _shift(param, by, relabel)
    with pytest.raises(errors.ProofFailed) as failed:
        client.verify_inclusion(5, head)
    assert failed.value.code == "PROOF_FAILED"
    expected = "does not verify against the trusted root of size 12" if relabel else f"asked for a proof with {param}"
    assert expected in failed.value.message


@pytest.mark.parametrize("relabel", [False, True], ids=["as-is", "relabelled"])
@pytest.mark.parametrize(("param", "by"), [("from", 1), ("from", -1), ("to", -1)])
def test_a_valid_consistency_proof_of_other_sizes_is_refused(
        hostile: tuple[Hostile, RemoteStore, dict[str, App]], param: str, by: int, relabel: bool) -> None:
    server, client, apps = hostile
    seven, now = _head_at(apps["honest"], 7), client.head()
    assert client.verify_consistency(seven, now) == now  # honest: verifies
    server.rewrite = _shift(param, by, relabel)
    with pytest.raises(errors.ProofFailed) as failed:
        client.verify_consistency(seven, now)
    expected = "the consistency proof from size 7 to 12 does not verify" if relabel else f"with {param} "
    assert expected in failed.value.message


def _head_at(app: App, size: int) -> Head:
    """The head the honest store had at ``size`` (what a client saved then)."""
    store = app.store
    root = store._backend.read(lambda txn: txtree.root(txn, store._backend.dbs, size))
    return Head(size, store.tx_info(size).hash, root.hex())  # type: ignore[union-attr]


def test_a_rewritten_log_cannot_move_the_trusted_head(hostile: tuple[Hostile, RemoteStore, dict[str, App]],
                                                      tmp_path: Path) -> None:
    server, client, apps = hostile
    state = tmp_path / "trusted.json"
    verifier = client.verifier(state, trust=_head_at(apps["honest"], 9))
    assert verifier.prove(3).size == 9
    saved = state.exists() and state.read_text()
    server.app = apps["forged"]  # same size, same first three txs, tx 4 rewritten, hashes recomputed
    forged_head = client.head()
    assert forged_head.size == 12 and forged_head.root != apps["honest"].store.head().root
    with pytest.raises(errors.ProofFailed, match=r"^the consistency proof from size 9 to 12 does not verify"):
        verifier.refresh()
    assert verifier.head == _head_at(apps["honest"], 9) and (state.exists() and state.read_text()) == saved
    server.app = apps["short"]  # a truncated log (6 txs)
    with pytest.raises(errors.ProofFailed, match=r"^the server's log has 6 txs, fewer than the 9 of the trusted"):
        verifier.refresh()
    server.app = apps["honest"]
    assert verifier.refresh().size == 12 and json.loads(state.read_text())["size"] == 12


@pytest.mark.parametrize(("edit", "message"), [
    (_set("root", None), "has no Merkle root"),
    (_set("size", 11), "asked for a proof with size 12, the server answered one with size 11"),
    (_set("root", "AB" * 32), "head root is not 64 lowercase hex digits"),
    (_set("tx", "12"), "has no valid tx"),
])
def test_a_malformed_head_is_refused(hostile: tuple[Hostile, RemoteStore, dict[str, App]],
                                     edit: Callable[[dict[str, Any]], dict[str, Any]], message: str) -> None:
    server, client, _ = hostile
    server.rewrite = lambda path, query: (query, edit if path == "/v4/head" else None)
    with pytest.raises(errors.ProofFailed, match=message):
        client.head()


@pytest.mark.parametrize(("edit", "message"), [
    (_set("path", "nope"), "has no path list"),
    (lambda a: {**a, "path": [*a["path"][:-1], a["path"][-1][:-2]]}, "path element is not 64 lowercase hex"),
    (lambda a: {**a, "path": a["path"][:-1]}, "does not verify"),
    (lambda a: {**a, "path": [*a["path"], a["path"][0]]}, "does not verify"),
    (_set("leaf_hash", "00" * 32), "does not verify"),
    (_set("tx", True), "asked for a proof with tx 5"),
])
def test_a_tampered_inclusion_answer_is_refused(hostile: tuple[Hostile, RemoteStore, dict[str, App]],
                                                edit: Callable[[dict[str, Any]], dict[str, Any]],
                                                message: str) -> None:
    server, client, _ = hostile
    head = client.head()
    server.rewrite = lambda path, query: (query, edit if path == "/v4/proof/inclusion" else None)
    with pytest.raises(errors.ProofFailed, match=message):
        client.verify_inclusion(5, head)


def test_an_expected_leaf_hash_is_checked(hostile: tuple[Hostile, RemoteStore, dict[str, App]]) -> None:
    _, client, apps = hostile
    head = client.head()
    leaf = bytes.fromhex(apps["honest"].store.inclusion_proof(5).leaf_hash)
    assert client.verify_inclusion(5, head, leaf).leaf_hash == leaf.hex()
    with pytest.raises(errors.ProofFailed, match=r"^tx 5's leaf hash is "):
        client.verify_inclusion(5, head, bytes(32))
