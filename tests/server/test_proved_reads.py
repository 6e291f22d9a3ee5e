"""Reads with proofs over HTTP (``"proof": true``) and the client checking them (``verified=True``).

The server is a real app over a real store, behind a WSGI wrapper (served by wsgiref) that can lie:
alter a value, swap in another tx's entry, break a path, leave a record out, answer for another
namespace or tx, or hand over a rewritten log. The client must raise ``PROOF_FAILED`` every time.
Raw LMDB tampering of a record after a head was kept makes the verified read fail too.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

import msgpack
import orjson
import pytest

from engine import Store, errors, export_history, import_history, merkle
from engine.encoding import inv_tx, keypart, ns_prefix
from engine.records import Record
from engine.schema import NamespaceEntry
from server import create_app
from server.app import App
from server.client import RemoteStore, connect
from server.handlers import storage
from tests.engine.raw import tamper
from tests.server.conftest import Client
from tests.server.test_client_proofs import _Quiet

LONG = "long:" + "x" * 300
KEYS = ["a", "b", "bin", "c", "f", LONG, "never"]
Edit = Callable[[dict[str, Any]], dict[str, Any]]


class Liar:
    """Serves ``app``; ``edit`` rewrites the JSON answer of every read with proofs."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.edit: Edit | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None
        body = b"".join(self.app(environ, capture))
        if self.edit is not None and environ["PATH_INFO"].endswith("/read") and captured["status"].startswith("200"):
            body = json.dumps(self.edit(json.loads(body))).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _fill(path: Path) -> None:
    with Store.open(path, sync=False) as s:
        ledger = s.namespace("ledger")
        ledger.put({"a": 1, "b": {"x": [1, 2]}, "bin": b"\x00\x01"}, note={"by": "alice"})  # tx 1
        ledger.put({"c": "three"}, metadata={"m": 1})                                      # tx 2
        ledger.clear(["a"])                                                                 # tx 3
        ledger.delete(["b"])                                                                # tx 4
        with s.transaction() as t:                                                          # tx 5
            t.put("ledger", LONG, 5)
            t.put("other", "c", "other's c")
        ledger.put({"f": 1.0})                                                              # tx 6


def _serve(app: Any) -> tuple[WSGIServer, threading.Thread]:
    httpd: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture(scope="module")
def liar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Liar, str, dict[str, App]]]:
    """An honest store of 6 txs and a forged one (tx 1's note rewritten, chain and tree recomputed by a
    replay: internally consistent). Nothing writes to them."""
    tmp = tmp_path_factory.mktemp("liar")
    _fill(tmp / "honest")
    with Store.open(tmp / "honest", sync=False) as source:
        rows = list(export_history(source))
    rows[1]["note"] = {"by": "mallory"}
    with Store.open(tmp / "forged", sync=False) as forged:
        import_history(forged, rows)
    apps = {name: create_app(tmp / name, sync=False) for name in ("honest", "forged")}
    server = Liar(apps["honest"])
    httpd, _ = _serve(server)
    try:
        yield server, f"http://127.0.0.1:{httpd.server_port}", apps
    finally:
        httpd.shutdown()
        httpd.server_close()
        for app in apps.values():
            app.close()


@pytest.fixture
def client(liar: tuple[Liar, str, dict[str, App]]) -> Iterator[tuple[Liar, RemoteStore]]:
    """A fresh client of the liar, honest again; its verifier trusts the honest head of size 6."""
    server, url, apps = liar
    server.app, server.edit = apps["honest"], None
    with connect(url, retries=0) as store:
        store.verifier(trust=apps["honest"].store.head())
        yield server, store


def test_the_proof_answer(liar: tuple[Liar, str, dict[str, App]]) -> None:
    _, _, apps = liar
    answer = Client(apps["honest"]).post("/v4/storage/ledger/read", json={"keys": ["c", "b", "c2"], "proof": True})
    doc = answer.json()
    head = apps["honest"].store.head()
    assert doc["data"] == [{"key": "c", "value": "three", "tx": 2, "binary": False}] and doc["tx"] == 6
    assert doc["proof"]["head"] == {"size": 6, "root": head.root, "hash": head.hash}
    assert doc["proof"]["versions"] == [{"key": "c", "tx": 2}, {"key": "b", "tx": 4}, {"key": "c2", "tx": None}]
    entries = doc["proof"]["entries"]
    assert [e["tx"] for e in entries] == [2, 4]
    for e in entries:
        proof = apps["honest"].store.inclusion_proof(e["tx"])
        assert merkle.leaf_hash(base64.b64decode(e["entry"])).hex() == proof.leaf_hash and e["path"] == proof.path
    bad = Client(apps["honest"]).post("/v4/storage/ledger/read", json={"keys": ["c"], "proof": 1})
    assert bad.status == 400 and bad.json()["errors"] == [
        {"location": "/proof", "message": "proof must be true or false", "value": 1}]


def test_a_proof_answer_sent_in_pieces_is_the_json_of_the_whole(tmp_path: Path) -> None:
    """The answer is built in pieces (each entry base64-encoded a piece at a time, so no call holds
    the GIL for long): joined, they are byte for byte what ``orjson.dumps`` makes of the whole
    object, and the Content-Length counts them all."""
    with Store.open(tmp_path / "data", sync=False) as s:
        big = s.namespace("big")
        big.put({f"k{i:04d}": "v" * 1000 for i in range(1_000)})  # an entry of about 1 MB: several pieces
        big.put({"small": 1, "other": [1, 2]})
    app = create_app(tmp_path / "data", sync=False)
    try:
        answer = Client(app).post("/v4/storage/big/read", json={"keys": ["k0007", "small", "none"], "proof": True})
        assert answer.status == 200
        assert answer.headers["content-length"] == str(len(answer.body))
        doc = json.loads(answer.body)
        proved = app.store.namespace("big").proved_read(["k0007", "small", "none"])
        assert len(proved.entries[0].entry) > storage.B64_PIECE  # the entry is encoded in more than one piece
        head = proved.head
        whole = {"data": doc["data"], "count": 2, "tx": 2, "proof": {
            "head": {"size": head.size, "root": head.root, "hash": head.hash},
            "versions": [{"key": "k0007", "tx": 1}, {"key": "small", "tx": 2}, {"key": "none", "tx": None}],
            "entries": [{"tx": e.tx, "entry": base64.b64encode(e.entry).decode(), "path": e.path}
                        for e in proved.entries]}, "duration": doc["duration"]}
        assert answer.body == orjson.dumps(whole)
    finally:
        app.close()


def test_an_honest_server_passes(client: tuple[Liar, RemoteStore]) -> None:
    _, store = client
    ns = store.namespace("ledger")
    assert ns.read(KEYS, verified=True) == ns.read(KEYS) == ([
        Record("a", None, 3, False, True), Record("bin", b"\x00\x01", 1, True), Record("c", "three", 2),
        Record("f", 1.0, 6), Record(LONG, 5, 5)], 6)
    rich = ns.read(KEYS, verified=True, metadata=True, fields=["updated_at", "expire_time"])
    assert rich == ns.read(KEYS, metadata=True, fields=["updated_at", "expire_time"])
    assert rich.records[2].metadata == {"m": 1}
    assert ns.read(["a", "b"], tx=2, verified=True) == ns.read(["a", "b"], tx=2)
    assert store.namespace("other").read(["c"], verified=True).records == [Record("c", "other's c", 5)]
    with pytest.raises(errors.InvalidParameters, match=r"^a verified read cannot prove created_at"):
        ns.read(["c"], verified=True, fields=["created_at"])


def _data(key: str, **changes: Any) -> Edit:
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        answer["data"] = [{**d, **changes} if d["key"] == key else d for d in answer["data"]]
        return answer
    return edit


def _entries(change: Callable[[list[dict[str, Any]]], None]) -> Edit:
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        change(answer["proof"]["entries"])
        return answer
    return edit


def _flip_path(entries: list[dict[str, Any]]) -> None:
    path = entries[0]["path"]
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]


def _swap_entry(entries: list[dict[str, Any]]) -> None:
    entries[0]["entry"] = entries[1]["entry"]  # another tx's genuine entry, under this tx's path


def _swap_whole(entries: list[dict[str, Any]]) -> None:
    entries[0]["entry"], entries[0]["path"] = entries[1]["entry"], entries[1]["path"]  # valid, for another tx


def _reencode(entries: list[dict[str, Any]]) -> None:
    """Rewrite tx 2's entry with another value for c (the leaf changes; the path stays)."""
    body = msgpack.unpackb(base64.b64decode(entries[1]["entry"]))
    body[3][0][3][0] = msgpack.packb("four")
    entries[1]["entry"] = base64.b64encode(msgpack.packb(body, use_bin_type=True)).decode()


def _omit(key: str) -> Edit:
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        answer["data"] = [d for d in answer["data"] if d["key"] != key]
        return answer
    return edit


def _version(key: str, tx: int | None) -> Edit:
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        answer["proof"]["versions"] = [{"key": v["key"], "tx": tx} if v["key"] == key else v
                                       for v in answer["proof"]["versions"]]
        return answer
    return edit


def _add_record(answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"].insert(1, {"key": "b", "value": {"x": [1, 2]}, "tx": 1, "binary": False})
    return answer


def _add_entry(answer: dict[str, Any]) -> dict[str, Any]:
    answer["proof"]["entries"].append(answer["proof"]["entries"][0])
    return answer


def _drop_entry(tx: int, then: Edit) -> Edit:
    """``then``, and leave out the entry of ``tx`` (a liar that keeps its entries consistent)."""
    def edit(answer: dict[str, Any]) -> dict[str, Any]:
        answer["proof"]["entries"] = [e for e in answer["proof"]["entries"] if e["tx"] != tx]
        return then(answer)
    return edit


NOT_WRITTEN = "the answer's record of key {!r} is not the one tx {} wrote, as its proven log entry holds it: {}"
LIES: dict[str, tuple[Edit, str]] = {
    "altered value": (_data("c", value="four"), NOT_WRITTEN.format("c", 2, "another value")),
    "1.0 answered as 1": (_data("f", value=1), NOT_WRITTEN.format("f", 6, "another value")),
    "text for bytes": (_data("bin", binary=False, value="AAE="), NOT_WRITTEN.format("bin", 1, "another value")),
    "value for a clear": (_data("a", value=0, binary=False), NOT_WRITTEN.format("a", 3, "that tx cleared the key")),
    "record tx": (_data("c", tx=1), NOT_WRITTEN.format("c", 2, "the answer says tx 1")),
    "record of a deleted key": (_add_record, NOT_WRITTEN.format("b", 4, "that tx deleted the key")),
    "entry of another tx": (_entries(_swap_entry), "the entry of tx 1 is not leaf 0 of the trusted tree of size 6"),
    "proof of another tx": (_entries(_swap_whole), "the entry of tx 1 is not leaf 0 of the trusted tree of size 6"),
    "rewritten entry": (_entries(_reencode), "the entry of tx 2 is not leaf 1 of the trusted tree of size 6"),
    "flipped path": (_entries(_flip_path), "the entry of tx 1 is not leaf 0 of the trusted tree of size 6"),
    "omitted record": (_omit("c"), "the answer leaves out key 'c', but tx 2 wrote it and the record has not expired"),
    "version of another tx": (_version("c", 1), "the proof's entries are for txs [1, 2, 3, 4, 6], not the txs its "
                                                "versions name [1, 3, 4, 6]"),
    "version of another tx, consistent": (_drop_entry(2, _version("c", 1)),
                                          "tx 1's proven entry writes no record for key 'c' of 'ledger'"),
    "version past the read": (_version("c", 7), "the proof says key 'c' was last written by tx 7, not a tx from 1"),
    "record without version": (_drop_entry(2, _version("c", None)),
                               "the answer gives a record for key 'c' but no version that proves it"),
    "extra entry": (_add_entry, "the proof's entries are for txs [1, 2, 3, 4, 6, 1], not the txs"),
    "no proof": (lambda a: {k: v for k, v in a.items() if k != "proof"}, "the answer to a read with proofs carries"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_server_is_refused(client: tuple[Liar, RemoteStore], lie: str) -> None:
    server, store = client
    edit, message = LIES[lie]
    server.edit = edit
    trusted = store.trusted().head
    with pytest.raises(errors.ProofFailed) as failed:
        store.namespace("ledger").read(["a", "b", "bin", "c", "f"], verified=True)
    assert failed.value.code == "PROOF_FAILED"
    assert failed.value.message.startswith(message), failed.value.message
    assert store.trusted().head == trusted


def test_metadata_and_times_are_proven_too(client: tuple[Liar, RemoteStore]) -> None:
    server, store = client
    ns = store.namespace("ledger")
    server.edit = _data("c", metadata={"m": 2})
    with pytest.raises(errors.ProofFailed, match=r"^the answer's record of key 'c' .*: other metadata$"):
        ns.read(["c"], verified=True, metadata=True)
    server.edit = _data("c", updated_at="2020-01-01T00:00:00Z")
    with pytest.raises(errors.ProofFailed, match=r"^the answer's record of key 'c' .*: another updated_at$"):
        ns.read(["c"], verified=True, fields=["updated_at"])
    server.edit = _data("c", expire_time="2999-01-01T00:00:00Z")
    with pytest.raises(errors.ProofFailed, match=r"^the answer's record of key 'c' .*: another expire_time$"):
        ns.read(["c"], verified=True, fields=["expire_time"])


def test_another_namespace_or_tx_is_refused(client: tuple[Liar, RemoteStore], liar: tuple[Liar, str, dict[str, App]]
                                            ) -> None:
    server, store = client
    honest = liar[2]["honest"]

    def as_ledger(answer: dict[str, Any]) -> dict[str, Any]:  # other's c answered with ledger's proof
        real = Client(honest).post("/v4/storage/ledger/read", json={"keys": ["c"], "proof": True}).json()
        return {**real, "data": [{"key": "c", "value": "three", "tx": 2, "binary": False}]}
    server.edit = as_ledger
    with pytest.raises(errors.ProofFailed, match=r"^tx 2's proven entry writes no record for key 'c' of 'other'"):
        store.namespace("other").read(["c"], verified=True)
    server.edit = lambda answer: {**answer, "tx": 5}
    with pytest.raises(errors.ProofFailed, match=r"^asked for a read at tx 6, the server answered one at tx 5"):
        store.namespace("ledger").read(["c"], tx=6, verified=True)


def test_absence_is_not_proven(client: tuple[Liar, RemoteStore]) -> None:
    """A log tree proves what was written, not what was not: a server that says a key was never
    written (no version, no record) is believed. The docs say so."""
    server, store = client
    server.edit = _drop_entry(2, lambda answer: _omit("c")(_version("c", None)(answer)))
    assert store.namespace("ledger").read(["c"], verified=True).records == []


def test_a_rewritten_log_is_refused_against_the_kept_head(client: tuple[Liar, RemoteStore],
                                                          liar: tuple[Liar, str, dict[str, App]]) -> None:
    server, store = client
    server.app = liar[2]["forged"]  # same size, tx 1 rewritten, every hash recomputed
    with pytest.raises(errors.ProofFailed, match=r"^the consistency proof from size 6 to 6 does not verify"):
        store.namespace("ledger").read(["c"], verified=True)


def test_a_verified_read_moves_the_trusted_head_only_forward_through_a_proof(tmp_path: Path) -> None:
    _fill(tmp_path / "data")
    app = create_app(tmp_path / "data", sync=False)
    httpd, _ = _serve(app)
    try:
        with connect(f"http://127.0.0.1:{httpd.server_port}", retries=0) as store:
            state = tmp_path / "trusted.json"
            verifier = store.verifier(state, trust=app.store.head())
            tx = store.namespace("ledger").put({"g": [1]})
            assert store.namespace("ledger").read(["g", "c"], verified=True).records == [Record("g", [1], tx),
                                                                                         Record("c", "three", 2)]
            assert verifier.head is not None and verifier.head.size == tx == json.loads(state.read_text())["size"]
            with connect(f"http://127.0.0.1:{httpd.server_port}", retries=0) as fresh:  # trusts on first use
                assert fresh.namespace("ledger").read(["g"], verified=True).records == [Record("g", [1], tx)]
                assert fresh.trusted().head == verifier.head
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()


def test_a_record_tampered_through_raw_lmdb_is_refused(tmp_path: Path) -> None:
    _fill(tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as s:
        kept = s.head()  # the auditor's head, kept before the tampering

    def change(txn: Any, env: Any) -> None:  # c's value at tx 2 becomes "four", behind Strata's back
        namespaces, versions = env.open_db(b"namespaces", txn=txn), env.open_db(b"versions", txn=txn)
        prefix = ns_prefix(NamespaceEntry.decode(txn.get(b"ledger", db=namespaces)).id)
        vkey = keypart(prefix, b"c") + inv_tx(2)
        record = bytes(txn.get(vkey, db=versions))
        assert b"three" in record
        txn.put(vkey, record.replace(b"three", b"four!"), db=versions)
        # The latest-version index holds a second copy of a newest record: a thorough forger rewrites both.
        latest, ikey = env.open_db(b"latest", txn=txn), keypart(prefix, b"c")
        indexed = bytes(txn.get(ikey, db=latest))
        assert b"three" in indexed
        txn.put(ikey, indexed.replace(b"three", b"four!"), db=latest)
    tamper(tmp_path / "data", change)
    app = create_app(tmp_path / "data", sync=False)
    httpd, _ = _serve(app)
    try:
        with connect(f"http://127.0.0.1:{httpd.server_port}", retries=0) as store:
            assert store.namespace("ledger").read(["c"]).records == [Record("c", "four!", 2)]  # unverified: believed
            store.verifier(trust=kept)
            with pytest.raises(errors.ProofFailed, match=r"^the entry of tx 2 is not leaf 1 of the trusted tree"):
                store.namespace("ledger").read(["c"], verified=True)
            assert store.namespace("ledger").read(["bin"], verified=True).records == [Record("bin", b"\x00\x01", 1,
                                                                                             True)]
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()
