"""Undoing a restore onto etcd that failed partway: the prefix empty again, or an exact statement of what stays.

A restore (:func:`engine.etcd.backup.restore`) writes one etcd txn per tx: etcd's limits on one txn
(``--max-txn-ops``, ``--max-request-bytes``) rule out writing a history in one, so a failure partway (the
cluster lost, a tx the cluster's limits refuse, a writer racing on the prefix, a restored head or chain that
does not check out) leaves the txs before it. The target held an empty store when the restore began (it
refuses anything else), so "as it was" is an empty prefix, which a later restore accepts: :func:`undo`
deletes every key under the prefix, in **one** etcd txn, and only what the restore wrote:

* the latest tx ``L`` of the target must be one of the backup's: ``L`` at most the backup's tx and the
  target's chain hash at ``L`` the backup's (the chain covers every tx up to ``L``, so all of them are the
  backup's);
* the delete's txn compares the mod revision of the log index key (every tx puts it) with the one read
  before that check, so a tx committed in between makes the txn fail and nothing is deleted.

Keys that are no tx's go with the rest (the sealed segments, the sealer seat, the namespaces and streams the
restore applied): the prefix held none when the restore began. The store must not be in use meanwhile (a
restore target is new: nothing should serve it yet). When the undo cannot run (the cluster is gone, a tx
that is not the backup's is in the store) the error says what stays instead and why, with the command that
empties the prefix: ``details["restore"]`` is ``"undone"`` or ``"left"``, with ``details["left_tx"]`` (the
store's latest tx; None when the cluster could not say).
"""

from __future__ import annotations

from typing import Any

from ..errors import EngineError
from .kv import Compare, DeleteRange, prefix_end


def undo(target: Any, copy: Any, url: str, exc: BaseException) -> BaseException:
    """Undo what a failed restore of ``copy`` (the backup, opened) wrote to ``target`` (an open
    :class:`~engine.etcd.store.EtcdStore` at ``url``, with no background sealer) and return the error to
    raise: ``exc``'s class, code and details, its message saying what became of the prefix (a non-engine
    ``exc`` is returned itself, with a note saying so)."""
    try:
        latest, why = _undo(target, copy)
    except EngineError as failed:  # the cluster is gone, most likely: nothing more can be known
        latest, why = None, f"the undo failed too: {failed.code}: {failed.message}"
    if why is None:
        said = f"the restore was undone: {url} is an empty store again"
        details: dict[str, Any] = {"restore": "undone"}
    else:
        prefix = target.url.prefix
        held = "an unknown number of txs" if latest is None else f"txs 1 to {latest}"
        said = (f"the restore could not be undone ({why}): {url} holds {held}; empty it with "
                f"etcdctl del --prefix '{prefix}/' before restoring again")
        details = {"restore": "left", "left_tx": latest}
    if not isinstance(exc, EngineError):
        exc.add_note(said)
        return exc
    return type(exc)(f"{exc.message}; {said}", **{**exc.details, **details})


def _undo(target: Any, copy: Any) -> tuple[int, str | None]:
    """``(latest tx, None)`` once the prefix is emptied, else ``(latest tx, why not)``."""
    storage = target.storage()
    timeline = storage.timeline
    layout = timeline.layout
    found = timeline.client.range(layout.log).kvs
    log_mod = found[0].mod_revision if found else 0
    latest = storage.latest_tx
    if latest > copy.latest_tx or (latest and storage.tx_info(latest).hash != copy.tx_info(latest).hash):
        return latest, f"tx {latest} of the store is not the backup's"
    start = layout.prefix + b"/"
    emptied = timeline.client.txn([Compare(layout.log, "MOD", "==", log_mod)], [DeleteRange(start, prefix_end(start))])
    if not emptied.succeeded:
        return storage.latest_tx, "another writer committed a tx to it during the undo"
    return latest, None
