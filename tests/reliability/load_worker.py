"""Child process for the concurrency test: a writer or a reader on a shared store, for a bounded time.

``python -m tests.reliability.load_worker ROLE STORE_DIR ID SECONDS MAP_SIZE FIXED_TX``; prints
one framed result at the end (see :mod:`tests.reliability.helpers`).

* ``writer``: 70% of its writes put ``w<ID>:<i>`` and ``w<ID>:last`` (a padded value, so the
  small map has to grow) in one tx, at least ``MIN_PUTS`` of them (past the time if need be);
  30% increment the shared counter with compare-and-set (read it, ``expect`` its tx, retry on
  CONFLICT). Reports every tx it got, the increments it made, and how many conflicts it retried.
* ``reader``: reads the preloaded keys and scans the preloaded namespace at ``FIXED_TX`` again and
  again (every few rounds slowly, pausing inside the scan across its 512-key chunk boundary, so
  map growth happens in the middle of it), and reads the latest counter. Reports how many reads
  it made and every read that differed from its first one, or went backwards.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from engine import Store, errors
from tests.reliability.helpers import frame

PRELOAD_NS, PRELOAD_KEYS, COUNTER = "pre", 1000, ("ctr", "n")
MAX_OPS = 100_000  # a bound on the loop besides the clock
# Padded puts each writer makes however slow the machine: 4 x 80 x ~5 KB outgrows the 1 MiB map the
# test opens the store with, so the map grows under the readers even when 4 s of load write less.
MIN_PUTS = 80


def writer(store: Store, ident: int, deadline: float) -> dict[str, Any]:
    rng = random.Random(ident)
    puts: list[tuple[int, int]] = []
    incs: list[int] = []
    conflicts = 0
    ns = store.namespace("w")
    counter = store.namespace(COUNTER[0])
    for i in range(MAX_OPS):
        if time.monotonic() > deadline and len(puts) >= MIN_PUTS:
            break
        if rng.random() < 0.7:
            value = {"w": ident, "i": i, "pad": "p" * rng.randrange(2000, 8000)}
            puts.append((ns.put({f"w{ident}:{i}": value, f"w{ident}:last": i}), i))
            continue
        for _ in range(10_000):
            rec = counter.get(COUNTER[1])
            try:
                with store.transaction() as t:
                    t.put(*COUNTER, (rec.value if rec else 0) + 1)
                    t.expect(*COUNTER, tx=rec.tx if rec else 0)
            except errors.Conflict:
                conflicts += 1
                continue
            incs.append(t.tx)
            break
    return {"puts": puts, "incs": incs, "conflicts": conflicts}


def snapshot(store: Store, tx: int, slow: bool) -> list[tuple[Any, ...]]:
    pre = store.namespace(PRELOAD_NS)
    out = [tuple(r) for r in pre.read([f"p{i}" for i in range(0, PRELOAD_KEYS, 7)], tx=tx).records]
    for n, r in enumerate(pre.scan(tx=tx)):
        if slow and 500 <= n < 530:
            time.sleep(0.002)
        out.append(tuple(r))
    return out


def reader(store: Store, ident: int, deadline: float, fixed_tx: int) -> dict[str, Any]:
    first = snapshot(store, fixed_tx, False)
    reads, bad, last_latest, last_count = 0, [], 0, 0
    counter = store.namespace(COUNTER[0])
    for i in range(MAX_OPS):
        if i and time.monotonic() > deadline:  # one read at least, however slow the machine
            break
        again = snapshot(store, fixed_tx, slow=i % 4 == 0)
        reads += 1
        if again != first:
            bad.append(f"read {i} at tx {fixed_tx} differs")
        rec = counter.get(COUNTER[1])
        latest = store.latest_tx
        count = rec.value if rec else 0
        if latest < last_latest or count < last_count:
            bad.append(f"went backwards: latest {last_latest} -> {latest}, counter {last_count} -> {count}")
        last_latest, last_count = latest, count
    return {"reads": reads, "bad": bad[:10], "first_len": len(first)}


def main() -> None:
    role, path, ident, seconds, map_size, fixed_tx = sys.argv[1:7]
    with Store.open(path, map_size=int(map_size)) as store:
        # Everyone opens first, then starts together: this test is about growth under load (a
        # process opening while another grows the map is tests/reliability/test_map_growth.py).
        sys.stdout.buffer.write(frame("ready"))
        sys.stdout.buffer.flush()
        sys.stdin.buffer.readline()
        deadline = time.monotonic() + float(seconds)
        if role == "writer":
            result = writer(store, int(ident), deadline)
        else:
            result = reader(store, int(ident), deadline, int(fixed_tx))
    sys.stdout.buffer.write(frame(result))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
