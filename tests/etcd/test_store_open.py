"""``Store.open("etcd://...")`` and ``strata serve --data etcd://...`` on a real 3-member etcd cluster.

The engine API through the facade (:class:`engine.etcd.store.EtcdStore`) gives the LMDB store's exact answers
for the same writes at the same clock (reads by time too: ``tx_at`` and ``at=`` over clamped commit times,
embedded and over HTTP); every operation the etcd backend does not support yet raises
``NOT_SUPPORTED`` naming it (never an AttributeError); bad URLs and an unreachable cluster are clear engine
errors; one live ``strata serve --data etcd://`` answers a write and a read, a stream's publish over SSE, and
501 for a backup.

Every test has its own store prefix on the module's one cluster (tests run one after another in a module,
so nothing else writes the cluster while one runs: the tx numbering needs that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Item, Namespace, Store, errors, expiry
from engine.etcd.chain import SEGMENT
from engine.etcd.limits import EtcdLimits
from engine.etcd.store import EtcdStore
from engine.etcd.transaction import EtcdTransaction
from engine.etcd.url import EtcdUrl
from engine.records import ReadResult, Record
from engine.txn import Transaction
from server.app import App, create_app
from server.lifecycle import LifecycleLeader
from server.routes import TABLE
from tests.engine.clock import T0, Clock
from tests.server.conftest import Client, LiveServer, start_server, stop_server
from tests.server.sse_client import open_stream

from .cluster import EtcdCluster, free_port


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)



@pytest.fixture
def url(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest) -> str:
    return etcd_cluster.store_url("open/" + request.node.name)


@pytest.fixture
def on_etcd(url: str, clock: Clock) -> Iterator[Store]:
    with Store.open(url, clock=clock) as store:
        yield store


@pytest.fixture
def on_lmdb(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "lmdb", clock=clock) as store:
        yield store


def _writes(store: Store, clock: Clock) -> list[Any]:
    """The same writes on either store; what each returned (txs, errors, infos)."""
    out: list[Any] = []
    cities = store.namespace("cities")
    out.append(cities.put({"c:1": {"name": "Braavos"}, "c:2": "Pentos", "c:3": b"\x00raw"}, note={"by": "ana"}))
    clock.now += 1
    out.append(cities.put([Item("c:4", 4, ttl=10), Item("c:5", 5, metadata={"m": 1})], metadata={"all": True}))
    clock.now += 1
    out.append(cities.clear(["c:2"]))
    out.append(cities.delete(["c:3", "c:absent"]))
    out.append(cities.delete(["c:absent"]))  # a no-op: no tx
    try:
        cities.put({"c:1": "x"}, expect={"c:1": 99})
    except errors.Conflict as exc:
        out.append(exc.to_dict())
    try:
        cities.put({"": 1})
    except errors.InvalidKey as exc:
        out.append(exc.to_dict())
    with store.transaction(note={"t": 1}) as t:
        t.put("cities", "c:6", [6])
        t.put("towns", "t:1", "Lys")
        t.delete("cities", "c:1")
        t.expect("cities", "c:5", tx=2)
    out.append(t.tx)
    out.append(store.create_namespace("empty"))
    try:
        store.create_namespace("cities")
    except errors.NamespaceExists as exc:
        out.append(exc.to_dict())
    clock.now += 1
    out.append(store.namespace("towns").put({"t:2": "Tyrosh"}))
    out.append(store.drop_namespace("towns", note={"drop": True}))
    clock.now += 20  # c:4 expires
    out.append(store.next_expiry())
    out.append(store.expire())
    out.append(store.next_expiry())
    return out


def _reads(store: Store) -> list[Any]:
    """Every read of the engine API the etcd backend supports, at every tx."""
    out: list[Any] = [store.latest_tx]
    cities = store.namespace("cities")
    for tx in range(0, store.latest_tx + 1):
        out.append(cities.read(["c:1", "c:2", "c:3", "c:4", "c:5", "c:6"], tx=tx))
        out.append(cities.read(["c:5", "c:4"], tx=tx, metadata=True, fields=["created_at", "updated_at",
                                                                           "expire_time"]))
        out.append(cities.get("c:1", tx=tx))
        scan = cities.scan("c:", tx=tx, after="c:1", limit=3)
        out.append((scan.tx, list(scan)))
        out.append((lambda s: (s.tx, list(s)))(store.namespace("towns").scan(tx=tx)))
    out.append(cities.get("c:5", metadata=True))
    out.append(list(cities.scan()))
    for key in ("c:1", "c:2", "c:3", "c:4"):
        out.append(cities.history(key))
        out.append(cities.history(key, order="asc", limit=2, after=1))
    out.append(list(cities.diff(1, store.latest_tx)))
    out.append(list(cities.diff(2, 4)))
    for tx in range(1, store.latest_tx + 2):
        info = store.tx_info(tx)
        out.append(None if info is None else (info.tx, info.time, info.note, info.operations, info.hash))
    out.append([(i.tx, i.time, i.note, i.operations, i.hash) for i in store.changes(0)])
    out.append([(i.tx, i.operations, i.hash) for i in store.changes(2, limit=2, namespace="cities")])
    out.append(tuple(store.head()))
    report = store.verify(tuple(store.head()))
    out.append((report.ok, report.checked, report.head_tx, report.head_hash, report.bad_tx, report.horizon))
    out.append(store.namespaces())
    out.append([store.namespace_info(n) for n in ("cities", "towns", "empty", "never")])
    out.append(cities.info())
    out.append(store.wait_for(store.latest_tx, timeout=0))
    out.append(store.wait_for(store.latest_tx + 1, timeout=0))
    return out


def test_the_engine_api_on_etcd_answers_as_on_lmdb(on_etcd: Store, on_lmdb: Store, clock: Clock) -> None:
    assert type(on_etcd) is EtcdStore and on_etcd.backend == "etcd" and on_lmdb.backend == "lmdb"
    start = clock.now
    written = _writes(on_etcd, clock)
    clock.now = start
    assert _writes(on_lmdb, clock) == written
    assert written[:5] == [1, 2, 3, 4, 4] and written[7] == 5 and written[-4:] == [7, at(T0 + 11), 1, None]
    assert written[5]["code"] == "CONFLICT" and written[6]["code"] == "INVALID_KEY"
    assert on_etcd.latest_tx == on_lmdb.latest_tx == 8  # the expiry sweep: tx 8
    assert _reads(on_etcd) == _reads(on_lmdb)
    # A few answers spelled out, so equality with LMDB is not equality of two wrong answers.
    cities = on_etcd.namespace("cities")
    assert [(r.key, r.value, r.tx) for r in cities.read(["c:1", "c:2", "c:6"], tx=5).records] == [
        ("c:2", None, 3), ("c:6", [6], 5)]
    assert [(v.tx, v.op) for v in cities.history("c:4")] == [(8, "delete"), (2, "put")]
    info, expected = on_etcd.tx_info(8), on_lmdb.tx_info(8)
    assert info is not None and expected is not None
    assert (info.note, info.hash, info.time.timestamp()) == ({"expired": True}, expected.hash, T0 + 23)
    assert on_etcd.head() == on_lmdb.head() and on_etcd.head().hash == expected.hash  # the Merkle root too
    assert [n.name for n in on_etcd.namespaces()] == ["cities", "empty"]
    assert (on_etcd.horizon, on_etcd.compaction_status()) == (0, {"horizon": 0, "freed_versions": 0, "pending": None})
    stats = on_etcd.stats()
    assert stats["latest_tx"] == 8 and stats["used_bytes"] > 0
    on_etcd.sync()


# -- reads by time: tx_at and at= -----------------------------------------------------------------------


def _timed_writes(store: Store, clock: Clock, bulk: int) -> None:
    """Txs whose clock goes forward, stands still and goes back (LMDB clamps such a time to the previous
    tx's; on etcd the sealer does), then ``bulk`` one-key puts, every fifth of them back in time."""
    cities = store.namespace("cities")
    cities.put({"c:1": 1, "c:2": 2}, metadata={"m": 1})  # tx 1 at T0
    clock.now += 1
    cities.put({"c:1": 11})  # tx 2 at T0 + 1
    cities.put({"c:3": 3})  # tx 3 at T0 + 1 as well: the clock stood still
    clock.now -= 5
    cities.delete(["c:2"])  # tx 4: the clock went back; clamped to T0 + 1
    clock.now += 10
    cities.clear(["c:3"])  # tx 5 at T0 + 6
    for i in range(bulk):
        clock.now += -0.15 if i % 5 == 4 else 0.1  # runs of equal clamped times
        cities.put({f"b:{i % 7}": i})


def _probes(store: Store, txs: list[int]) -> list[float]:
    """Epoch seconds to ask at: before the first tx, 0, far in the future, and each of ``txs``' clamped
    time, 1 µs before and 1 µs after it."""
    out = [T0 - 1000, 0.0, T0 + 10**6]
    for tx in txs:
        info = store.tx_info(tx)
        assert info is not None
        out += [(info.time_us + d) / 1_000_000 for d in (-1, 0, 1)]
    return out


def _reads_at(store: Store, p: float) -> list[Any]:
    cities = store.namespace("cities")
    return [cities.read(["c:1", "c:2", "c:3"], at=p), cities.get("c:1", at=at(p)),
            cities.read(["c:2", "c:1"], at=at(p), metadata=True, fields=["created_at", "updated_at"]),
            *((s.tx, list(s)) for s in (cities.scan("c:", at=p), cities.scan(at=p, after="b:5", limit=3)))]


def _bad_time_calls(store: Store) -> list[Callable[[], Any]]:
    cities = store.namespace("cities")
    naive = datetime(2027, 1, 1)  # the point: a naive datetime is refused
    return [
        lambda: store.tx_at(naive), lambda: store.tx_at(-1), lambda: store.tx_at("now"),
        lambda: store.tx_at(float("nan")), lambda: store.tx_at(None),  # type: ignore[arg-type]
        lambda: store.tx_at(float("inf")),
        lambda: cities.read(["c:1"], tx=1, at=T0), lambda: cities.read(["c:1"], tx=-1, at=T0),
        lambda: cities.read([""], tx=1, at=T0), lambda: cities.read("c:1", at=T0), lambda: cities.read(["c:1"], at=-1),
        lambda: cities.read(["c:1"], tx=1, at=T0, fields=["nope"]), lambda: cities.read(["c:1"], at=naive, fields=[1]),
        lambda: cities.get("c:1", tx=1, at=T0), lambda: cities.get("", at=naive), lambda: cities.get("", tx=1, at=T0),
        lambda: cities.scan(at=T0, tx=1), lambda: cities.scan(limit=-1, at=T0, tx=1),
        lambda: cities.scan(1, at="x"), lambda: cities.scan(after="", at=T0),  # type: ignore[arg-type]
        lambda: cities.scan(at="x", after=""), lambda: cities.scan(at=T0, fields=["nope"], tx=1),
    ]


def _error_of(call: Callable[[], Any]) -> tuple[str, dict[str, Any]]:
    with pytest.raises(errors.EngineError) as raised:
        call()
    return type(raised.value).__name__, raised.value.to_dict()


def _tx_at_on_both(url: str, path: Path, bulk: int, txs: list[int]) -> tuple[Store, Store, Clock]:
    """Open both stores, check ``tx_at`` of the empty store, make the same timed writes on both and
    check ``tx_at`` at the probes of ``txs`` (epoch seconds and datetimes) and far away; both stay open."""
    clock = Clock()
    on_etcd, on_lmdb = Store.open(url, clock=clock), Store.open(path, clock=clock, sync=False)
    assert on_etcd.tx_at(T0) == on_lmdb.tx_at(T0) == 0  # an empty store
    _timed_writes(on_etcd, clock, bulk)
    clock.now = T0
    _timed_writes(on_lmdb, clock, bulk)
    assert on_etcd.latest_tx == on_lmdb.latest_tx == 5 + bulk
    probes = _probes(on_lmdb, txs)
    assert _probes(on_etcd, txs) == probes  # the same clamped times
    found = [(on_lmdb.tx_at(p), on_lmdb.tx_at(at(p))) for p in probes]
    assert [(on_etcd.tx_at(p), on_etcd.tx_at(at(p))) for p in probes] == found
    far = [datetime(9999, 12, 31, tzinfo=UTC), datetime(1960, 1, 1, tzinfo=UTC), 1e12]
    assert [on_etcd.tx_at(w) for w in far] == [on_lmdb.tx_at(w) for w in far] == [5 + bulk, 0, 5 + bulk]
    return on_etcd, on_lmdb, clock


def test_tx_at_and_reads_at_a_time_on_etcd_answer_as_on_lmdb(url: str, tmp_path: Path) -> None:
    bulk = 6
    on_etcd, on_lmdb, _ = _tx_at_on_both(url, tmp_path / "lmdb", bulk, list(range(1, 6 + bulk)))
    with on_etcd, on_lmdb:
        # Spelled out: tx 4's time went back and was clamped to tx 2's and 3's, the last of them answers.
        assert [on_etcd.tx_at(T0 + d) for d in (-1e-6, 0, 0.5, 1, 6 - 1e-6, 6)] == [0, 1, 1, 4, 4, 5]
        for p in _probes(on_lmdb, list(range(1, 6))):  # the first txs' times, where the reads differ
            assert _reads_at(on_etcd, p) == _reads_at(on_lmdb, p), p
        # At T0 + 1 the state is tx 4's (its time was clamped there): c:2 deleted; a moment before, tx 1's.
        assert on_etcd.namespace("cities").read(["c:1", "c:2"], at=T0 + 1) == ReadResult(
            [Record("c:1", 11, 2, False, False, None, None, None, None)], 4)
        assert on_etcd.namespace("cities").read(["c:1", "c:2"], at=T0 + 1 - 1e-6).records == [
            Record("c:1", 1, 1, False, False, None, None, None, None), Record("c:2", 2, 1, False, False, None, None,
                                                                                None, None)]
        assert on_etcd.namespace("cities").read(["c:1"], at=T0 - 1) == ReadResult([], 0)
        bad = [_error_of(call) for call in _bad_time_calls(on_lmdb)]
        assert [_error_of(call) for call in _bad_time_calls(on_etcd)] == bad
        assert [code["code"] for _, code in bad].count("INVALID_PARAMETERS") == len(bad) - 3  # 3 key errors
        assert bad[6][1]["message"] == "give tx or at, not both"
        assert on_etcd.latest_tx == 5 + bulk  # nothing written by a read or a refusal


@pytest.mark.long
def test_tx_at_on_etcd_bisects_three_sealed_segments_as_lmdb_answers(url: str, tmp_path: Path) -> None:
    bulk = 2 * SEGMENT + 8  # txs in three sealed segments: ~525 etcd writes, ~10 s
    edges = [1, 2, SEGMENT - 1, SEGMENT, SEGMENT + 1, SEGMENT + 2, 2 * SEGMENT, 2 * SEGMENT + 1, 5 + bulk]
    on_etcd, on_lmdb, _ = _tx_at_on_both(url, tmp_path / "lmdb", bulk, edges)
    with on_etcd, on_lmdb:
        for p in _probes(on_lmdb, [SEGMENT, SEGMENT + 1, 2 * SEGMENT + 1]):
            assert _reads_at(on_etcd, p) == _reads_at(on_lmdb, p), p


def test_get_tx_at_and_a_read_at_a_time_over_http_on_etcd_answer_as_on_lmdb(url: str, tmp_path: Path) -> None:
    clock = Clock()
    answers = []
    for data in (url, str(tmp_path / "lmdb")):
        clock.now = T0
        app = create_app(data, store_options={"clock": clock})
        try:
            client = Client(app)
            for step, value in ((0, 1), (1, 2), (-5, 3)):  # the third tx's time is clamped to the second's
                clock.now += step
                assert client.request("POST", "/v4/storage/a/write", json=[{"key": "k", "value": value}]).status == 200
            out = []
            for when in ("2027-01-15T08:00:00Z", "2027-01-15T08:00:01Z", "2027-01-15T08:00:00.999999Z",
                         "2027-01-15T09:00:01+01:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"):
                response = client.request("GET", "/v4/tx", query={"at": when})
                body = response.json()
                del body["duration"]
                read = client.request("POST", "/v4/storage/a/read", json={"keys": ["k"], "at": when})
                out.append((response.status, body, read.status, read.json()["data"], read.json()["tx"]))
            both = client.request("POST", "/v4/storage/a/read", json={"keys": ["k"], "at": "x", "tx": 1})
            out.append((both.status, both.json()["code"], both.json()["errors"]))
            answers.append(out)
        finally:
            app.close()
    assert answers[0] == answers[1]
    assert [(tx, time) for _, body, _, _, tx in answers[0][:-1] for time in [body["time"]]] == [
        (1, "2027-01-15T08:00:00Z"), (3, "2027-01-15T08:00:01Z"), (1, "2027-01-15T08:00:00Z"),
        (3, "2027-01-15T08:00:01Z"), (0, None), (3, "2027-01-15T08:00:01Z")]
    assert answers[0][1][3] == [{"key": "k", "value": 3, "tx": 3, "binary": False}]
    assert answers[0][-1][:2] == (400, "INVALID_PARAMETERS")


def test_reopening_the_url_finds_the_same_store(on_etcd: Store, url: str) -> None:
    tx = on_etcd.namespace("a").put({"k": 1})
    with Store.open(url) as again:
        assert (again.latest_tx, again.namespace("a").get("k")) == (tx, on_etcd.namespace("a").get("k"))
        assert repr(again) == f"EtcdStore({url!r})" and again.path == url


def test_every_public_member_of_the_lmdb_store_exists_on_etcd() -> None:
    from engine.etcd.namespace import EtcdNamespace

    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Store) <= public(EtcdStore)
    assert public(Namespace) - {"name"} <= public(EtcdNamespace)
    assert public(Transaction) <= public(EtcdTransaction)


def test_on_etcd_every_server_process_runs_the_expiry_sweep_without_a_lock_file(on_etcd: Store, url: str) -> None:
    leader = LifecycleLeader(on_etcd, url, None, expire_every=60)
    assert leader.lock_path is None and not leader.leading
    assert leader._try_lock() and leader.leading  # no lock to take: concurrent sweeps record each expiry once
    leader._release()
    assert not leader.leading


def _unsupported(store: Store, path: Path) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("commit_parked", lambda: store.commit_parked([object()])),  # type: ignore[list-item]
    ]


def test_each_unsupported_operation_raises_not_supported_and_changes_nothing(on_etcd: Store, tmp_path: Path) -> None:
    on_etcd.namespace("a").put({"k": 1})
    for operation, call in _unsupported(on_etcd, tmp_path):
        with pytest.raises(errors.NotSupported) as raised:
            call()
        assert raised.value.to_dict() == {
            "code": "NOT_SUPPORTED", "operation": operation, "backend": "etcd",
            "message": f"{operation} is not supported on the etcd backend yet; it needs the LMDB backend "
                       "(a store opened on a directory)"}
    assert on_etcd.latest_tx == 1 and [n.name for n in on_etcd.namespaces()] == ["a"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("url", "why"), [
    ("etcd://", "it names no host"),
    ("etcd:///p", "it names no host"),
    ("etcd://h1:2379", "it names no store prefix after the hosts (etcd://h1:2379/strata)"),
    ("etcd://h1:2379/", "it names no store prefix after the hosts (etcd://h1:2379/strata)"),
    ("etcd://h1:99999/p", "the port of 'h1:99999' must be a number from 1 to 65535"),
    ("etcd://h1:x/p", "the port of 'h1:x' must be a number from 1 to 65535"),
    ("etcd://h1:0/p", "the port of 'h1:0' must be a number from 1 to 65535"),
    ("etcd://h1:2379,,h2/p", "it names an empty host"),
    ("etcd://h 1/p", "'h 1' is not a host or host:port"),
    ("etcd://h1/p#x", "it has a fragment; an etcd store URL takes none"),
    ("etcd:/h1/p", "it does not start with etcd://"),
    ("etcd://h1/a b", "an etcd store prefix is 1-128 characters of A-Z a-z 0-9 . _ - in components separated by "
                      "'/', not 'a b'"),
])
def test_a_bad_url_is_invalid_parameters_saying_why(url: str, why: str) -> None:
    with pytest.raises(errors.InvalidParameters) as raised:
        Store.open(url)
    assert raised.value.message == (f"{url!r} is not an etcd store URL: {why}; the form is "
                                    "etcd://HOST:PORT,HOST:PORT,.../PREFIX")
    assert raised.value.details == {"parameter": "path", "url": url}


_QUERY_FORM = "etcd://HOST:PORT,HOST:PORT,.../PREFIX?max_txn_ops=N&max_request_bytes=N (either or both)"


@pytest.mark.parametrize(("query", "why"), [
    ("", "its query has an empty parameter"),
    ("max_txn_ops=200&", "its query has an empty parameter"),
    ("x=1", "'x' is not a parameter of an etcd store URL (it takes max_txn_ops and max_request_bytes)"),
    ("max-txn-ops=200", "'max-txn-ops' is not a parameter of an etcd store URL (it takes max_txn_ops and "
                        "max_request_bytes)"),
    ("max_txn_ops=200&max_txn_ops=300", "it gives max_txn_ops twice"),
    ("max_txn_ops", "max_txn_ops must be a whole number of operations (the cluster's --max-txn-ops), not ''"),
    ("max_txn_ops=1e3", "max_txn_ops must be a whole number of operations (the cluster's --max-txn-ops), not '1e3'"),
    ("max_txn_ops=-200", "max_txn_ops must be a whole number of operations (the cluster's --max-txn-ops), not '-200'"),
    ("max_txn_ops=%C2%B2", "max_txn_ops must be a whole number of operations (the cluster's --max-txn-ops), "
                           "not '%C2%B2'"),
    ("max_txn_ops=\u00b2",  # a digit to str.isdigit, not a number
     "max_txn_ops must be a whole number of operations (the cluster's --max-txn-ops), not '\u00b2'"),
    ("max_request_bytes=10MiB", "max_request_bytes must be a whole number of bytes (the cluster's "
                                "--max-request-bytes), not '10MiB'"),
    ("max_txn_ops=125", "max_txn_ops must be from 126 to 2147483647, not 125: a store needs 126 operations in one "
                        "txn (an expiry sweep of 24 keys in as many namespaces)"),
    ("max_txn_ops=2147483648", "max_txn_ops must be from 126 to 2147483647, not 2147483648: a store needs 126 "
                               "operations in one txn (an expiry sweep of 24 keys in as many namespaces)"),
    ("max_request_bytes=1048575", "max_request_bytes must be from 1048576 to 2147483647, not 1048575: a store "
                                  "needs 1048576 bytes in one request (a chain seal of 4,096 txs)"),
])
def test_a_bad_limit_in_the_query_is_invalid_parameters_saying_why(query: str, why: str) -> None:
    url = f"etcd://127.0.0.1:{free_port()}/p?{query}"  # refused before anything is contacted
    with pytest.raises(errors.InvalidParameters) as raised:
        Store.open(url)
    assert raised.value.message == f"{url!r} is not an etcd store URL: {why}; the form is {_QUERY_FORM}"
    assert raised.value.details == {"parameter": "path", "url": url}


def test_a_url_names_members_and_prefix() -> None:
    parsed = EtcdUrl.parse("etcd://h1,10.0.0.2:2380,[::1]:32379/team/store-1")
    assert parsed == EtcdUrl(("http://h1:2379", "http://10.0.0.2:2380", "http://[::1]:32379"), "team/store-1")
    assert str(parsed) == "etcd://h1:2379,10.0.0.2:2380,[::1]:32379/team/store-1"
    assert parsed.limits == EtcdLimits(128, 1572864)


@pytest.mark.parametrize(("query", "limits", "canonical"), [
    ("max_txn_ops=1024&max_request_bytes=10485760", EtcdLimits(1024, 10485760),
     "?max_txn_ops=1024&max_request_bytes=10485760"),
    ("max_request_bytes=10485760&max_txn_ops=1024", EtcdLimits(1024, 10485760),
     "?max_txn_ops=1024&max_request_bytes=10485760"),
    ("max_txn_ops=126", EtcdLimits(126, 1572864), "?max_txn_ops=126"),
    ("max_request_bytes=1048576", EtcdLimits(128, 1048576), "?max_request_bytes=1048576"),
    ("max_txn_ops=128&max_request_bytes=1572864", EtcdLimits(128, 1572864), ""),  # etcd's defaults, said
    ("max_txn_ops=0000200", EtcdLimits(200, 1572864), "?max_txn_ops=200"),
])
def test_a_url_query_gives_the_clusters_limits(query: str, limits: EtcdLimits, canonical: str) -> None:
    parsed = EtcdUrl.parse(f"etcd://h1,h2/team/store-1?{query}")
    assert parsed == EtcdUrl(("http://h1:2379", "http://h2:2379"), "team/store-1", limits)
    assert str(parsed) == "etcd://h1:2379,h2:2379/team/store-1" + canonical
    assert EtcdUrl.parse(str(parsed)) == parsed


def test_an_unreachable_cluster_is_storage_unavailable_naming_the_url() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(errors.StorageUnavailable) as raised:
        EtcdStore.open(f"etcd://127.0.0.1:{port}/p", retry_timeout=0.2)
    assert raised.value.message.startswith(f"cannot open the store etcd://127.0.0.1:{port}/p: ")
    assert raised.value.details["url"] == f"etcd://127.0.0.1:{port}/p"
    assert [e["endpoint"] for e in raised.value.details["endpoints"]] == [f"http://127.0.0.1:{port}"]


def test_a_closed_store_raises_store_closed(url: str) -> None:
    store = Store.open(url)
    ns = store.namespace("a")
    store.close()
    store.close()
    for call in (lambda: store.latest_tx, lambda: ns.put({"k": 1}), lambda: ns.get("k"), store.namespaces):
        with pytest.raises(errors.StoreClosed):
            call()


# -- strata serve --data etcd://... -------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd_server(etcd_cluster: EtcdCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("serve")
    server = start_server(tmp, "--data", etcd_cluster.store_url("serve"), "--backup-dir", str(tmp / "backups"))
    yield server
    stop_server(server.proc)


def test_strata_serve_on_etcd_writes_reads_backs_up_and_follows(etcd_server: LiveServer) -> None:
    status, _, body = etcd_server.request("POST", "/v4/storage/cities/write",
                                          json=[{"key": "c:1", "value": {"name": "Braavos"}}])
    assert (status, orjson.loads(body)["tx"]) == (200, 1)
    status, _, body = etcd_server.request("POST", "/v4/storage/cities/read", json={"keys": ["c:1", "c:2"]})
    answer = orjson.loads(body)
    assert (status, answer["data"], answer["tx"]) == (200, [{"key": "c:1", "value": {"name": "Braavos"}, "tx": 1,
                                                             "binary": False}], 1)
    status, _, body = etcd_server.request("GET", "/v4/tx/1")
    entry = orjson.loads(body)
    assert (status, len(entry["hash"]), entry["note"]) == (200, 64, None)
    status, _, body = etcd_server.request("POST", "/v4/admin/backup", json={"path": "b1"})  # into --backup-dir
    backup = orjson.loads(body)
    assert (status, backup["name"], backup["tx"], backup["hash"], Path(backup["path"]).name) == (
        201, "b1", 1, entry["hash"], "b1")
    with Store.open(backup["path"]) as copy:
        record = copy.namespace("cities").get("c:1")
        assert (tuple(copy.head()), record and record.value) == ((1, entry["hash"]), {"name": "Braavos"})
    status, _, body = etcd_server.request("GET", "/v4/head")
    status_p, _, proof = etcd_server.request("GET", "/v4/proof/inclusion?tx=1")
    leaf = bytes.fromhex(orjson.loads(proof)["leaf_hash"])
    assert (status, status_p, orjson.loads(body)["tx"], orjson.loads(body)["hash"], orjson.loads(body)["root"]) == (
        200, 200, 1, entry["hash"], leaf.hex())  # a tree of one leaf: its root is the leaf
    status, _, body = etcd_server.request("GET", "/v4/storage/cities/changes")
    assert (status, [(e["tx"], e["hash"]) for e in orjson.loads(body)["data"]]) == (200, [(1, entry["hash"])])
    status, _, body = etcd_server.request("GET", "/v4/verify")
    report = orjson.loads(body)
    assert (status, report["ok"], report["head_tx"], report["head_hash"]) == (200, True, 1, entry["hash"])
    feed = open_stream(etcd_server.port, "/v4/storage/cities/sse?start_tx=0")
    try:
        assert (feed.status, feed.next_event()["data"]["tx"]) == (200, 1)
        etcd_server.request("POST", "/v4/storage/cities/write", json=[{"key": "c:2", "value": 2}])
        event = feed.next_event()  # pushed by the worker's watch of the store
        assert (event["id"], event["data"]["operations"]) == (
            2, [{"key": "c:2", "op": "put", "value": 2, "binary": False}])
    finally:
        feed.close()
    events = open_stream(etcd_server.port, "/v4/stream/orders/sse?start_tx=0")
    try:
        status, _, body = etcd_server.request("POST", "/v4/stream/orders/write", json=[{"data": 1}, {"data": "two"}])
        assert (status, orjson.loads(body)["tx"]) == (200, 3)
        assert [(e["id"], e["data"]) for e in (events.next_event(), events.next_event())] == [
            ("3:0", {"tx": 3, "index": 0, "data": 1, "binary": False}),
            (3, {"tx": 3, "index": 1, "data": "two", "binary": False})]  # pushed by the worker's watch
    finally:
        events.close()
    # Sealed now (head seals what is not yet): the server's sealer writes nothing while later tests count revisions.
    status, _, body = etcd_server.request("GET", "/v4/head")
    assert (status, orjson.loads(body)["tx"]) == (200, 3)


@pytest.fixture(scope="module")
def etcd_app(etcd_cluster: EtcdCluster) -> Iterator[App]:
    app = create_app(etcd_cluster.store_url("routes"))
    yield app
    app.close()


SUPPORTED_ROUTES = [
    ("POST", "/v4/storage/a/write", {"json": [{"key": "k", "value": 1}]}, 200),
    ("POST", "/v4/storage/a/read", {"json": {"keys": ["k"]}}, 200),
    ("POST", "/v4/storage/a/scan", {"json": {}}, 200),
    ("GET", "/v4/storage/a/key", {"query": {"key": "k"}}, 200),
    ("HEAD", "/v4/storage/a/key", {"query": {"key": "k"}}, 200),
    ("POST", "/v4/storage/a/key", {"query": {"key": "k2"}, "json": 2}, 200),
    ("DELETE", "/v4/storage/a/key", {"query": {"key": "k2"}}, 200),
    ("POST", "/v4/storage/a/delete", {"json": {"keys": ["none"]}}, 200),
    ("GET", "/v4/storage/a/history", {"query": {"key": "k2"}}, 200),
    ("POST", "/v4/storage/a/diff", {"json": {"from_tx": 0, "to_tx": 3}}, 200),
    ("GET", "/v4/storage/a/changes", {}, 200),
    ("GET", "/v4/tx/1", {}, 200),
    ("GET", "/v4/head", {}, 200),
    ("GET", "/v4/tx", {"query": {"at": "2026-01-01T00:00:00Z"}}, 200),
    ("POST", "/v4/storage/a/read", {"json": {"keys": ["k"], "at": "2026-01-01T00:00:00Z"}}, 200),
    ("GET", "/v4/verify", {}, 200),
    ("POST", "/v4/storage/a/read", {"json": {"keys": ["k"], "proof": True}}, 200),
    ("GET", "/v4/proof/inclusion", {"query": {"tx": "1"}}, 200),
    ("GET", "/v4/proof/consistency", {"query": {"from": "1"}}, 200),
    ("GET", "/v4/namespace/storage", {}, 200),
    ("POST", "/v4/namespace/storage", {"json": {"namespace": "b"}}, 201),
    ("GET", "/v4/namespace/storage/a", {}, 200),
    ("DELETE", "/v4/namespace/storage/b", {}, 200),
    ("GET", "/v4/admin/compaction", {}, 200),
    ("POST", "/v4/admin/compact", {"json": {}}, 200),  # finishes nothing: a horizon needs a cluster of its own
    ("POST", "/v4/storage/a/revert", {"json": {"to_tx": 0, "dry_run": True}}, 200),
    ("GET", "/healthz", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("POST", "/v4/storage/a/write", {"json": [{"key": "k", "value": 3}], "headers": {"Idempotency-Key": "w-1"}}, 200),
    ("POST", "/v4/namespace/stream", {"json": {"namespace": "s"}}, 201),
    ("GET", "/v4/namespace/stream", {}, 200),
    ("POST", "/v4/stream/s/write", {"json": [{"data": "e"}]}, 200),
    ("GET", "/v4/stream/s", {}, 200),
    ("GET", "/v4/namespace/stream/s", {}, 200),
    ("DELETE", "/v4/namespace/stream/s", {}, 200),
]
UNSUPPORTED_ROUTES = [
    ("POST", "/v4/admin/backup", {"json": {"path": "b1"}}, "backup"),
]


def test_every_route_on_etcd_answers_or_is_501_not_supported(etcd_app: App) -> None:
    client = Client(etcd_app)
    for method, path, options, status in SUPPORTED_ROUTES:
        response = client.request(method, path, **options)
        assert (method, path, response.status) == (method, path, status), response.body
    latest = etcd_app.store.latest_tx
    for method, path, options, operation in UNSUPPORTED_ROUTES:
        response = client.request(method, path, **options)
        assert (method, path, response.status, response.headers["content-type"]) == (
            method, path, 501, "application/problem+json")
        problem = response.json()
        assert (problem["code"], problem["operation"], problem["backend"]) == ("NOT_SUPPORTED", operation, "etcd")
    assert problem["detail"] == ("backup over HTTP needs a backup directory: a store on etcd has no data directory to "
                                 "put backups beside; start strata serve with --backup-dir DIR (on several servers, a "
                                 "directory they share), or run strata backup")  # the only one left: no --backup-dir
    assert etcd_app.backup_dir is None
    assert etcd_app.store.latest_tx == latest
    # Everything sealed now (head seals what is not yet), so the store's background sealer has nothing
    # left to write while the module's other tests count their own revisions.
    assert etcd_app.store.head().tx == latest
    covered = {(m, p) for m, p, _, _ in SUPPORTED_ROUTES + UNSUPPORTED_ROUTES}
    templates = {(m, re.sub(r"\{\w+\}", "X", t)) for t, m, _, _ in TABLE if not t.startswith("/console")}
    assert {(m, re.sub(r"/v4/(storage|namespace/storage|namespace/stream|stream)/[a-z]+\b", r"/v4/\1/X",
                   re.sub(r"/v4/tx/1", "/v4/tx/X", p))) for m, p in covered} | {
        ("GET", "/v4/storage/X/sse"), ("GET", "/v4/stream/X/sse"), ("GET", "/openapi.json"),
        ("GET", "/v4/whoami")} == templates  # the SSE routes: in the live server test


def test_strata_serve_refuses_a_bad_etcd_url_in_one_line_even_with_retention(tmp_path: Path) -> None:
    from server.serve_config import ServeConfigError, check_etcd_store
    from tests.server.test_serve_config import refused, run_serve

    with pytest.raises(ServeConfigError) as raised:
        check_etcd_store("etcd://h1:99999/strata", None)
    assert str(raised.value) == ("--data etcd://h1:99999/strata: 'etcd://h1:99999/strata' is not an etcd store URL: "
                                 "the port of 'h1:99999' must be a number from 1 to 65535; the form is "
                                 "etcd://HOST:PORT,HOST:PORT,.../PREFIX")
    # One real `strata serve`: the check runs before the data directory would be made, and says why (a
    # retention policy is served on etcd too: the URL is what is refused).
    refused(run_serve(tmp_path, "--data", "etcd://h1:99999/strata", "--retain-txs", "10", "--port", str(free_port())),
            "--data etcd://h1:99999/strata: 'etcd://h1:99999/strata' is not an etcd store URL")
    assert list(tmp_path.iterdir()) == [tmp_path / "xdg"]  # no data directory, no lock file


def test_a_sweep_of_twenty_four_namespaces_fits_etcds_default_limits_and_takes_lmdbs_txs(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The most a write's sweep tx holds on either backend (engine.expiry.SWEEP_PER_WRITE), each key in a
    namespace of its own: the largest sweep txn a store sends, within etcd's default --max-txn-ops (128).
    70 expire in one microsecond, so the cut is by namespace number (names sort the other way), ranked on
    etcd from more namespaces than one txn reads. ``expire()`` takes 24 a tx here on both (LMDB's own
    1,000 is more than one etcd txn holds)."""
    monkeypatch.setattr(expiry, "SWEEP_PER_TX", 24)
    logs = []
    for location in (url, tmp_path / "lmdb"):
        clock = Clock()
        with Store.open(location, clock=clock) as store:
            for i in range(70):
                store.namespace(f"n{69 - i:02}").put({"k": i}, ttl=1)  # numbered n69, n68, ..., n00
            clock.now += 2
            assert store.namespace("w").put({"k": 1}) == 72
            assert store.expire() == 46
            logs.append([(e.tx, e.note, [(o.namespace, o.op) for o in e.operations], e.hash)
                         for e in store.changes(70)])
    assert logs[0] == logs[1]
    assert [(tx, note, len(ops)) for tx, note, ops, _ in logs[0]] == [
        (71, {"expired": True}, 24), (72, None, 1), (73, {"expired": True}, 24), (74, {"expired": True}, 22)]
    assert [ns for ns, _ in logs[0][0][2]] == [f"n{69 - i:02}" for i in range(24)]  # by namespace number
