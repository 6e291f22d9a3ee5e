"""Tamper evidence on etcd: re-derive the hash chain from the tx log and the stored records, and compare
it with the sealed one (:mod:`engine.etcd.chain`).

:func:`verify` walks every tx from 1 to the latest, in windows of ``--max-txn-ops`` txs (a few txns
each). For each it reads the log entry and the records the tx says it wrote, exactly as the sealer does,
recomputes the hash from the previous one and, for a sealed tx, compares hash and clamped commit time
with the sealed ones; the sealed head must be the chain's link at its tx. Once the chain checks out, the
Merkle tree (:class:`engine.etcd.txtree.TreeCheck`, walked alongside) must too, as on LMDB: its first bad
entry is reported with the tx it ends at. The first tx that does not
match is reported in :class:`engine.verify.VerifyReport`, as on LMDB:

* a revision between two txs that holds no log entry (a write to the cluster that is not a Strata tx,
  e.g. someone's ``etcdctl put`` of a record or log entry) is named by the tx number it occupies: from
  there on the tx numbering, and so every later hash, is off;
* a rewritten log entry (read at the latest revision, as :meth:`tx_info` shows it) or sealed hash is
  named by its tx: its hash no longer matches the sealed one;
* a record a tx wrote that is gone (its key's version at the tx's revision is another tx's) names the tx.

The versions themselves cannot be rewritten in place through etcd's API (a revision's key-values are
immutable until etcd compacts them); what can be is the latest state, and every such write takes a
revision of its own: the first case. Txs not sealed yet are hashed but have nothing to be compared with
(the sealer hashes what it reads then): verify does not seal. With a receipt ``(tx, hash)``, the chain
must pass through it (``FUTURE_TX`` for a receipt above the latest tx).

**Below the compaction horizon** (:mod:`engine.etcd.compaction`), as on LMDB, the versions a tx wrote may
be gone, so only the log is checked: every entry present (through the compaction's index), sealed times
never decreasing, and the sealed hash taken as the chain's link to the next tx; data is re-hashed from
the horizon on. The report's ``horizon`` says where.
"""

from __future__ import annotations

from ..errors import FutureTx
from ..verify import VerifyReport
from . import compacted
from .chain import GENESIS_LINK, Broken, Link, materials, next_link, sealed_head, sealed_links
from .timeline import Timeline
from .txlog import records_at
from .txtree import TreeCheck


def verify(timeline: Timeline, receipt: tuple[int, str] | None = None) -> VerifyReport:
    """Check the whole chain (see the module docstring); ``receipt`` as for :meth:`engine.Store.verify`."""
    head, _ = sealed_head(timeline)  # read first: sealers go on meanwhile, but never past the latest tx
    tree = TreeCheck(timeline)  # the Merkle tree as far as it was sealed, checked once the chain checks out
    latest, _ = timeline.latest()
    if receipt is not None and receipt[0] > latest:
        raise FutureTx(f"the receipt names tx {receipt[0]}, but the latest committed tx is {latest}",
                       tx=receipt[0], latest_tx=latest, parameter="receipt")
    horizon = compacted.read_state(timeline.client, timeline.layout)[0].horizon
    prev = GENESIS_LINK
    try:
        if head.tx > latest:
            raise Broken(latest + 1, f"the sealed head names tx {head.tx}, above the latest tx {latest}")
        step = timeline.max_txn_ops
        for start in range(1, latest + 1, step):
            txs = range(start, min(start + step, latest + 1))
            sealed = sealed_links(timeline, start, min(txs[-1], head.tx))
            below = range(start, min(txs[-1] + 1, horizon))
            prev = _check_log(timeline, below, sealed, prev)
            for t in below:
                _check_receipt(receipt, t, sealed[t])
                tree.add_compacted(t)
            found, broken = materials(timeline, range(max(start, horizon), txs[-1] + 1))
            for m in found:
                link = next_link(prev, m)
                _check(link, sealed.get(m.tx), head)
                tree.add(m, link)
                prev = link
                _check_receipt(receipt, m.tx, link)
            if broken is not None:
                raise broken
    except Broken as bad:
        return VerifyReport(False, min(bad.tx - 1, latest), latest, prev.hash.hex(), bad.tx, bad.problem, horizon)
    tree_bad = tree.finish()
    if tree_bad is not None:  # as on LMDB: the chain's head hash, the tree's first bad tx
        return VerifyReport(False, tree_bad[0] - 1, latest, prev.hash.hex(), *tree_bad, horizon)
    return VerifyReport(True, latest, latest, prev.hash.hex(), horizon=horizon)


def _check_receipt(receipt: tuple[int, str] | None, tx: int, link: Link) -> None:
    if receipt is not None and receipt[0] == tx and link.hash.hex() != receipt[1].lower():
        raise Broken(tx, "the chain no longer matches the receipt: history up to it was rewritten")


def _check_log(timeline: Timeline, txs: range, sealed: dict[int, Link], prev: Link) -> Link:
    """Below the horizon: each tx of ``txs`` has its log entry and a sealed link whose time is not before
    the previous tx's; returns the last link (LMDB's check of the log alone)."""
    if not txs:
        return prev
    revisions = {timeline.revision_of(t): t for t in txs}
    logged = records_at(timeline, revisions)
    for revision, t in revisions.items():
        if revision not in logged:
            raise Broken(t, "the tx log has no entry for this tx")
        link = sealed.get(t)
        if link is None:
            raise Broken(t, "the sealed chain has no hash for this tx")
        if link.time_us < prev.time_us:
            raise Broken(t, "commit time is earlier than the previous tx's")
        prev = link
    return prev


def _check(link: Link, sealed: Link | None, head: Link) -> None:
    """``link`` (recomputed) matches what was sealed for its tx, if it was sealed."""
    tx = link.tx
    if tx <= head.tx:
        if sealed is None:
            raise Broken(tx, "the sealed chain has no hash for this tx")
        if sealed.hash != link.hash:
            raise Broken(tx, "the hash does not match the sealed one: a stored value, the tx log entry or the "
                             "sealed hash was changed")
        if sealed.time_us != link.time_us:
            raise Broken(tx, "the sealed commit time does not match the tx log entry")
    if tx == head.tx and head.hash != link.hash:
        raise Broken(tx, "the sealed head hash does not match the chain")
