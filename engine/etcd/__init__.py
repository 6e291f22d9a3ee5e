"""Strata's etcd v3 client: typed calls over etcd's JSON gateway, failover across members, retry safety.

Modules, one concept each: :mod:`~engine.etcd.kv` (the messages), :mod:`~engine.etcd.answers` (etcd's
refusals as engine errors), :mod:`~engine.etcd.transport` (HTTP, failover, retries, timeouts),
:mod:`~engine.etcd.client` (the calls), :mod:`~engine.etcd.watch` (a resuming watch),
:mod:`~engine.etcd.once` (commit a txn exactly once under retries).

A Strata store on etcd, over that client: :mod:`~engine.etcd.layout` (the keys under a store's prefix),
:mod:`~engine.etcd.timeline` (tx numbers from revisions), :mod:`~engine.etcd.commit` (one tx = one etcd
txn), :mod:`~engine.etcd.transaction` (multi-namespace txs), :mod:`~engine.etcd.reads` (reads and scans
at any tx), :mod:`~engine.etcd.expiry` (expiry, metadata, creation times: the read rule),
:mod:`~engine.etcd.history`, :mod:`~engine.etcd.diff`, :mod:`~engine.etcd.txlog` (log entries, the change
feed, waiting for a tx), :mod:`~engine.etcd.namespaces`, the hash chain (:mod:`~engine.etcd.chain`: computed
and sealed after the fact; :mod:`~engine.etcd.sealer`: the background sealer; :mod:`~engine.etcd.seat`: which
process seals; :mod:`~engine.etcd.verify`), the Merkle tree beside it (:mod:`~engine.etcd.txtree`, with
:mod:`~engine.etcd.proved_read`), and :mod:`~engine.etcd.storage` (``EtcdStorage``, all of it
behind the operations of :mod:`engine.storage_ops`). History export and import
(:func:`engine.transfer.export_history` / :func:`~engine.transfer.import_history` on a store on etcd):
:mod:`~engine.etcd.history_export` and :mod:`~engine.etcd.replay`. Revert: :mod:`~engine.etcd.revert`.
Compaction and retention: :mod:`~engine.etcd.compaction` (etcd's compaction at the horizon),
:mod:`~engine.etcd.compacted` (the horizon and what the compaction keeps beside etcd),
:mod:`~engine.etcd.retention`.

What users open: :mod:`~engine.etcd.url` (``etcd://`` store URLs, with the cluster's limits:
:mod:`~engine.etcd.limits`), :mod:`~engine.etcd.store` (``EtcdStore``,
what ``Store.open("etcd://...")`` returns: ``Store``'s API, ``NOT_SUPPORTED`` for what etcd lacks yet) and
:mod:`~engine.etcd.namespace` (``EtcdNamespace``, ``Namespace``'s API).
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
