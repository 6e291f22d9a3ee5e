"""A Python client of the Strata HTTP server, with the engine's API.

    from server.client import connect
    with connect("http://127.0.0.1:8080") as store:      # instead of Store.open("data")
        tx = store.namespace("sample").put({"city:1": {"name": "Braavos"}})
        store.namespace("sample").read(["city:1"], tx=tx)

Same return types (:class:`~engine.records.Record`, :class:`~engine.records.ReadResult`,
:class:`~engine.history.Version`, ...) and the same exceptions (:mod:`engine.errors`, chosen by the
problem's ``code``). Modules, one concept each: :mod:`.transport` (the connection pool, timeouts and
retries), :mod:`.problems` (problems to exceptions), :mod:`.shapes` (JSON to engine types),
:mod:`.writes` (write bodies), :mod:`.store`, :mod:`.namespace`, :mod:`.pages` (paged scans),
:mod:`.transaction`, :mod:`.stream`, :mod:`.sse` (following a feed across reconnects) and
:mod:`.proofs` (Merkle proofs the client checks itself, and the head it trusts).
See ``docs/client.md``.
"""

from .namespace import RemoteNamespace
from .pages import RemoteScan
from .problems import ServerError, ServerUnavailable
from .proofs import Verifier
from .store import RemoteStore, connect
from .stream import RemoteStream
from .transaction import RemoteTransaction

__all__ = ["RemoteNamespace", "RemoteScan", "RemoteStore", "RemoteStream", "RemoteTransaction", "ServerError",
           "ServerUnavailable", "Verifier", "connect"]
