"""The sealer seat: which one of the store's processes runs the background sealer (an etcd lease and a
compare on ``P/sys/sealer``).

Every process that opens a store runs a :class:`~engine.etcd.sealer.Sealer`; without an election each
would read and hash every new tx, and all but one of their seals would lose the compare on the sealed
head. So a sealer first takes the seat: ``P/sys/sealer`` holds msgpack ``[holder, lease id]``. A process
takes the seat when the key is absent or its lease has expired (``timetolive`` says -1), with a
housekeeping txn guarded by the key's mod revision (two candidates: one wins); it grants itself a lease
of :data:`TTL` seconds first and renews it with keepalives. No key is attached to the lease: etcd would
delete it on expiry, a revision no housekeeping count knows of. A holder that stops renewing (it paused,
died, lost the cluster) loses the seat once its lease expires; one that closes revokes its lease, so
another takes over at its next look (every :data:`TTL` seconds).

**Fencing**: the holder's seals also compare ``mod_revision(P/sys/sealer)`` with the revision at which it
took the seat (:attr:`Seat.fence`), so a holder replaced while it paused cannot seal: the compare fails
and it steps down. Seals are safe without the seat too (a reader seals what it asks for, guarded by the
sealed head's mod revision): the seat saves work, it is not what keeps the chain right.
"""

from __future__ import annotations

import contextlib
import os
import socket

import ormsgpack

from .. import errors
from .kv import Compare, Put
from .timeline import Timeline

#: Seconds of a holder's lease: how long a seat stays taken after its holder stops renewing, and how often
#: the others look. Not etcd's minimum (about 2 s): readers seal what they ask for themselves, so a slow
#: takeover only leaves txs nobody read unsealed a little longer, while a short lease hands the seat over
#: (a housekeeping txn each time) whenever a loaded machine stalls its holder for a moment.
TTL = 10


class Seat:
    """This process's claim on its store's sealer seat (see the module docstring). Not thread-safe: one
    sealer thread uses it."""

    def __init__(self, timeline: Timeline, ttl: int = TTL) -> None:
        self.timeline, self.ttl = timeline, ttl
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"
        self.lease = 0
        self.won_at = 0  # the seat key's mod revision when this process took it

    @property
    def fence(self) -> Compare:
        """The compare every seal of the holder carries: the seat is still the one it took."""
        return Compare(self.timeline.layout.sealer, "MOD", "==", self.won_at)

    def hold(self) -> bool:
        """Whether this process holds the seat now: renews its lease if it does, takes the seat if it is
        free. Costs one keepalive when held, a range and a ``timetolive`` when another holds it."""
        client = self.timeline.client
        if self.lease:
            if client.lease_keepalive(self.lease) > 0:
                return True
            self.lease = 0  # expired: whoever saw it so may have taken the seat
        found = client.range(self.timeline.layout.sealer)
        seen = 0
        if found.kvs:
            _, lease = ormsgpack.unpackb(found.kvs[0].value)
            if client.lease_ttl(lease) != -1:
                return False
            seen = found.kvs[0].mod_revision
        lease = client.lease_grant(self.ttl)
        try:
            self.won_at = self.timeline.housekeeping(
                [Put(self.timeline.layout.sealer, ormsgpack.packb([self.holder, lease]))],
                [Compare(self.timeline.layout.sealer, "MOD", "==", seen)])
        except errors.Conflict:  # another candidate took it first
            self._revoke(lease)
            return False
        self.lease = lease
        return True

    def step_down(self) -> None:
        """Give the seat up (revoking the lease, so another process can take it at once)."""
        if self.lease:
            self._revoke(self.lease)
            self.lease = 0

    def _revoke(self, lease: int) -> None:
        with contextlib.suppress(errors.EngineError):  # unrevoked, it expires within its TTL
            self.timeline.client.lease_revoke(lease)
