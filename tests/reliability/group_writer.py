"""Child process: many threads writing durably at once, so their writes commit in groups.

``python -m tests.reliability.group_writer STORE_DIR GENERATION THREADS``. Thread ``t``'s
``i``-th write is one tx over two namespaces (:func:`write_keys`), with ``sync=True``; every
seventh is a transaction whose ``expect`` fails (CONFLICT: it must roll back alone inside its
group). After the engine call *returns*, the thread writes one line
``["ack", t, i, tx, writes, commits]`` (tx None for the refused write; ``writes`` and ``commits``
are the backend's counters, so the parent can tell groups formed). Lines are single ``write()``
calls under a lock, shorter than PIPE_BUF: a kill never interleaves two. It writes until killed.
"""

from __future__ import annotations

import base64
import os
import sys
import threading

import msgpack

from engine import Store
from engine.errors import Conflict

SHARED = "shared"


def write_keys(generation: int, thread: int, index: int) -> dict[str, list[str]]:
    """The keys of one write, by namespace: two in the thread's namespace, one in the shared one."""
    base = f"g{generation}.{thread}.{index}"
    return {f"t{thread % 3}": [base + ".a", base + ".b"], SHARED: [base]}


def frame(obj: object) -> bytes:
    """:func:`tests.reliability.helpers.frame`, without importing the helpers' test machinery
    (hypothesis): this child starts once per kill, and its start-up is most of the test's time."""
    return base64.b64encode(msgpack.packb(obj, use_bin_type=True)) + b"\n"


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

    def writer(t: int) -> None:
        start.wait()
        i = 0
        while True:
            tx: int | None
            try:
                with store.transaction(note={"t": t, "i": i}) as txn:
                    if i % 7 == 6:
                        txn.expect(SHARED, "never-written", tx=1 << 40)
                    for namespace, keys in write_keys(generation, t, i).items():
                        for key in keys:
                            txn.put(namespace, key, [generation, t, i])
                tx = txn.tx
            except Conflict:
                tx = None
            say(["ack", t, i, tx, backend.writes, backend.commits])
            i += 1

    pool = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main()
