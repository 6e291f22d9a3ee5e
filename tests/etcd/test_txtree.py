"""The Merkle tree on etcd (engine.etcd.txtree, engine.etcd.proved_read) on a real 3-member cluster.

Random histories written to an LMDB store and to a store on etcd give the same heads (chain hash and
root) whenever a head is asked, and then the same inclusion and consistency proofs, byte for byte, at
every size, and the same proof reads at the latest and at a past tx; the tree is laid out as
documented (with small segments, so seals and segments cross). Over HTTP the proof routes and proof
reads answer as on LMDB, the client's own checks accept etcd's answers (a signed head too) and refuse a
tampered one. A size not sealed yet is sealed first; one the chain cannot be sealed to answers
``STORAGE_ERROR`` naming the tx. A store sealed before it had a tree gets its tree built from the log.

Every store has its own prefix on the module's one cluster, and no store runs a background sealer while
another test writes (the tx numbering needs a cluster nothing else writes to).
"""

from __future__ import annotations

import base64
import itertools
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ormsgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Limits, Store, errors, merkle, signed_head
from engine.etcd import chain, prefix_end
from engine.etcd.kv import DeleteRange, Put
from engine.etcd.storage import EtcdStorage
from engine.etcd.store import EtcdStore
from server import create_app
from server.client import proofs, proved_reads
from server.client.namespace import records_of
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster

_prefixes = itertools.count()
NAMESPACES = ["a", "b"]
KEYS = ["k", "ké", "k2", "L" * 500]
values = st.one_of(st.integers(-2, 2), st.text(max_size=2), st.binary(max_size=2), st.none())
ops = st.tuples(st.sampled_from(["put", "put", "put", "delete", "clear", "txn", "drop"]), st.sampled_from(NAMESPACES),
                st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True), values, st.booleans())
histories = st.lists(ops, min_size=1, max_size=10)


def open_etcd(cluster: EtcdCluster, clock: Clock, name: str) -> EtcdStore:
    """A store on a fresh prefix, with no background sealer (readers seal what they ask for)."""
    return EtcdStore.open(cluster.store_url(f"tree/{name}/{next(_prefixes)}"), clock=clock, seal_interval=None)


def outcome(call: Any) -> Any:
    try:
        return call()
    except errors.EngineError as exc:
        return type(exc), exc.message, exc.details


def write(store: Any, kind: str, ns: str, keys: list[str], value: Any) -> Any:
    """One write of a history: the tx, or the error (type, message, details)."""
    space = store.namespace(ns)
    if kind == "put":
        return outcome(lambda: space.put({k: value for k in keys}, note={"v": str(value)}))
    if kind in ("delete", "clear"):
        return outcome(lambda: getattr(space, kind)(keys))
    if kind == "drop":
        return outcome(lambda: store.drop_namespace(ns))

    def txn() -> int:
        with store.transaction(note={"txn": True}) as t:
            for k in keys:
                t.put("a", k, value)
                t.delete("b", k)
        return int(t.tx)
    return outcome(txn)


def proved(store: Any, ns: str, tx: int | None) -> Any:
    return outcome(lambda: store.namespace(ns).proved_read([*KEYS, "never"], tx=tx))


@pytest.fixture
def lmdb(clock: Clock) -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as store:
        yield store


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories)
def test_random_histories_give_lmdb_s_roots_and_proofs_byte_for_byte(etcd_cluster: EtcdCluster, clock: Clock,
                                                                     history: list[Any]) -> None:
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp, \
            Store.open(tmp, sync=False, clock=clock) as lmdb, open_etcd(etcd_cluster, clock, "random") as store:
        patch.setattr(chain, "SEGMENT", 4)  # small segments and seals: a history crosses both
        patch.setattr(chain, "MAX_SEAL", 8)
        for kind, ns, keys, value, look in history:
            clock.now += 1
            assert write(store, kind, ns, keys, value) == write(lmdb, kind, ns, keys, value)
            if look:  # a head now seals what is written so far: the tree grows a few txs per seal
                assert store.head() == lmdb.head()
        assert store.head() == lmdb.head() and store.head().root is not None
        assert store.verify() == lmdb.verify()  # the tree checked too
        latest = lmdb.latest_tx
        for tx in range(1, latest + 1):  # every leaf in the latest tree, every older tree in it
            assert store.inclusion_proof(tx) == lmdb.inclusion_proof(tx)
            assert store.inclusion_proof(1, tx) == lmdb.inclusion_proof(1, tx)
            assert store.consistency_proof(tx) == lmdb.consistency_proof(tx)
        for tx in {None, latest // 2}:
            for ns in NAMESPACES:
                assert proved(store, ns, tx) == proved(lmdb, ns, tx)


def tree_keys(store: EtcdStore) -> dict[bytes, Any]:
    """The tree's keys as stored, after the prefix: segments and head, decoded."""
    layout = store.storage().layout
    start = layout.tree_head[:-4]
    found = store.storage().client.range(start, prefix_end(start)).kvs
    return {kv.key[len(layout.prefix):]: ormsgpack.unpackb(kv.value) for kv in found}


def test_the_tree_is_stored_as_documented(etcd_cluster: EtcdCluster, clock: Clock, lmdb: Store,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "SEGMENT", 4)
    with open_etcd(etcd_cluster, clock, "layout") as store:
        for i in range(6):
            for s in (store, lmdb):
                s.namespace("a").put({"k": i})
            if i in (0, 2):
                store.head()  # seals of 1, then 2, then 3 txs
        head = store.head()
        leaves = [bytes.fromhex(lmdb.inclusion_proof(tx, tx).leaf_hash) for tx in range(1, 7)]

        def node(start: int, end: int) -> bytes:
            return merkle.mth(leaves[start:end])
        assert tree_keys(store) == {
            b"/tree/0000000000000001": [leaves[0], leaves[1] + node(0, 2), leaves[2],
                                        leaves[3] + node(2, 4) + node(0, 4)],
            b"/tree/0000000000000005": [leaves[4], leaves[5] + node(4, 6)],
            b"/tree/head": [6, merkle.mth(leaves)],
        }
        assert head.root == merkle.mth(leaves).hex() == lmdb.head().root


def problem(call: Any) -> tuple[Any, ...]:
    with pytest.raises(errors.EngineError) as raised:
        call()
    return type(raised.value), raised.value.message, raised.value.details


def test_sizes_not_sealed_yet_are_sealed_first_and_bad_ones_refused_as_on_lmdb(
        etcd_cluster: EtcdCluster, clock: Clock, lmdb: Store) -> None:
    with open_etcd(etcd_cluster, clock, "unsealed") as store:
        for s in (store, lmdb):
            assert problem(lambda s=s: s.inclusion_proof(1)) == (
                errors.FutureTx, "tx 1 is above the latest committed tx (0): the store is empty",
                {"tx": 1, "latest_tx": 0, "parameter": "tx"})
        for i in range(5):
            for s in (store, lmdb):
                s.namespace("a").put({f"k{i}": i})
        timeline = store.storage().timeline
        assert chain.sealed_head(timeline)[0].tx == 0  # no background sealer: nothing sealed yet
        assert store.inclusion_proof(2, 3) == lmdb.inclusion_proof(2, 3)
        assert chain.sealed_head(timeline)[0].tx == 3  # the proof sealed up to its size, no further
        assert store.consistency_proof(3) == lmdb.consistency_proof(3)  # default size: the latest
        assert chain.sealed_head(timeline)[0].tx == 5
        calls = [lambda s: s.inclusion_proof(1, 6), lambda s: s.inclusion_proof(6, 5),
                 lambda s: s.inclusion_proof(0), lambda s: s.inclusion_proof(1, 0), lambda s: s.inclusion_proof(True),
                 lambda s: s.consistency_proof(2, 9), lambda s: s.consistency_proof(0, 3),
                 lambda s: s.consistency_proof(4, 3), lambda s: s.consistency_proof("1")]
        for call in calls:
            assert problem(lambda call=call: call(store)) == problem(lambda call=call: call(lmdb))
        assert problem(lambda: store.inclusion_proof(1, 6))[0] is errors.FutureTx

        # A write to the cluster that is no Strata tx takes the revision of tx 6: the chain, and so the
        # tree, cannot be sealed past tx 5. Proofs up to 5 still answer; beyond, STORAGE_ERROR names tx 6.
        store.storage().client.put(b"someone-else", b"x")
        store.namespace("a").put({"late": 1})
        assert store.inclusion_proof(5, 5) == lmdb.inclusion_proof(5, 5)
        assert problem(lambda: store.inclusion_proof(1, 7)) == (
            errors.StorageError, "the hash chain cannot be sealed past tx 5: tx 6: revision "
            f"{timeline.revision_of(6)} holds no tx log entry: a write to the cluster that is no Strata tx (the tx "
            "numbering is broken from here)", {"tx": 6})
        assert problem(lambda: store.consistency_proof(1))[0:2] == problem(lambda: store.inclusion_proof(1, 7))[0:2]
        assert problem(lambda: store.namespace("a").proved_read(["late"]))[0] is errors.StorageError


def test_a_store_sealed_before_it_had_a_tree_gets_one_from_the_log(etcd_cluster: EtcdCluster, clock: Clock,
                                                                   lmdb: Store) -> None:
    with open_etcd(etcd_cluster, clock, "legacy") as store:
        for i in range(7):
            for s in (store, lmdb):
                s.namespace("a").put({"k": i}, note={"i": i})
        store.head()
        timeline = store.storage().timeline
        start = timeline.layout.tree_head[:-4]
        timeline.housekeeping([DeleteRange(start, prefix_end(start))])  # as a store sealed by an older Strata
        assert tree_keys(store) == {}
        assert store.inclusion_proof(3, 4) == lmdb.inclusion_proof(3, 4)  # built up to 4 on the way
        assert tree_keys(store)[b"/tree/head"][0] == 4
        store.namespace("a").put({"k": 7})
        lmdb.namespace("a").put({"k": 7})
        assert store.head() == lmdb.head()  # the seal of tx 8 builds the rest of the tree first

        # A sealed hash that no longer matches the records: no leaf is built for that tx.
        timeline.housekeeping([DeleteRange(start, prefix_end(start))])
        key = timeline.layout.segment(1)
        sealed = ormsgpack.unpackb(store.storage().client.range(key).kvs[0].value)
        sealed[2][0] = bytes(32)
        timeline.housekeeping([Put(key, ormsgpack.packb(sealed))])
        assert problem(lambda: store.inclusion_proof(1, 4)) == (
            errors.StorageError, "the Merkle tree cannot be built past tx 2: tx 3: its log entry and records no "
            "longer hash to its sealed chain hash", {"tx": 3})
        assert store.inclusion_proof(1, 2) == lmdb.inclusion_proof(1, 2)


@pytest.fixture
def apps(etcd_cluster: EtcdCluster, tmp_path: Path, clock: Clock) -> Iterator[tuple[Any, Any, dict[str, bytes]]]:
    """An LMDB app and an etcd app (its store's background sealer running), heads signed with one key."""
    pem, public = signed_head.generate()
    (tmp_path / "signing.key").write_bytes(pem)
    url = etcd_cluster.store_url(f"tree/http/{next(_prefixes)}")
    options = {"store_options": {"clock": clock}, "signing_key": tmp_path / "signing.key"}
    on_lmdb, on_etcd = create_app(tmp_path / "lmdb", sync=False, **options), create_app(url, **options)
    yield on_lmdb, on_etcd, signed_head.trusted_keys(public)
    on_etcd.close()  # stops its sealer before the module's next test writes the cluster
    on_lmdb.close()


def answers(app: Any, method: str, path: str, **options: Any) -> dict[str, Any]:
    response = Client(app).request(method, path, **options)
    assert response.status == 200, response.body
    body = response.json()
    body.pop("duration")
    return body


def unsigned(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without its signed head (signed at each answer's own time)."""
    return {k: v for k, v in body.items() if k != "signed"}


def test_proof_routes_answer_as_on_lmdb_and_the_client_checks_accept_them(apps: tuple[Any, Any, Any]) -> None:
    on_lmdb, on_etcd, keys = apps
    writes = [[{"key": "a", "value": 1}, {"key": "b", "value": "two"}], [{"key": "a", "value": [3]}],
              [{"key": "c", "value": None}], [{"key": "b", "value": 4}]]
    old = None
    for i, batch in enumerate(writes):
        assert answers(on_etcd, "POST", "/v4/storage/ns/write", json=batch)["tx"] == \
            answers(on_lmdb, "POST", "/v4/storage/ns/write", json=batch)["tx"]
        if i == 1:
            old = proofs.head_of(answers(on_etcd, "GET", "/v4/head"), keys)
    heads = [answers(app, "GET", "/v4/head") for app in (on_lmdb, on_etcd)]
    assert unsigned(heads[0]) == unsigned(heads[1])
    head = proofs.head_of(heads[1], keys)  # etcd's signed head checks out with the server's public key
    assert head.signed is not None and head.size == 4 and old is not None and old.size == 2
    for path, query in (("/v4/proof/inclusion", {"tx": "3"}), ("/v4/proof/inclusion", {"tx": "1", "size": "2"}),
                        ("/v4/proof/consistency", {"from": "2"}), ("/v4/proof/consistency", {"from": "1", "to": "3"})):
        assert answers(on_etcd, "GET", path, query=query) == answers(on_lmdb, "GET", path, query=query)
    inclusion = answers(on_etcd, "GET", "/v4/proof/inclusion", query={"tx": "3"})
    proofs.check_inclusion(inclusion, 3, head)
    for forged in ({**inclusion, "path": inclusion["path"][::-1]}, {**inclusion, "leaf_hash": "00" * 32},
                   {**inclusion, "tx": 2}):
        with pytest.raises(errors.ProofFailed):
            proofs.check_inclusion(forged, 3, head)
    consistency = answers(on_etcd, "GET", "/v4/proof/consistency", query={"from": "2"})
    proofs.check_consistency(consistency, old, head)
    tampered = {**consistency, "path": [consistency["path"][0][:-1] + "0" if consistency["path"][0][-1] != "0" else
                                        consistency["path"][0][:-1] + "1", *consistency["path"][1:]]}
    with pytest.raises(errors.ProofFailed):
        proofs.check_consistency(tampered, old, head)

    wanted = ["a", "b", "c", "never"]
    for tx in (None, 2):
        body = {"keys": wanted, "proof": True, **({} if tx is None else {"tx": tx})}
        got, expected = (answers(app, "POST", "/v4/storage/ns/read", json=body) for app in (on_etcd, on_lmdb))
        proof_head = got["proof"]["head"]
        assert {**got, "proof": {**got["proof"], "head": unsigned(proof_head)}} == \
            {**expected, "proof": {**expected["proof"], "head": unsigned(expected["proof"]["head"])}}
        trusted = proofs.head_of({"tx": proof_head["size"], **proof_head}, keys)
        result = records_of(got)
        proved_reads.check(got, "ns", wanted, result.records, result.tx, trusted, False, frozenset())
        entry = got["proof"]["entries"][0]
        forged = bytearray(base64.b64decode(entry["entry"]))
        forged[-1] ^= 1
        bad = {**got, "proof": {**got["proof"], "entries": [
            {**entry, "entry": base64.b64encode(bytes(forged)).decode()}, *got["proof"]["entries"][1:]]}}
        with pytest.raises(errors.ProofFailed):
            proved_reads.check(bad, "ns", wanted, result.records, result.tx, trusted, False, frozenset())


def test_a_proof_read_past_max_proof_bytes_is_refused_as_on_lmdb(etcd_cluster: EtcdCluster, clock: Clock,
                                                                  tmp_path: Path) -> None:
    limits = Limits(max_proof_bytes=300)
    with EtcdStore.open(etcd_cluster.store_url(f"tree/limit/{next(_prefixes)}"), clock=clock, seal_interval=None,
                        limits=limits) as store, Store.open(tmp_path, sync=False, clock=clock, limits=limits) as lmdb:
        for s in (store, lmdb):
            s.namespace("a").put({"x": "x" * 100, "y": "y" * 100})  # tx 1: 2 records of about 100 bytes
            s.namespace("a").put({"z": "z" * 100})  # tx 2
        assert proved(store, "a", None) == proved(lmdb, "a", None)
        for keys in (["x"], ["x", "z"], ["z"]):
            assert outcome(lambda k=keys: store.namespace("a").proved_read(k)) == \
                outcome(lambda k=keys: lmdb.namespace("a").proved_read(k))
        assert outcome(lambda: store.namespace("a").proved_read(["x", "z"]))[0] is errors.ProofTooLarge
        assert type(store.namespace("a").proved_read(["z"]).entries[0].entry) is bytes


def test_verify_names_the_first_tree_entry_rewritten_and_a_forged_root(etcd_cluster: EtcdCluster, clock: Clock,
                                                                        lmdb: Store) -> None:
    with open_etcd(etcd_cluster, clock, "verify") as store:
        for i in range(6):
            for s in (store, lmdb):
                s.namespace("a").put({"k": i})
        head = store.head()
        assert store.verify() == lmdb.verify()
        timeline = store.storage().timeline
        key, head_key = timeline.layout.tree_segment(1), timeline.layout.tree_head
        stored = ormsgpack.unpackb(store.storage().client.range(key).kvs[0].value)
        cases = [  # (what is rewritten, the tx named, the problem); each through a housekeeping txn
            (key, [*stored[:3], stored[3][:64], *stored[4:]], 4,
             "the Merkle tree entry of this tx is 64 bytes, not 96"),
            (key, [*stored[:1], bytes(32) + stored[1][32:], *stored[2:]], 2,
             "the Merkle leaf does not match the tx's log entry and records"),
            (key, [*stored[:5], stored[5][:32] + bytes(32)], 6,
             "a Merkle tree node ending at this tx is not the hash of its children"),
            (key, stored[:4], 5, "the Merkle tree has no entry for this tx"),
            (head_key, [6, bytes(32)], 6, "the Merkle tree head's root is not the root of the stored tree"),
        ]
        original = {key: ormsgpack.packb(stored), head_key: store.storage().client.range(head_key).kvs[0].value}
        for target, forged, tx, message in cases:
            timeline.housekeeping([Put(target, ormsgpack.packb(forged))])
            report = store.verify()
            assert (report.ok, report.checked, report.head_tx, report.head_hash, report.bad_tx, report.problem) == (
                False, tx - 1, 6, head.hash, tx, message)
            timeline.housekeeping([Put(target, original[target])])
        assert store.verify() == lmdb.verify()


def test_proof_reads_across_deletes_and_a_drop_name_lmdb_s_versions(etcd_cluster: EtcdCluster, clock: Clock,
                                                                     lmdb: Store) -> None:
    with open_etcd(etcd_cluster, clock, "drop") as store:
        for s in (store, lmdb):
            s.namespace("b").put({"k": 1, "gone": 2, "kept": 3})  # tx 1
            s.namespace("b").delete(["gone"])  # tx 2
            s.drop_namespace("b")  # tx 3: deletes k and kept, not gone (already deleted)
            s.namespace("b").put({"kept": 4}, ttl=60, metadata={"m": 1})  # tx 4
        keys = ["k", "gone", "kept", "never"]
        for tx in (None, 1, 2, 3):
            assert store.namespace("b").proved_read(keys, tx=tx) == lmdb.namespace("b").proved_read(keys, tx=tx)
        rich = {"metadata": True, "fields": ["updated_at", "expire_time"]}
        assert store.namespace("b").proved_read(keys, **rich) == lmdb.namespace("b").proved_read(keys, **rich)
        assert store.namespace("b").proved_read(keys).versions == [("k", 3), ("gone", 2), ("kept", 4), ("never", None)]


def test_concurrent_sealers_grow_one_tree(etcd_cluster: EtcdCluster, clock: Clock, lmdb: Store,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "SEGMENT", 4)
    with open_etcd(etcd_cluster, clock, "race") as store:
        for i in range(14):
            for s in (store, lmdb):
                s.namespace("a").put({f"k{i % 3}": i})
        prefix = store.storage().layout.prefix.decode()
        sealers = [EtcdStorage.open(store.storage().client, prefix, clock=clock) for _ in range(3)]
        start = threading.Barrier(len(sealers))

        def seal(sealer: EtcdStorage, targets: list[int]) -> None:
            start.wait()
            for target in targets:
                chain.seal(sealer.timeline, target)

        threads = [threading.Thread(target=seal, args=(s, targets)) for s, targets in
                   zip(sealers, ([3, 9, 14], [5, 6, 14], [14]), strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert tree_keys(store)[b"/tree/head"] == [14, bytes.fromhex(lmdb.head().root or "")]
        assert store.head() == lmdb.head() and store.verify() == lmdb.verify()
        assert store.inclusion_proof(5) == lmdb.inclusion_proof(5)
