"""Child process: many threads writing durably at once, so their writes commit in groups.

``python -m tests.reliability.group_writer STORE_DIR GENERATION THREADS [parked]``. Thread ``t``'s
``i``-th write is one tx over two namespaces (:func:`write_keys`), with ``sync=True``; every
seventh is a transaction whose ``expect`` fails (CONFLICT: it must roll back alone inside its
group). After the engine call *returns*, the thread writes one line
``["ack", t, i, tx, writes, commits]`` (tx None for the refused write; ``writes`` and ``commits``
are the backend's counters, so the parent can tell groups formed). Lines are single ``write()``
calls under a lock, shorter than PIPE_BUF: a kill never interleaves two. It writes until killed.

With ``parked``, the same writes are made through the server's
:class:`server.write_batch.WriteBatcher` instead of threads: THREADS closed-loop clients, client
``t`` handing it its ``i+1``-th write once its ``i``-th is acknowledged; each write runs in a
greenlet, parks, commits with the others waiting, and its ack line is written when the batcher
delivers it (after its flush), as the server sends its answer.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
from collections.abc import Callable

import msgpack

from engine import Store
from engine.errors import Conflict
from server.write_batch import WriteBatcher

SHARED = "shared"


def write_keys(generation: int, thread: int, index: int) -> dict[str, list[str]]:
    """The keys of one write, by namespace: two in the thread's namespace, one in the shared one."""
    base = f"g{generation}.{thread}.{index}"
    return {f"t{thread % 3}": [base + ".a", base + ".b"], SHARED: [base]}


def frame(obj: object) -> bytes:
    """:func:`tests.reliability.helpers.frame`, without importing the helpers' test machinery
    (hypothesis): this child starts once per kill, and its start-up is most of the test's time."""
    return base64.b64encode(msgpack.packb(obj, use_bin_type=True)) + b"\n"


def parked(store: Store, clients: int, write: Callable[[int, int], int | None], out_lock: threading.Lock) -> None:
    """Make the writes through a write batcher for ``clients`` closed-loop clients, until killed."""
    backend = store._backend
    next_index = dict.fromkeys(range(clients), 1)

    def answer(t: int, i: int) -> tuple[bytearray, bool]:
        tx = write(t, i)
        return bytearray(frame(["ack", t, i, tx, backend.writes, backend.commits])), True

    def deliver(answers: list[tuple[int, bytearray, bool]]) -> None:
        for t, line, _ in answers:
            with out_lock:
                os.write(1, bytes(line))
            batcher.submit(t, next_index[t])
            next_index[t] += 1

    batcher = WriteBatcher(lambda: store, answer, deliver)
    for t in range(clients):
        batcher.submit(t, 0)
    threading.Event().wait()


def main() -> None:
    path, generation, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out_lock = threading.Lock()

    def say(obj: object) -> None:
        with out_lock:
            os.write(1, frame(obj))

    say(["open"])
    store = Store.open(path)
    backend = store._backend
    start = threading.Barrier(threads)

    def write(t: int, i: int) -> int | None:
        try:
            with store.transaction(note={"t": t, "i": i}) as txn:
                if i % 7 == 6:
                    txn.expect(SHARED, "never-written", tx=1 << 40)
                for namespace, keys in write_keys(generation, t, i).items():
                    for key in keys:
                        txn.put(namespace, key, [generation, t, i])
            return txn.tx
        except Conflict:
            return None

    if sys.argv[4:] == ["parked"]:
        parked(store, threads, write, out_lock)

    def writer(t: int) -> None:
        start.wait()
        i = 0
        while True:
            tx = write(t, i)
            say(["ack", t, i, tx, backend.writes, backend.commits])
            i += 1

    pool = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main()
