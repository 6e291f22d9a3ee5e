"""Child process: apply write batches from stdin to a store, acknowledging each one on stdout.

``python -m tests.reliability.applier STORE_DIR MAP_SIZE``. Each stdin line is a framed batch
(see :mod:`tests.reliability.helpers`); after the engine call *returns*, the child writes
``["ack", tx, head_hash]`` (tx None for a batch refused with CONFLICT; head_hash None when the
engine has no ``head()``). It opens the store with ``sync=True`` (the default): an ack promises
durability. It stops at the end of stdin, or when the parent kills it.
"""

from __future__ import annotations

import sys

from engine import Store
from tests.reliability.helpers import apply_batch, frame, unframe


def main() -> None:
    path, map_size = sys.argv[1], int(sys.argv[2])
    out = sys.stdout.buffer
    out.write(frame(["open"]))
    out.flush()
    store = Store.open(path, map_size=map_size)
    head = getattr(store, "head", None)
    for line in sys.stdin.buffer:
        tx = apply_batch(store, unframe(line))
        out.write(frame(["ack", tx, head()[1] if head is not None and tx is not None else None]))
        out.flush()
    store.close()


if __name__ == "__main__":
    main()
