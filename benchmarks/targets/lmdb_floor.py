"""The floor: raw py-lmdb with msgpack values, no versioning, no validation.

This is the cheapest possible way to keep these values on LMDB from Python: one key -> the newest
msgpack-encoded value. Every other embedded figure is reported as a ratio to it, measured in the same
run on the same data, so machine speed cancels out.

It decodes with ``msgpack.unpackb``, as issue 2 defines the floor. The engine reads with ormsgpack,
about twice as fast, so one more op, ``read100_latest_fast``, reads the same 100 keys decoding with
ormsgpack: the report quotes the read target against it too, so the faster decoder is not mistaken
for a faster engine.

Durability: the environment is opened with ``sync=False`` and a "sync" write calls ``env.sync(True)``
after commit (the documented LMDB way to get an fsync'd commit on demand), so both durability modes
share one environment. ``metasync`` stays on, as in LMDB's default.
"""

from __future__ import annotations

from pathlib import Path

import lmdb
import msgpack

from ..datasets import Dataset, Workload
from ..measure import Op
from . import Target, cycle, decode

MAP_SIZE = 8 << 30  # sparse file: only what is written takes disk space


class LmdbFloor(Target):
    name = "lmdb floor"
    description = "raw py-lmdb txn.get/put + msgpack, newest value only"

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        self.wl = wl
        path = workdir / "floor"
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False, max_dbs=1)
        packb = msgpack.packb
        # Load in the same batches as the versioned targets, but only the newest version survives
        # (a plain KV store overwrites): write the last round only.
        latest = list(ds.latest())
        for start in range(0, len(latest), ds.load_batch):
            with self.env.begin(write=True) as txn:
                for k, v in latest[start : start + ds.load_batch]:
                    txn.put(k.encode(), packb(v))
        self.env.sync(True)

    def ops(self) -> list[Op]:
        env, unpackb, packb = self.env, msgpack.unpackb, msgpack.packb
        wl = self.wl
        single = cycle([k.encode() for k in wl.singles])
        hundred = cycle([[k.encode() for k in ks] for ks in wl.hundreds])
        starts = cycle([f"k:{s:014d}".encode() for s in wl.scan_starts])

        def get_latest() -> object:
            with env.begin() as txn:
                return unpackb(txn.get(single()))

        def read100() -> object:
            with env.begin() as txn:
                get = txn.get
                return [unpackb(get(k)) for k in hundred()]

        def read100_fast() -> object:
            with env.begin() as txn:
                get = txn.get
                return [decode(get(k)) for k in hundred()]

        def scan1000() -> object:
            out = []
            with env.begin() as txn, txn.cursor() as cur:
                if cur.set_range(starts()):
                    for k, v in cur:
                        out.append((k, unpackb(v)))
                        if len(out) == 1000:
                            break
            return out

        def make_put(size: int, sync: bool) -> Op:
            batches = cycle([[(k.encode(), v) for k, v in b] for b in wl.write_batches(size, 4)])

            def put() -> object:
                with env.begin(write=True) as txn:
                    for k, v in batches():
                        txn.put(k, packb(v))
                if sync:
                    env.sync(True)
                return None

            dur = "fsync per commit (env.sync)" if sync else "no fsync (lost on OS crash)"
            return Op(f"put{size}_{'sync' if sync else 'nosync'}", size, put, dur)

        ops = [
            Op("get_latest", 1, get_latest),
            Op("read100_latest", 100, read100),
            Op("read100_latest_fast", 100, read100_fast, notes="decoded with ormsgpack, as the engine decodes"),
            Op("scan1000", 1000, scan1000),
        ]
        ops += [make_put(n, s) for s in (True, False) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
            self.env = None
