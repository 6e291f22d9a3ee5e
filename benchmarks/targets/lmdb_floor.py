"""The floor: raw py-lmdb holding the same msgpack values, no versioning, no validation.

This is the cheapest possible way to keep these values on LMDB from Python: one key -> the newest
msgpack-encoded value (the bytes the engine stores). Every other embedded figure is reported as a
ratio to it, measured in the same run on the same data, so machine speed cancels out.

It decodes with ``ormsgpack.unpackb``, the decoder the engine reads with (engine/codec.py), so a
faster decoder is never mistaken for a faster engine. The floor of earlier runs decoded with
``msgpack.unpackb`` (about twice as slow); one secondary op, ``read100_latest_msgpack``, still
reads that way, for comparison with those runs.

Durability: two environments hold the same data. Reads and "no fsync" writes use one opened with
``sync=False`` (nothing is flushed). "fsync" writes use one opened with LMDB's defaults
(``sync=True, metasync=True``): each commit flushes its data pages, then its meta page, which is
what makes a commit survive a power loss. (A ``sync=False`` commit followed by ``env.sync(True)``
flushes once, and per LMDB's documentation a system crash can then corrupt the environment: that
is not a durable write to compare a durable Strata write with.)
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
        durable = workdir / "floor-durable"
        durable.mkdir(parents=True, exist_ok=True)
        self.durable_env = lmdb.open(str(durable), map_size=MAP_SIZE, max_dbs=1)  # LMDB's synced commits
        packb = msgpack.packb
        # Load in the same batches as the versioned targets, but only the newest version survives
        # (a plain KV store overwrites): write the last round only.
        latest = list(ds.latest())
        for env in (self.env, self.durable_env):
            for start in range(0, len(latest), ds.load_batch):
                with env.begin(write=True) as txn:
                    for k, v in latest[start : start + ds.load_batch]:
                        txn.put(k.encode(), packb(v))
            env.sync(True)

    def ops(self) -> list[Op]:
        env, unpackb, packb = self.env, decode, msgpack.packb
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

        def read100_msgpack() -> object:
            with env.begin() as txn:
                get, slow = txn.get, msgpack.unpackb
                return [slow(get(k)) for k in hundred()]

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

            target = self.durable_env if sync else env

            def put() -> object:
                with target.begin(write=True) as txn:
                    for k, v in batches():
                        txn.put(k, packb(v))
                return None

            dur = ("LMDB's default synced commit (data, then meta flushed)" if sync
                   else "no fsync (lost on OS crash)")
            return Op(f"put{size}_{'sync' if sync else 'nosync'}", size, put, dur)

        ops = [
            Op("get_latest", 1, get_latest),
            Op("read100_latest", 100, read100),
            Op("read100_latest_msgpack", 100, read100_msgpack,
               notes="decoded with msgpack.unpackb (earlier runs' floor)"),
            Op("scan1000", 1000, scan1000),
        ]
        ops += [make_put(n, s) for s in (True, False) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        for attr in ("env", "durable_env"):
            env = getattr(self, attr, None)
            if env is not None:
                env.close()
                setattr(self, attr, None)
