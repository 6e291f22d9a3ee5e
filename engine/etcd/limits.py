"""The etcd cluster's limits a store is told: ``--max-txn-ops`` and ``--max-request-bytes``.

etcd refuses a txn of more operations than its ``--max-txn-ops`` (128 by default) and a request of more
bytes than its ``--max-request-bytes`` (1.5 MiB), and exposes neither value through its API, so a store
cannot ask the cluster: it is told, by the query of its URL
(``etcd://h1:2379,h2:2379/PREFIX?max_txn_ops=1024&max_request_bytes=10485760``, :mod:`engine.etcd.url`),
and assumes etcd's defaults otherwise. Every size the store derives from them follows what it is told:
the writes it refuses before sending (``BATCH_TOO_LARGE``, ``VALUE_TOO_LARGE``: :mod:`engine.etcd.commit`),
how many keys one read txn ranges, the windows of the tx log, the chain's seals and compaction's txns.
A write's expiry sweep does not: it holds at most :data:`engine.expiry.SWEEP_PER_WRITE` entries on both
backends (so the same writes number their txs the same on LMDB and on any etcd cluster), and
:data:`MIN_TXN_OPS` is what such a sweep needs. An ``expire()`` tx holds as many entries as fit, up to
:data:`engine.expiry.SWEEP_PER_TX` (LMDB's 1,000).

A store told more than the cluster allows sends txns the cluster refuses: etcd's refusal maps to
``BATCH_TOO_LARGE`` (:mod:`engine.etcd.answers`), nothing is written. Told less, it refuses writes
the cluster would take.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import expiry
from .answers import DEFAULT_MAX_REQUEST_BYTES

#: etcd's default ``--max-txn-ops``.
DEFAULT_MAX_TXN_OPS = 128
#: Largest value either limit may be given (gRPC messages are at most 2 GiB - 1; a larger number is a typo).
MAX_LIMIT = 2**31 - 1
#: Smallest ``--max-request-bytes`` a store accepts: Strata's own txns, which no write's size bounds (a
#: chain seal of up to 4,096 txs, an expiry sweep of long keys), need a few hundred KiB.
MIN_REQUEST_BYTES = 1 << 20


def sweep_txn_ops(entries: int, namespaces: int) -> int:
    """etcd txn operations of an expiry sweep of ``entries`` index entries over ``namespaces`` namespaces:
    3 per entry (a delete and its marker, the index entry's delete; its compares fit beside them), 2 per
    namespace, and 6 for the tx's bookkeeping (:mod:`engine.etcd.sweep`)."""
    return 3 * entries + 2 * namespaces + 6


#: Smallest ``--max-txn-ops`` a store accepts: a write's sweep tx of the most entries it takes, each in a
#: namespace of its own (126 with 24 entries: etcd's default 128 holds it).
MIN_TXN_OPS = sweep_txn_ops(expiry.SWEEP_PER_WRITE, expiry.SWEEP_PER_WRITE)


@dataclass(frozen=True, slots=True)
class EtcdLimits:
    """The cluster's limits (its ``--max-txn-ops`` and ``--max-request-bytes``; etcd's defaults).

    Not checked here: :meth:`engine.etcd.url.EtcdUrl.parse` holds what a user gives to
    :data:`MIN_TXN_OPS` and :data:`MIN_REQUEST_BYTES`; lower values (tests' small clusters, through
    :class:`engine.etcd.storage.EtcdStorage` directly) work, with sweep txs cut to what fits."""

    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    #: The URL query parameter of each limit, the etcd flag it mirrors and its least value.
    PARAMETERS = (("max_txn_ops", "--max-txn-ops", MIN_TXN_OPS),
                  ("max_request_bytes", "--max-request-bytes", MIN_REQUEST_BYTES))

    @classmethod
    def of_query(cls, query: str) -> EtcdLimits:
        """The limits a URL's query names (``max_txn_ops=N&max_request_bytes=N``, either or both, in any
        order; the others etcd's defaults). ``ValueError`` saying what is wrong: an unknown or repeated
        parameter, a value that is not a decimal number, or one below the least a store works with or
        above :data:`MAX_LIMIT`."""
        known = {name: (flag, least) for name, flag, least in cls.PARAMETERS}
        given: dict[str, int] = {}
        for part in query.split("&"):
            name, equals, text = part.partition("=")
            if name not in known:
                choices = " and ".join(known)
                raise ValueError(f"{name!r} is not a parameter of an etcd store URL (it takes {choices})"
                                 if name else "its query has an empty parameter")
            if name in given:
                raise ValueError(f"it gives {name} twice")
            flag, least = known[name]
            if not equals or not text.isascii() or not text.isdigit():
                raise ValueError(f"{name} must be a whole number of {_unit(name)} (the cluster's {flag}), "
                                 f"not {text!r}")
            value = int(text)
            if not least <= value <= MAX_LIMIT:
                raise ValueError(f"{name} must be from {least} to {MAX_LIMIT}, not {value}: {_why(name)}")
            given[name] = value
        return cls(**given)

    def query(self) -> str:
        """The URL query naming the limits that are not etcd's defaults ("" when both are)."""
        default = EtcdLimits()
        parts = [f"{name}={getattr(self, name)}" for name, _, _ in self.PARAMETERS
                 if getattr(self, name) != getattr(default, name)]
        return "?" + "&".join(parts) if parts else ""


def _unit(name: str) -> str:
    return "operations" if name == "max_txn_ops" else "bytes"


def _why(name: str) -> str:
    if name == "max_txn_ops":
        return (f"a store needs {MIN_TXN_OPS} operations in one txn (an expiry sweep of "
                f"{expiry.SWEEP_PER_WRITE} keys in as many namespaces)")
    return f"a store needs {MIN_REQUEST_BYTES} bytes in one request (a chain seal of 4,096 txs)"
