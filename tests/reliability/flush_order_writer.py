"""Child process: threads writing durably through the backend, each write's LMDB txnid acknowledged.

``python -m tests.reliability.flush_order_writer STORE_DIR THREADS WRITES [parked]``. Each thread makes
``WRITES`` durable writes through :meth:`engine.backend.Backend.write` (so they group), each
putting one entry in the meta database and returning its transaction's LMDB id (a member's nested
transaction has its parent's id). Once the call returns, the thread writes ``ack <txnid>\\n`` to
stdout with one ``write()``: the acknowledgement :mod:`tests.reliability.test_flush_order` finds in
a system-call trace. At the end one line ``stats <writes> <commits> <syncs>``.
Nothing else is written to stdout.

With ``parked``, the server's :class:`server.write_batch.WriteBatcher` makes the writes instead:
THREADS clients, each handing it its next write once the previous one is acknowledged (as HTTP
clients in a closed loop do), every write parked in a greenlet and committed with the others
waiting, its flush on the batcher's flusher thread; the acknowledgement is written when the
batcher delivers the answer, as the server sends it.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from engine import Store
from server.write_batch import WriteBatcher


def parked(store: Store, clients: int, writes: int) -> None:
    """The writes made through a write batcher by ``clients`` closed-loop clients."""
    backend = store._backend
    left = dict.fromkeys(range(clients), writes)
    done = threading.Event()

    def answer(client: int, i: int) -> tuple[bytearray, bool]:
        def put(txn: Any, key: bytes = b"flush-order-%d-%d" % (client, i)) -> int:
            txn.put(key, b"x", db=backend.meta)
            return int(txn.id())
        return bytearray(b"ack %d\n" % backend.write(put, sync=True, cost=1)), True

    def deliver(answers: list[tuple[Any, bytearray, bool]]) -> None:
        for client, out, _ in answers:
            os.write(1, bytes(out))
            left[client] -= 1
            if left[client]:
                batcher.submit(client, left[client])
            elif not any(left.values()):
                done.set()

    batcher = WriteBatcher(lambda: store, answer, deliver)
    for client in range(clients):
        batcher.submit(client, writes)
    done.wait()
    batcher.stop()


def main() -> None:
    path, threads, writes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Store.open(path) as store:
        store.namespace("n").put({"seed": 0})  # the store's first commit, before the threads start
        if sys.argv[4:] == ["parked"]:
            parked(store, threads, writes)
            stats = store.stats()
            os.write(1, b"stats %d %d %d\n" % (stats["writes"], stats["commits"], stats["syncs"]))
            return
        backend = store._backend
        start = threading.Barrier(threads)

        def writer(t: int) -> None:
            start.wait()
            for i in range(writes):
                def put(txn: Any, key: bytes = b"flush-order-%d-%d" % (t, i)) -> int:
                    txn.put(key, b"x", db=backend.meta)
                    return int(txn.id())
                txnid = backend.write(put, sync=True, cost=1)
                os.write(1, b"ack %d\n" % txnid)

        pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        stats = store.stats()
        os.write(1, b"stats %d %d %d\n" % (stats["writes"], stats["commits"], stats["syncs"]))


if __name__ == "__main__":
    main()
