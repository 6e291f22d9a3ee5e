"""engine.etcd.EtcdClient against a real 3-member etcd 3.4 cluster: every call with exact results, and
etcd's refusals as Strata's engine errors.

The module's cluster runs with ``--max-request-bytes 65536`` (so an oversized request costs 64 KiB, not
1.5 MiB); the NOSPACE test starts its own one-member cluster with a 1 MiB quota. Revisions are global to
the cluster, so each test states them relative to the revision it starts at.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from engine import errors
from engine.etcd import (
    Compare,
    DeleteRange,
    DeleteResult,
    EtcdClient,
    Event,
    KeyValue,
    Put,
    PutResult,
    Range,
    RangeResult,
    Revision,
    commit_once,
    prefix_end,
)
from engine.etcd.answers import Context, Refusal, error_of

from .cluster import EtcdCluster, etcd_binary

MAX_REQUEST_BYTES = 65536
ETCD_ARGS = ["--max-request-bytes", str(MAX_REQUEST_BYTES)]


def latest(client: EtcdClient) -> int:
    return client.range(b"\0").revision


def test_the_etcd_server_binary_is_installed() -> None:
    # The etcd tests fail (they never skip) without it: .ci/run installs etcd-server.
    out = subprocess.run([etcd_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("etcd Version: 3.4.")


def test_etcd_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.etcd import cluster

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(cluster.os, "access", lambda path, mode: False)
    with pytest.raises(cluster.EtcdMissing, match=r"apt-get install etcd-server"):
        etcd_binary()


# -- put, range, delete --------------------------------------------------------------------------


def test_put_range_delete_exact(etcd: EtcdClient, prefix: bytes) -> None:
    rev = latest(etcd)
    assert etcd.put(prefix + b"a", b"1") == PutResult(rev + 1, None)
    assert etcd.put(prefix + b"a", b"2", prev_kv=True) == PutResult(
        rev + 2, KeyValue(prefix + b"a", b"1", rev + 1, rev + 1, 1))
    assert etcd.put(prefix + b"b", b"3") == PutResult(rev + 3, None)
    a2 = KeyValue(prefix + b"a", b"2", rev + 1, rev + 2, 2)
    assert etcd.range(prefix + b"a") == RangeResult([a2], rev + 3, False, 1)
    assert etcd.range(prefix + b"a", revision=rev + 1).kvs == [KeyValue(prefix + b"a", b"1", rev + 1, rev + 1, 1)]
    assert etcd.range(prefix + b"a", revision=rev).kvs == []
    assert etcd.range(prefix + b"zz") == RangeResult([], rev + 3, False, 0)
    assert etcd.delete_range(prefix, prefix_end(prefix), prev_kv=True) == DeleteResult(rev + 4, 2, [
        KeyValue(prefix + b"a", b"2", rev + 1, rev + 2, 2), KeyValue(prefix + b"b", b"3", rev + 3, rev + 3, 1)])
    # Deleting nothing takes no revision.
    assert etcd.delete_range(prefix + b"a") == DeleteResult(rev + 4, 0, [])
    assert etcd.range(prefix, prefix_end(prefix)) == RangeResult([], rev + 4, False, 0)
    assert [kv.value for kv in etcd.range(prefix, prefix_end(prefix), revision=rev + 3).kvs] == [b"2", b"3"]


def test_range_pages_at_one_revision_with_limit_and_keys_only(etcd: EtcdClient, prefix: bytes) -> None:
    rev = latest(etcd)
    etcd.txn((), [Put(prefix + b"%02d" % i, b"v%d" % i) for i in range(25)])
    etcd.txn((), [Put(prefix + b"%02d" % i, b"new") for i in range(0, 25, 2)])
    end = prefix_end(prefix)
    # Paged 7 by 7 at the first load's revision: the old values, one snapshot.
    old = etcd.range(prefix, end, revision=rev + 1, page_size=7)
    assert old == RangeResult([KeyValue(prefix + b"%02d" % i, b"v%d" % i, rev + 1, rev + 1, 1) for i in range(25)],
                              rev + 1, False, 25)  # fmt: skip
    now = etcd.range(prefix, end, page_size=4)
    assert (now.revision, now.more, now.total) == (rev + 2, False, 25)
    assert [kv.value for kv in now.kvs] == [b"new" if i % 2 == 0 else b"v%d" % i for i in range(25)]
    assert [kv.mod_revision for kv in now.kvs] == [rev + 2 if i % 2 == 0 else rev + 1 for i in range(25)]
    some = etcd.range(prefix, end, limit=10, page_size=3, keys_only=True)
    assert some == RangeResult([KeyValue(prefix + b"%02d" % i, b"", rev + 1, rev + 2 if i % 2 == 0 else rev + 1,
                                         2 if i % 2 == 0 else 1) for i in range(10)], rev + 2, True, 25)  # fmt: skip
    assert etcd.range(prefix, end, limit=25).more is False
    assert [kv.key for kv in etcd.range(prefix + b"23", b"\0").kvs][:2] == [prefix + b"23", prefix + b"24"]


# -- txn -----------------------------------------------------------------------------------------


def test_txn_is_one_revision_and_failed_or_read_only_txns_take_none(etcd: EtcdClient, prefix: bytes) -> None:
    a, b = prefix + b"a", prefix + b"b"
    rev = latest(etcd)
    ok = etcd.txn([Compare(a, "CREATE", "==", 0)], [Put(a, b"1"), Put(b, b"2"), DeleteRange(prefix + b"none")])
    assert ok == (True, rev + 1, [PutResult(rev + 1, None), PutResult(rev + 1, None), DeleteResult(rev + 1, 0, [])])
    failed = etcd.txn([Compare(a, "CREATE", "==", 0)], [Put(a, b"x")], [Range(a), Range(b, revision=rev)])
    assert failed == (False, rev + 1, [
        RangeResult([KeyValue(a, b"1", rev + 1, rev + 1, 1)], rev + 1, False, 1), RangeResult([], rev, False, 0)])
    assert etcd.txn((), [Range(a)]).revision == rev + 1
    assert etcd.txn((), [DeleteRange(prefix + b"none")]).revision == rev + 1
    assert latest(etcd) == rev + 1


@pytest.mark.parametrize(("compare", "holds"), [
    # After two puts the key has create revision 1, mod revision 2 (relative to the test's first put),
    # version 2, value b"two".
    (("MOD", "==", 2), True), (("MOD", "!=", 2), False), (("MOD", "<", 3), True), (("MOD", ">", 2), False),
    (("CREATE", "==", 1), True), (("VERSION", "==", 2), True), (("VERSION", ">", 2), False),
    (("VALUE", "==", b"two"), True), (("VALUE", "==", b"one"), False), (("VALUE", ">", b"a"), True),
], ids=str)
def test_txn_compare_targets(etcd: EtcdClient, prefix: bytes, compare: tuple, holds: bool) -> None:
    key = prefix + b"k"
    first = etcd.put(key, b"one").revision
    etcd.put(key, b"two")
    target, op, value = compare
    if isinstance(value, int):  # revisions in the table are relative to the first put (1 = first)
        value = value + first - 1 if target != "VERSION" else value
    assert etcd.txn([Compare(key, target, op, value)]).succeeded is holds


def test_a_missing_key_compares_as_revision_zero(etcd: EtcdClient, prefix: bytes) -> None:
    key = prefix + b"none"
    assert etcd.txn([Compare(key, "MOD", "==", 0), Compare(key, "VERSION", "==", 0)]).succeeded
    assert not etcd.txn([Compare(key, "VALUE", "==", b"")]).succeeded


# -- watch, status, compaction -------------------------------------------------------------------


def test_watch_yields_each_txn_as_one_revision_in_order(etcd: EtcdClient, prefix: bytes) -> None:
    a, b = prefix + b"a", prefix + b"b"
    rev = etcd.txn((), [Put(a, b"1"), Put(b, b"1")]).revision
    etcd.put(prefix + b"z/other", b"x")  # outside the watched range [a, b]
    etcd.delete_range(a)
    with etcd.watch(a, prefix + b"c", rev, prev_kv=True) as watch:
        assert next(watch) == Revision(rev, [Event("PUT", KeyValue(a, b"1", rev, rev, 1)),
                                             Event("PUT", KeyValue(b, b"1", rev, rev, 1))])  # fmt: skip
        assert next(watch) == Revision(rev + 2, [Event("DELETE", KeyValue(a, b"", 0, rev + 2, 0),
                                                       KeyValue(a, b"1", rev, rev, 1))])  # fmt: skip
        assert watch.next_revision == rev + 3
        etcd.put(b, b"2")
        assert next(watch) == Revision(rev + 3, [Event("PUT", KeyValue(b, b"2", rev, rev + 3, 2),
                                                       KeyValue(b, b"1", rev, rev, 1))])  # fmt: skip
        assert watch.reconnects == 0
    assert list(watch) == []  # closed


def test_watch_from_now_starts_when_watch_returns(etcd: EtcdClient, prefix: bytes) -> None:
    etcd.put(prefix + b"old", b"1")
    with etcd.watch(prefix, prefix_end(prefix)) as watch:
        rev = etcd.put(prefix + b"new", b"2").revision
        assert watch.next_revision == rev
        assert next(watch) == Revision(rev, [Event("PUT", KeyValue(prefix + b"new", b"2", rev, rev, 1))])


def test_status_of_every_member_agrees(etcd: EtcdClient, etcd_cluster: EtcdCluster) -> None:
    rev = etcd.put(b"status", b"1").revision
    statuses = [etcd.status(e) for e in etcd_cluster.endpoints]
    leader = etcd_cluster.leader()
    assert [s.endpoint for s in statuses] == etcd_cluster.endpoints
    assert {s.leader for s in statuses} == {statuses[etcd_cluster.members.index(leader)].member_id}
    assert len({s.member_id for s in statuses}) == 3
    assert all(s.version == "3.4.23" and s.errors == [] and s.db_size > 0 for s in statuses)
    assert etcd.status(etcd_cluster.endpoints[0]).revision >= rev
    assert etcd.status().endpoint == etcd.transport.current


def test_compaction_and_future_revisions_map_to_strata_errors(etcd: EtcdClient, prefix: bytes) -> None:
    key = prefix + b"k"
    revs = [etcd.put(key, b"%d" % i).revision for i in range(3)]
    with pytest.raises(errors.FutureTx) as future:
        etcd.range(key, revision=revs[-1] + 1000)
    assert future.value.details["revision"] == revs[-1] + 1000
    with pytest.raises(errors.FutureTx):
        etcd.compact(revs[-1] + 1000)
    etcd.compact(revs[1])
    with pytest.raises(errors.TxCompacted) as compacted:
        etcd.range(key, revision=revs[0])
    assert (compacted.value.code, compacted.value.details["revision"]) == ("TX_COMPACTED", revs[0])
    assert etcd.range(key, revision=revs[1]).kvs[0].value == b"1"  # the compaction revision itself stays
    with pytest.raises(errors.TxCompacted):
        etcd.compact(revs[0])
    with pytest.raises(errors.TxCompacted) as watch_compacted:
        next(etcd.watch(key, start_revision=revs[0]))
    assert watch_compacted.value.details == {"revision": revs[0], "compact_revision": revs[1]}
    assert [r.revision for r in _take(etcd.watch(key, start_revision=revs[1]), 2)] == revs[1:]


def _take(watch: object, n: int) -> list[Revision]:
    out = [next(watch) for _ in range(n)]  # type: ignore[call-overload]
    watch.close()  # type: ignore[attr-defined]
    return out


# -- limits and refusals -------------------------------------------------------------------------


def test_oversized_requests_map_to_value_and_batch_too_large(etcd: EtcdClient, prefix: bytes) -> None:
    rev = latest(etcd)
    key = prefix + b"big"
    with pytest.raises(errors.ValueTooLarge) as value:  # just over the limit: etcd's own check
        etcd.put(key, b"x" * MAX_REQUEST_BYTES)
    assert value.value.details == {"key": key.decode(), "size": len(key) + MAX_REQUEST_BYTES,
                                   "limit": MAX_REQUEST_BYTES, "etcd": "etcdserver: request is too large"}  # fmt: skip
    with pytest.raises(errors.ValueTooLarge) as huge:  # far over: gRPC's message limit answers first
        etcd.txn((), [Put(prefix + b"small", b"1"), Put(key, b"x" * (1 << 20))])
    assert huge.value.details["key"] == key.decode()
    assert huge.value.details["etcd"].startswith("grpc: received message larger than max")
    with pytest.raises(errors.BatchTooLarge) as batch:  # no value alone is too large: split the batch
        etcd.txn((), [Put(prefix + b"%03d" % i, b"x" * 1000) for i in range(100)])
    assert batch.value.details == {"ops": 100, "size": 100 * (len(prefix) + 3 + 1000), "limit": MAX_REQUEST_BYTES,
                                   "etcd": "etcdserver: request is too large"}  # fmt: skip
    with pytest.raises(errors.BatchTooLarge) as ops:  # etcd's --max-txn-ops (128 by default)
        etcd.txn((), [Put(prefix + b"%03d" % i, b"") for i in range(129)])
    assert ops.value.details == {"ops": 129, "etcd": "etcdserver: too many operations in txn request"}
    with pytest.raises(errors.DuplicateKey):
        etcd.txn((), [Put(key, b"1"), Put(key, b"2")])
    with pytest.raises(errors.InvalidKey):
        etcd.put(b"", b"1")
    assert latest(etcd) == rev  # nothing refused took a revision


def test_nospace_alarm_is_storage_full_and_commit_once_knows_whether_the_write_committed(tmp_path: Path) -> None:
    # etcd applies the write that crosses the quota and answers NOSPACE all the same (seen in about half
    # of the runs), so a refused write's outcome is unknown; commit_once reads its request key back.
    cluster = EtcdCluster.start(tmp_path, 1, ["--quota-backend-bytes", str(1 << 20)])
    try:
        with EtcdClient(cluster.endpoints) as client:
            first = latest(client) + 1
            revs = []
            with pytest.raises(errors.StorageFull) as full:
                for i in range(100):  # 100 KB each: the 1 MiB quota is reached after about ten
                    fill = [Put(b"fill/%03d" % i, b"x" * 100_000)]
                    revs.append(commit_once(client, b"req/%03d" % i, b"r%d" % i, (), fill).revision)
            assert full.value.details == {"etcd": "etcdserver: mvcc: database space exceeded", "outcome": "not_written",
                                          "request_key": f"req/{len(revs):03d}", "attempts": 1}  # fmt: skip
            assert 3 <= len(revs) < 100 and revs == list(range(first, first + len(revs)))
            assert "alarm:NOSPACE" in client.status().errors[0]
            # Every acknowledged write reads back, nothing else was written, reads still work.
            filled = client.range(b"fill/", prefix_end(b"fill/"), keys_only=True)
            assert [kv.mod_revision for kv in filled.kvs] == revs and filled.revision == revs[-1]
            assert client.range(b"req/%03d" % len(revs)).kvs == []
            with pytest.raises(errors.StorageFull) as plain:  # a plain write cannot know
                client.txn((), [Put(b"small", b"1")])
            assert plain.value.details["outcome"] == "unknown"
            assert latest(client) == revs[-1]
    finally:
        cluster.stop()


@pytest.fixture
def dead_endpoints() -> Iterator[list[str]]:
    """Three loopback addresses that refuse connections: bound (so no other process, such as another
    test's etcd, can take the port) but not listening."""
    sockets = [socket.socket() for _ in range(3)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()


def test_unreachable_cluster_names_every_endpoint_tried(dead_endpoints: list[str]) -> None:
    dead = dead_endpoints
    with EtcdClient(dead, retry_timeout=0.3) as client:
        with pytest.raises(errors.StorageUnavailable) as read:
            client.range(b"k")
        assert read.value.details == {"endpoints": [{"endpoint": e, "error": "cannot connect: Connection refused"}
                                                    for e in dead]}  # fmt: skip
        assert all(e in read.value.message for e in dead) and "unreachable" in read.value.message
        with pytest.raises(errors.StorageUnavailable) as write:
            client.put(b"k", b"v")
        assert write.value.details["outcome"] == "not_written"
        with pytest.raises(errors.StorageUnavailable) as once:
            commit_once(client, b"req/1", b"r")
        assert (once.value.details["outcome"], once.value.details["attempts"]) == ("not_written", 1)


def test_a_refused_endpoint_fails_over_to_the_next(
    etcd_cluster: EtcdCluster, prefix: bytes, dead_endpoints: list[str]
) -> None:
    dead = dead_endpoints[0]
    with EtcdClient([dead, *etcd_cluster.endpoints]) as client:
        assert client.transport.current == dead
        rev = client.put(prefix + b"k", b"v").revision
        assert client.transport.current == etcd_cluster.endpoints[0]
        assert client.range(prefix + b"k").kvs[0].mod_revision == rev


def test_bad_endpoints_and_arguments_are_invalid_parameters() -> None:
    with pytest.raises(errors.InvalidParameters):
        EtcdClient([])
    with pytest.raises(errors.InvalidParameters):
        EtcdClient(["https://h:2379"])
    with EtcdClient(["h1:2379", "http://h2"]) as client:
        assert client.endpoints == ["http://h1:2379", "http://h2:2379"]
        with pytest.raises(errors.InvalidParameters):
            client.range(b"k", revision=-1)
        with pytest.raises(errors.InvalidParameters):
            client.watch(b"k", start_revision=-1)
        with pytest.raises(errors.InvalidParameters):
            client.status("http://h3:2379")


# -- commit exactly once -------------------------------------------------------------------------


def test_commit_once_commits_then_replays_and_refuses_a_reused_request_key(etcd: EtcdClient, prefix: bytes) -> None:
    req, data = prefix + b"req/1", prefix + b"data"
    first = commit_once(etcd, req, b"request-1", [Compare(data, "CREATE", "==", 0)], [Put(data, b"v")])
    assert first == (True, first.revision, [PutResult(first.revision, None)], False)
    assert etcd.range(req).kvs == [KeyValue(req, b"request-1", first.revision, first.revision, 1)]
    again = commit_once(etcd, req, b"request-1", [Compare(data, "CREATE", "==", 0)], [Put(data, b"v")])
    assert again == (True, first.revision, [], True)
    with pytest.raises(errors.IdempotencyKeyReused) as reused:
        commit_once(etcd, req, b"request-2", (), [Put(data, b"w")])
    assert reused.value.details == {"request_key": req.decode(), "revision": first.revision}
    assert latest(etcd) == first.revision and etcd.range(data).kvs[0].version == 1


def test_commit_once_can_recognise_its_request_by_fingerprint(etcd: EtcdClient, prefix: bytes) -> None:
    # A record holding a commit time differs between two processes' attempts of one request: only its
    # fingerprint (here the part before "|") names the request.
    req, data = prefix + b"req/1", prefix + b"data"

    def same(stored: bytes) -> bool:
        return stored.split(b"|")[0] == b"fp-1"

    first = commit_once(etcd, req, b"fp-1|time=1", (), [Put(data, b"v")], same_request=same)
    assert commit_once(etcd, req, b"fp-1|time=2", (), [Put(data, b"v")], same_request=same) == (
        True, first.revision, [], True)
    with pytest.raises(errors.IdempotencyKeyReused):
        commit_once(etcd, req, b"fp-2|time=3", (), [Put(data, b"w")], same_request=lambda s: s.startswith(b"fp-2"))
    assert etcd.range(data).kvs[0].version == 1


def test_commit_once_with_a_failed_compare_writes_nothing(etcd: EtcdClient, prefix: bytes) -> None:
    req, data = prefix + b"req/1", prefix + b"data"
    rev = etcd.put(data, b"v").revision
    lost = commit_once(etcd, req, b"r", [Compare(data, "MOD", "==", rev - 1)], [Put(data, b"w")], [Range(data)])
    assert lost == (False, rev, [RangeResult([KeyValue(data, b"v", rev, rev, 1)], rev, False, 1)], False)
    assert etcd.range(req).kvs == [] and latest(etcd) == rev
    # The same request id may then commit (its earlier attempt did not).
    won = commit_once(etcd, req, b"r", [Compare(data, "MOD", "==", rev)], [Put(data, b"w")])
    assert won == (True, rev + 1, [PutResult(rev + 1, None)], False)



@pytest.mark.parametrize(("status", "message", "code", "expected"), [
    (503, "etcdserver: no leader", 14, Refusal("etcdserver: no leader", applied=False)),
    (503, "etcdserver: not leader", 14, Refusal("etcdserver: not leader", applied=False)),
    (503, "etcdserver: leader changed", 14, Refusal("etcdserver: leader changed", applied=False)),
    (429, "etcdserver: too many requests", 8, Refusal("etcdserver: too many requests", applied=False)),
    (500, "raft proposal dropped", 2, Refusal("raft proposal dropped", applied=False)),
    (503, "etcdserver: request timed out", 14, Refusal("etcdserver: request timed out", applied=None)),
    (503, "etcdserver: request timed out, possibly due to previous leader failure", 14,
     Refusal("etcdserver: request timed out, possibly due to previous leader failure", applied=None)),
    (503, "etcdserver: server stopped", 14, Refusal("etcdserver: server stopped", applied=None)),
    (504, "context deadline exceeded", 4, Refusal("context deadline exceeded", applied=None)),
    (500, "etcdserver: corrupt cluster", 15, errors.StorageError),
    (429, "etcdserver: mvcc: database space exceeded", 8, errors.StorageFull),
], ids=lambda v: str(v)[:40])
def test_every_etcd_answer_has_one_meaning(status: int, message: str, code: int, expected: object) -> None:
    # The gateway's own error bodies, as etcd 3.4 words them: which ones may be retried on another member
    # even for a write (applied=False: never proposed), which leave a write's outcome unknown (None).
    body = orjson.dumps({"error": message, "message": message, "code": code})
    answer = error_of(status, body, Context())
    if isinstance(expected, Refusal):
        assert answer == expected
    else:
        assert type(answer) is expected and answer.details["etcd"] == message  # type: ignore[union-attr]
    assert error_of(502, b"<html>Bad Gateway</html>", Context()) == Refusal(
        "HTTP 502: <html>Bad Gateway</html>", applied=None)
