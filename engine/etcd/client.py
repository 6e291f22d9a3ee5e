"""An etcd v3 client for Strata: typed calls over etcd's own JSON gateway, with failover across members.

    client = EtcdClient(["http://h1:2379", "http://h2:2379", "http://h3:2379"])
    ok, revision, responses = client.txn([Compare(b"k", "MOD", "==", 0)], [Put(b"k", b"v")])
    client.range(b"p/", prefix_end(b"p/"), revision=revision).kvs

Why the gateway over plain HTTP (``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/kv/put``,
``/v3/kv/deleterange``, streamed ``/v3/watch``, ``/v3/maintenance/status``, ``/v3/kv/compaction``; keys
and values base64) through ``urllib3``, and not a gRPC client: ``etcd3`` 0.12 (2020, the usual choice)
fails to import with current protobuf; ``etcd3gw`` talks to one host with no failover; ``etcd-sdk-python``
drops the txn response header, which carries the revision Strata's tx number comes from. The gateway is
part of every etcd 3.4+ server (no extra process), speaks the same v3 API as gRPC, and ``urllib3`` is
already what Strata's HTTP client uses (pooled keep-alive connections, per-call timeouts).

Contracts: every call goes to one member and fails over to the others as :mod:`engine.etcd.transport`
says (reads retried anywhere; a write retried only when it certainly was not proposed, otherwise
``StorageUnavailable`` with ``outcome="unknown"``: use :func:`engine.etcd.once.commit_once` for writes
that must commit exactly once). etcd's refusals become Strata's engine errors as
:mod:`engine.etcd.answers` tabulates (``VALUE_TOO_LARGE``, ``BATCH_TOO_LARGE``, ``STORAGE_FULL``,
``TX_COMPACTED``, ``FUTURE_TX``, ...). Reads are linearizable unless ``serializable=True`` (then a
lagging member may answer from its own, older state). The client is thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import errors
from .answers import DEFAULT_MAX_REQUEST_BYTES, Context
from .kv import (
    Compare,
    DeleteRange,
    DeleteResult,
    KeyValue,
    Put,
    PutResult,
    Range,
    RangeResult,
    Request,
    Response,
    Status,
    TxnResult,
    compare_json,
    header_revision,
    kvs_of,
    request_json,
    response_of,
)
from .transport import Transport
from .watch import Watch

#: Keys per page when ``range`` pages through a large range.
PAGE_SIZE = 1000


class EtcdClient:
    """A client of one etcd cluster (its members' client URLs). ``max_request_bytes`` must be the cluster's
    ``--max-request-bytes`` (etcd's default 1.5 MiB): it tells a too-large value from a too-large batch."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        connect_timeout: float = 1.0,
        request_timeout: float = 5.0,
        retry_timeout: float = 10.0,
        pool_size: int = 32,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.transport = Transport(
            endpoints,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            retry_timeout=retry_timeout,
            pool_size=pool_size,
        )
        self.max_request_bytes = max_request_bytes

    @property
    def endpoints(self) -> list[str]:
        return self.transport.endpoints

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes and txns ---------------------------------------------------------------------------

    def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Request] = (),
        failure: Sequence[Request] = (),
    ) -> TxnResult:
        """Run ``success`` if every ``compare`` holds, else ``failure``, atomically at one revision.

        Returns ``(succeeded, revision, responses)``: ``revision`` is the txn's own when it wrote anything
        (puts and effective deletes of one txn share one revision), else the revision it read at."""
        body = {"compare": [compare_json(c) for c in compare], "success": [request_json(op) for op in success],
                "failure": [request_json(op) for op in failure]}
        write = any(not isinstance(op, Range) for op in success) or any(not isinstance(op, Range) for op in failure)

        def ctx() -> Context:  # only for a refusal (its pass over the operations is not made per txn)
            ops = [*success, *failure]
            return Context(max((op.revision for op in ops if isinstance(op, Range)), default=0),
                           [op for op in ops if isinstance(op, Put)], len(compare) + max(len(success), len(failure)),
                           self.max_request_bytes)

        answer = self.transport.call("/v3/kv/txn", body, write=write, ctx=ctx)
        rev = header_revision(answer)
        succeeded = bool(answer.get("succeeded", False))
        ran = success if succeeded else failure
        responses: list[Response] = []
        plain_put: PutResult | None = None  # every put's answer without prev_kv is this one (immutable)
        for r, op in zip(answer.get("responses", ()), ran, strict=True):
            put = r.get("response_put")
            if put is not None and not put.get("prev_kv"):
                plain_put = plain_put or PutResult(rev, None)
                responses.append(plain_put)
            else:  # a range at a past revision read that revision; the header tells the store's latest
                responses.append(response_of(r, op.revision if isinstance(op, Range) and op.revision else rev))
        return TxnResult(succeeded, rev, responses)

    def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> PutResult:
        """Write one key; its revision (and the previous version when ``prev_kv``)."""
        op = Put(key, value, lease, prev_kv)
        ctx = Context(0, [op], 1, self.max_request_bytes)
        answer = self.transport.call("/v3/kv/put", op.to_json(), write=True, ctx=ctx)
        prev = answer.get("prev_kv")
        return PutResult(header_revision(answer), KeyValue.from_json(prev) if prev else None)

    def delete_range(self, key: bytes, range_end: bytes | None = None, *, prev_kv: bool = False) -> DeleteResult:
        """Delete ``key`` or ``[key, range_end)``. Deleting nothing consumes no revision."""
        op = DeleteRange(key, range_end, prev_kv)
        answer = self.transport.call("/v3/kv/deleterange", op.to_json(), write=True)
        return DeleteResult(header_revision(answer), int(answer.get("deleted", 0)), kvs_of(answer, "prev_kvs"))

    # -- reads -------------------------------------------------------------------------------------

    def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        revision: int | None = None,
        *,
        limit: int | None = None,
        keys_only: bool = False,
        serializable: bool = False,
        page_size: int = PAGE_SIZE,
    ) -> RangeResult:
        """The key-values of ``key`` (or ``[key, range_end)``) at ``revision`` (None: the latest), in key
        order, at most ``limit`` of them (None: all).

        A large range is read in pages of ``page_size`` keys, every page at the revision of the first, so
        the answer is one consistent snapshot however many pages it took. ``more`` says keys were left out
        by ``limit``; ``total`` is how many keys the whole range holds."""
        if page_size < 1 or (limit is not None and limit < 0) or (revision is not None and revision < 0):
            raise errors.InvalidParameters("limit and revision must be >= 0, page_size >= 1")
        first = self._range_page(Range(key, range_end, revision or 0, self._page(limit, 0, page_size),
                                       keys_only, serializable=serializable))  # fmt: skip
        # Later pages read at the first page's revision: one snapshot however many pages.
        kvs, rev, total = first.kvs, revision or first.revision, first.total
        more = first.more
        while more and range_end is not None and (limit is None or len(kvs) < limit):
            page = self._range_page(Range(kvs[-1].key + b"\0", range_end, rev, self._page(limit, len(kvs), page_size),
                                          keys_only, serializable=serializable))  # fmt: skip
            kvs = kvs + page.kvs
            more = page.more
        return RangeResult(kvs, rev, more, total)

    @staticmethod
    def _page(limit: int | None, have: int, page_size: int) -> int:
        return page_size if limit is None else min(page_size, limit - have)

    def _range_page(self, op: Range) -> RangeResult:
        ctx = Context(op.revision, (), 1, self.max_request_bytes)
        answer = self.transport.call("/v3/kv/range", op.to_json(), write=False, ctx=ctx)
        read_at = op.revision or header_revision(answer)  # the header holds the latest, not the one read
        return RangeResult(kvs_of(answer), read_at, bool(answer.get("more", False)), int(answer.get("count", 0)))

    def watch(
        self,
        key: bytes,
        range_end: bytes | None = None,
        start_revision: int = 0,
        *,
        prev_kv: bool = False,
        idle_timeout: float | None = None,
    ) -> Watch:
        """Follow changes to ``key`` (or ``[key, range_end)``) from ``start_revision`` (0: from now on):
        an iterator of :class:`~engine.etcd.kv.Revision` (each write txn's events, in revision order) that
        resumes on another member after a dropped connection, from the revision after the last one it
        yielded. See :mod:`engine.etcd.watch`."""
        return Watch(self.transport, key, range_end, start_revision, prev_kv=prev_kv, idle_timeout=idle_timeout)

    # -- leases ------------------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds (etcd may round a small TTL up); its id. Takes no revision. A
        retry after a lost answer may grant a second lease, which expires unused."""
        return int(self.transport.call("/v3/lease/grant", {"TTL": ttl}, write=False)["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Renew ``lease``; the seconds it has left (0: it had expired or was revoked, and stays so)."""
        answer = self.transport.call("/v3/lease/keepalive", {"ID": str(lease)}, write=False)
        return int(answer.get("result", answer).get("TTL", 0))

    def lease_ttl(self, lease: int) -> int:
        """The seconds ``lease`` has left; -1 once it expired or was revoked."""
        return int(self.transport.call("/v3/lease/timetolive", {"ID": str(lease)}, write=False).get("TTL", -1))

    def lease_revoke(self, lease: int) -> None:
        """End ``lease`` now (attached keys would be deleted: Strata attaches none)."""
        self.transport.call("/v3/lease/revoke", {"ID": str(lease)}, write=False)

    # -- maintenance -------------------------------------------------------------------------------

    def status(self, endpoint: str | None = None) -> Status:
        """A member's status: ``endpoint``'s (no failover), or whichever member answers first."""
        if endpoint is not None:
            return Status.from_json(endpoint, self.transport.call_one(endpoint, "/v3/maintenance/status", {}))
        answer = self.transport.call("/v3/maintenance/status", {}, write=False)
        return Status.from_json(self.transport.current, answer)

    def compact(self, revision: int, *, physical: bool = True) -> None:
        """Drop every version older than ``revision`` that a later version replaced, cluster-wide; reads
        below ``revision`` then raise ``TX_COMPACTED``. ``physical``: return only once the members have
        removed them from disk. Compacting again at or below an earlier compaction raises TX_COMPACTED,
        above the latest revision FUTURE_TX."""
        body = {"revision": str(revision), "physical": physical}
        self.transport.call("/v3/kv/compaction", body, write=True, ctx=Context(revision))
