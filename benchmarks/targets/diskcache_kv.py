"""diskcache: the popular embedded key-value store for Python (SQLite underneath), not versioned.

It holds only the newest value of each key, like the floor, so it has no past-tx or history rows.
Values are stored as the same msgpack bytes (diskcache keeps ``bytes`` as a raw BLOB, no pickling), so
the codec cost matches the floor. Batches use ``cache.transact()`` so one batch = one SQLite
transaction, like one Strata ``put`` call.

Durability per row: diskcache's default is ``sqlite_synchronous=1`` (NORMAL in WAL mode: survives a
process crash, not power loss). "sync" rows switch it to 2 (FULL, fsync per commit) and "no sync" rows
to 0 (OFF), to match the other systems' two modes.
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from ..datasets import Dataset, Workload
from ..measure import Op
from . import Target, cycle, decode


class DiskcacheKV(Target):
    name = "diskcache"
    description = "diskcache.Cache get/set of msgpack bytes, newest value only"

    def skip_reason(self) -> str | None:
        try:
            import diskcache  # noqa: F401
        except ImportError:
            return "diskcache is not installed (pip install -e '.[bench]')"
        return None

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        import diskcache

        self.wl = wl
        # size_limit high enough that nothing is evicted; cull_limit=0 so no culling during timing.
        self.cache = diskcache.Cache(str(workdir / "diskcache"), size_limit=1 << 40, cull_limit=0, sqlite_synchronous=0)
        packb = msgpack.packb
        latest = list(ds.latest())
        for start in range(0, len(latest), ds.load_batch):
            with self.cache.transact():
                for k, v in latest[start : start + ds.load_batch]:
                    self.cache.set(k, packb(v))

    def ops(self) -> list[Op]:
        cache, unpackb, packb, wl = self.cache, decode, msgpack.packb, self.wl
        single, hundred = cycle(wl.singles), cycle(wl.hundreds)

        def read100() -> object:
            get = cache.get
            with cache.transact():  # one snapshot for the 100 reads, like one LMDB read txn
                return [unpackb(get(k)) for k in hundred()]

        def make_put(size: int, sync: bool) -> Op:
            batches = cycle(wl.write_batches(size, 4))
            level = 2 if sync else 0

            def put() -> object:
                if cache.sqlite_synchronous != level:
                    cache.reset("sqlite_synchronous", level)
                with cache.transact():
                    for k, v in batches():
                        cache.set(k, packb(v))
                return None

            dur = "sqlite_synchronous=FULL" if sync else "sqlite_synchronous=OFF (lost on OS crash)"
            return Op(f"put{size}_{'sync' if sync else 'nosync'}", size, put, dur)

        no_versions = "not versioned"
        ops = [
            Op("get_latest", 1, lambda: unpackb(cache.get(single()))),
            Op("read100_latest", 100, read100),
            Op("get_past", 1, None, skip=no_versions),
            Op("read100_past", 100, None, skip=no_versions),
            Op("scan1000", 1000, None, skip="no ordered scan API"),
        ]
        ops += [make_put(n, s) for s in (True, False) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        cache = getattr(self, "cache", None)
        if cache is not None:
            cache.close()
            self.cache = None
