"""engine.etcd under faults, on a real 3-member etcd cluster: lost answers, killed members, a killed
leader under 16 writers.

What must hold: a write whose answer is lost is reported as of unknown outcome (never as failed), and
``commit_once`` turns its retry into the tx that already committed; reads, writes and watches carry on
when the member in use is SIGKILLed, and the member catches up after a restart; under a leader kill
no acknowledged write is lost, none is committed twice, and the writes' revisions have no gap.
The heavy version (more writes, two leader kills, readers alongside) is ``-m long``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from engine import errors
from engine.etcd import EtcdClient, Put, Range, commit_once, prefix_end

from .cluster import EtcdCluster, Member
from .lossy_proxy import AnswerDroppingProxy


def latest(client: EtcdClient) -> int:
    return client.range(b"\0").revision


@pytest.fixture
def proxy(etcd_cluster: EtcdCluster) -> Iterator[AnswerDroppingProxy]:
    p = AnswerDroppingProxy(etcd_cluster.endpoints[0])
    yield p
    p.close()


def test_a_lost_answer_is_unknown_and_commit_once_returns_the_tx_that_committed(
    etcd_cluster: EtcdCluster, proxy: AnswerDroppingProxy, prefix: bytes
) -> None:
    with EtcdClient([proxy.url, *etcd_cluster.endpoints]) as client:
        rev = latest(EtcdClient(etcd_cluster.endpoints))
        with pytest.raises(errors.StorageUnavailable) as lost:
            client.put(prefix + b"plain", b"v")
        assert lost.value.details["outcome"] == "unknown"
        assert lost.value.details["endpoints"] == [{"endpoint": proxy.url, "error": lost.value.details["endpoints"][0]
                                                    ["error"]}]  # fmt: skip
        assert lost.value.details["endpoints"][0]["error"].startswith("connection lost after sending")
        # It did commit: a blind retry would have written it a second time.
        assert client.range(prefix + b"plain").kvs[0].mod_revision == rev + 1
    with EtcdClient([proxy.url, *etcd_cluster.endpoints]) as client:
        req, data = prefix + b"req/1", prefix + b"data"
        commit = commit_once(client, req, b"request-1", (), [Put(data, b"v")])
        assert commit == (True, rev + 2, [], True)  # committed by the attempt whose answer was lost
        assert proxy.forwarded == 2
        assert latest(client) == rev + 2
        assert client.range(data).kvs[0].version == 1
        assert client.range(req).kvs[0].mod_revision == rev + 2


def test_reads_writes_and_a_watch_carry_on_when_the_member_in_use_is_killed(
    etcd_cluster: EtcdCluster, prefix: bytes
) -> None:
    victim = etcd_cluster.followers()[0]
    others = [m.client_url for m in etcd_cluster.members if m is not victim]
    with EtcdClient([victim.client_url, *others]) as client:
        first = client.put(prefix + b"k0", b"0").revision
        watch = client.watch(prefix, prefix_end(prefix), first)
        assert next(watch).revision == first and watch.endpoint == victim.client_url
        etcd_cluster.kill(victim)
        revs = [client.put(prefix + b"k%d" % i, b"%d" % i).revision for i in (1, 2, 3)]
        assert revs == [first + 1, first + 2, first + 3]
        assert client.transport.current != victim.client_url
        assert client.range(prefix, prefix_end(prefix)).revision == first + 3
        got = [next(watch) for _ in revs]
        assert [(r.revision, r.events[0].kv.key) for r in got] == [(first + i, prefix + b"k%d" % i) for i in (1, 2, 3)]
        assert watch.reconnects == 1 and watch.endpoint != victim.client_url
        watch.close()
    etcd_cluster.restart(victim)
    # The restarted member catches up and serves the writes it missed from its own state.
    with EtcdClient([victim.client_url]) as alone:
        assert alone.range(prefix + b"k3").kvs[0].mod_revision == first + 3  # linearizable: waits for catch-up
        assert alone.range(prefix, prefix_end(prefix), serializable=True).revision >= first + 3
        assert [kv.value for kv in alone.range(prefix, prefix_end(prefix), serializable=True).kvs] == [
            b"0", b"1", b"2", b"3"]


# -- commit exactly once under a leader kill -------------------------------------------------------


@dataclass
class Writers:
    """``threads`` writers committing numbered requests with commit_once, each retried with the same
    request id until acknowledged (what a client that must not lose a write does)."""

    client: EtcdClient
    prefix: bytes
    threads: int
    acked: dict[bytes, int] = field(default_factory=dict)  # request key -> revision
    replayed: int = 0
    unknown_retries: int = 0
    ack_times: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def run(self, n: int) -> None:
        j = 0
        while not self.stop.is_set():
            req, data = self.prefix + b"req/%02d/%05d" % (n, j), self.prefix + b"data/%02d/%05d" % (n, j)
            try:
                commit = commit_once(self.client, req, b"%d/%d" % (n, j), (), [Put(data, b"%d/%d" % (n, j))])
            except errors.StorageUnavailable:
                with self.changed:
                    self.unknown_retries += 1
                continue  # same request id again
            with self.changed:
                self.acked[req] = commit.revision
                self.replayed += commit.replayed
                self.ack_times.append(time.monotonic())
                self.changed.notify_all()
            j += 1

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.acked) >= count, timeout=120), len(self.acked)


def read_back(cluster: EtcdCluster, prefix: bytes, at_least: int) -> list[list[tuple[bytes, bytes, int, int]]]:
    """Every member's own copy (serializable reads) of the test's keys, once it has applied ``at_least``."""
    copies = []
    for m in cluster.members:
        with EtcdClient([m.client_url]) as alone:
            alone.range(b"\0")  # linearizable: returns once this member has caught up with the leader
            result = alone.range(prefix, prefix_end(prefix), serializable=True)
            assert result.revision >= at_least
            copies.append([(kv.key, kv.value, kv.mod_revision, kv.version) for kv in result.kvs])
    return copies


def leader_kill_under_writers(cluster: EtcdCluster, prefix: bytes, threads: int, per_phase: int, kills: int,
                              readers: int = 0) -> Writers:  # fmt: skip
    leader = cluster.leader()
    # The leader first: the writers' requests are in flight on it when it dies.
    endpoints = [leader.client_url, *(m.client_url for m in cluster.members if m is not leader)]
    # A 2 s read timeout: writes a follower forwarded to the dead leader are given up (outcome unknown,
    # retried safely by commit_once) long before etcd's own 7 s timeout.
    client = EtcdClient(endpoints, pool_size=threads + readers + 4, request_timeout=2.0)
    start = latest(client)
    writers = Writers(client, prefix, threads)
    reads: list[int] = []
    pool = [threading.Thread(target=writers.run, args=(n,)) for n in range(threads)]
    pool += [threading.Thread(target=read_loop, args=(client, prefix, writers.stop, reads)) for _ in range(readers)]
    for t in pool:
        t.start()
    killed: list[Member] = []
    try:
        for k in range(kills):
            writers.wait_for(per_phase * (2 * k + 1))
            victim = cluster.leader()
            cluster.kill(victim)
            killed.append(victim)
            writers.wait_for(per_phase * (2 * k + 2))
            cluster.restart(victim)
    finally:
        writers.stop.set()
        for t in pool:
            t.join(timeout=120)
        client.close()
    check_exactly_once(cluster, prefix, writers, start)
    stalls = sorted(b - a for a, b in zip(writers.ack_times, writers.ack_times[1:], strict=False))
    print(f"\n{len(writers.acked)} writes by {threads} threads, {kills} leader kill(s): {writers.replayed} replayed "
          f"retries, {writers.unknown_retries} unknown outcomes retried, {len(reads)} reads, longest write stall "
          f"{stalls[-1]:.2f} s")  # fmt: skip
    return writers


def read_loop(client: EtcdClient, prefix: bytes, stop: threading.Event, reads: list[int]) -> None:
    while not stop.is_set():
        try:
            reads.append(len(client.range(prefix + b"req/", prefix_end(prefix + b"req/"), keys_only=True).kvs))
        except errors.StorageUnavailable:
            continue


def check_exactly_once(cluster: EtcdCluster, prefix: bytes, writers: Writers, start: int) -> None:
    revisions = sorted(writers.acked.values())
    # Gapless and exactly once: the writers' txns are the only writes, one revision each.
    assert revisions == list(range(start + 1, start + 1 + len(revisions)))
    copies = read_back(cluster, prefix, revisions[-1])
    assert copies[0] == copies[1] == copies[2]  # the killed member(s) included, after restart
    reqs = {key: rev for key, _, rev, _ in copies[0] if key.startswith(prefix + b"req/")}
    data = {key: (value, rev, version) for key, value, rev, version in copies[0] if key.startswith(prefix + b"data/")}
    assert reqs == writers.acked  # every acknowledged write is there, at its acknowledged revision; no other
    for req, rev in writers.acked.items():
        n, j = req.removeprefix(prefix + b"req/").split(b"/")
        assert data[prefix + b"data/" + n + b"/" + j] == (b"%d/%d" % (int(n), int(j)), rev, 1)  # written once
    assert len(data) == len(reqs)


def test_commit_once_under_a_leader_kill_with_16_writers(etcd_cluster: EtcdCluster, prefix: bytes) -> None:
    writers = leader_kill_under_writers(etcd_cluster, prefix, threads=16, per_phase=48, kills=1)
    assert len(writers.acked) >= 96


@pytest.mark.long
def test_commit_once_under_two_leader_kills_with_16_writers_and_2_readers(
    etcd_cluster: EtcdCluster, prefix: bytes
) -> None:
    writers = leader_kill_under_writers(etcd_cluster, prefix, threads=16, per_phase=1500, kills=2, readers=2)
    assert len(writers.acked) >= 6000


def test_range_requests_are_retried_on_another_member_after_a_lost_answer(
    etcd_cluster: EtcdCluster, proxy: AnswerDroppingProxy, prefix: bytes
) -> None:
    with EtcdClient(etcd_cluster.endpoints) as direct:
        rev = direct.put(prefix + b"k", b"v").revision
    with EtcdClient([proxy.url, *etcd_cluster.endpoints]) as client:
        assert client.txn((), [Range(prefix + b"k")]).responses[0].kvs[0].mod_revision == rev  # type: ignore[union-attr]
        assert proxy.forwarded == 1 and client.transport.current == etcd_cluster.endpoints[0]


def test_a_watch_whose_stream_is_cut_resumes_on_another_member(
    etcd_cluster: EtcdCluster, proxy: AnswerDroppingProxy, prefix: bytes
) -> None:
    with EtcdClient(etcd_cluster.endpoints) as direct:
        first = direct.put(prefix + b"a", b"1").revision
        direct.put(prefix + b"b", b"2")
    with EtcdClient([proxy.url, *etcd_cluster.endpoints]) as client, client.watch(
        prefix, prefix_end(prefix), first
    ) as watch:
        assert [(r.revision, r.events[0].kv.value) for r in (next(watch), next(watch))] == [
            (first, b"1"), (first + 1, b"2")]
        assert watch.reconnects == 1 and watch.endpoint == etcd_cluster.endpoints[0]


def test_a_watch_whose_streams_are_cut_everywhere_fails_naming_the_endpoints(
    proxy: AnswerDroppingProxy, prefix: bytes
) -> None:
    with EtcdClient([proxy.url]) as client:
        watch = client.watch(prefix, prefix_end(prefix), 1)
        with pytest.raises(errors.StorageUnavailable) as cut:
            next(watch)
        assert cut.value.details == {"endpoints": [{"endpoint": proxy.url, "error": "the stream ended"}]}
        assert proxy.forwarded == 0 and list(watch) == []
