"""Strata's etcd v3 client: typed calls over etcd's JSON gateway, failover across members, retry safety.

Modules, one concept each: :mod:`~engine.etcd.kv` (the messages), :mod:`~engine.etcd.answers` (etcd's
refusals as engine errors), :mod:`~engine.etcd.transport` (HTTP, failover, retries, timeouts),
:mod:`~engine.etcd.client` (the calls), :mod:`~engine.etcd.watch` (a resuming watch),
:mod:`~engine.etcd.once` (commit a txn exactly once under retries).
"""

from .client import EtcdClient
from .kv import (
    Compare,
    DeleteRange,
    DeleteResult,
    Event,
    KeyValue,
    Put,
    PutResult,
    Range,
    RangeResult,
    Revision,
    Status,
    TxnResult,
    prefix_end,
)
from .once import Commit, commit_once
from .watch import Watch

__all__ = [
    "Commit",
    "Compare",
    "DeleteRange",
    "DeleteResult",
    "EtcdClient",
    "Event",
    "KeyValue",
    "Put",
    "PutResult",
    "Range",
    "RangeResult",
    "Revision",
    "Status",
    "TxnResult",
    "Watch",
    "commit_once",
    "prefix_end",
]
