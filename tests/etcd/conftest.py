"""Fixtures for the etcd client tests: a real 3-member etcd cluster on loopback per test module.

A module sets ``ETCD_ARGS`` (extra flags for every member, e.g. a lowered ``--max-request-bytes``) and
``MAX_REQUEST_BYTES`` (what the client is told) when it needs other limits. Without the ``etcd`` binary
the fixture raises ``EtcdMissing`` with the package to install: the tests error, they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.etcd import EtcdClient
from engine.etcd.answers import DEFAULT_MAX_REQUEST_BYTES
from tests.engine.clock import Clock

from .cluster import EtcdCluster


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("etcd"), 3, getattr(request.module, "ETCD_ARGS", ()))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def etcd(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest) -> Iterator[EtcdClient]:
    """A client of every member of the module's cluster."""
    limit = getattr(request.module, "MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)
    with EtcdClient(etcd_cluster.endpoints, max_request_bytes=limit) as client:
        yield client


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> bytes:
    """A key prefix of the test's own (the cluster is shared by the module's tests)."""
    return f"{request.node.name}/".encode()


@pytest.fixture
def clock() -> Clock:
    """The settable clock a test's stores read (tests/engine/clock.py): time moves when the test says."""
    return Clock()
