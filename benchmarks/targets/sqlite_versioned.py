"""SQLite versioned table: the common hand-rolled alternative to a versioned store.

Schema: ``kv(key TEXT, tx INTEGER, value BLOB, PRIMARY KEY (key, tx)) WITHOUT ROWID`` plus
``txlog(tx INTEGER PRIMARY KEY, ts REAL)`` for tx_at. Values are the same msgpack bytes as the floor,
so the value codec costs the same on both sides. WAL journal mode.

Durability per row: "sync" writes use ``synchronous=FULL`` (WAL fsync'd at every commit: survives power
loss, like Strata's sync=True); "no sync" writes use ``synchronous=OFF`` (like Strata's sync=False).

Reads at tx T use the obvious index query ``... WHERE key=? AND tx<=? ORDER BY tx DESC LIMIT 1``, one
statement per key (what a hand-rolled layer does); a scan at T uses SQLite's bare-column-with-max()
rule to pick each key's newest row <= T in one GROUP BY query.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgpack

from ..datasets import Dataset, Workload
from ..measure import Op
from . import Target, cycle, decode

GET_AT = "SELECT value FROM kv WHERE key = ? AND tx <= ? ORDER BY tx DESC LIMIT 1"
SCAN_AT = "SELECT key, max(tx), value FROM kv WHERE key >= ? AND tx <= ? GROUP BY key ORDER BY key LIMIT 1000"
HISTORY = "SELECT tx, value FROM kv WHERE key = ? ORDER BY tx DESC"
TX_AT = "SELECT max(tx) FROM txlog WHERE ts <= ?"
BIG_TX = 1 << 62  # "latest": larger than any tx


class SqliteVersioned(Target):
    name = "sqlite versioned"
    description = f"SQLite {sqlite3.sqlite_version} table (key, tx, value), WAL, one SELECT per key"

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        self.wl, self.ds = wl, ds
        path = workdir / "sqlite"
        path.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one write call = one transaction.
        self.db = sqlite3.connect(str(path / "kv.sqlite3"), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # bulk load; writes set their own mode below
        self.db.execute("CREATE TABLE kv (key TEXT, tx INTEGER, value BLOB, PRIMARY KEY (key, tx)) WITHOUT ROWID")
        self.db.execute("CREATE TABLE txlog (tx INTEGER PRIMARY KEY, ts REAL)")
        self.tx = 0
        for _, batch in ds.batches():
            self._write(batch)
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.load_ts = time.time()

    def _write(self, batch: list[tuple[str, object]]) -> int:
        packb, db = msgpack.packb, self.db
        tx = self.tx + 1
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO kv VALUES (?, ?, ?)", [(k, tx, packb(v)) for k, v in batch])
        db.execute("INSERT INTO txlog VALUES (?, ?)", (tx, time.time()))
        db.execute("COMMIT")
        self.tx = tx
        return tx

    def ops(self) -> list[Op]:
        db, unpackb, wl = self.db, decode, self.wl
        single, hundred = cycle(wl.singles), cycle(wl.hundreds)
        past = cycle(wl.past_txs)  # load tx t is SQLite tx t: same numbering as Strata
        starts = cycle([f"k:{s:014d}" for s in wl.scan_starts])
        ts_pool = cycle([self.load_ts - i * 1e-3 for i in range(64)])

        def get(tx: int) -> object:
            row = db.execute(GET_AT, (single(), tx)).fetchone()
            return unpackb(row[0])

        def read100(tx: int) -> object:
            ex = db.execute
            return [unpackb(ex(GET_AT, (k, tx)).fetchone()[0]) for k in hundred()]

        def scan(tx: int) -> object:
            return [(k, unpackb(v)) for k, _, v in db.execute(SCAN_AT, (starts(), tx))]

        def history() -> object:
            return [(t, unpackb(v)) for t, v in db.execute(HISTORY, (single(),))]

        def make_put(size: int, sync: bool) -> Op:
            batches = cycle(wl.write_batches(size, 4))
            mode = "FULL" if sync else "OFF"

            def put() -> object:
                db.execute(f"PRAGMA synchronous={mode}")
                return self._write(batches())

            dur = "synchronous=FULL (fsync per commit)" if sync else "synchronous=OFF (lost on OS crash)"
            return Op(f"put{size}_{'sync' if sync else 'nosync'}", size, put, dur)

        ops = [
            Op("get_latest", 1, lambda: get(BIG_TX)),
            Op("get_past", 1, lambda: get(past())),
            Op("read100_latest", 100, lambda: read100(BIG_TX)),
            Op("read100_past", 100, lambda: read100(past())),
            Op("scan1000", 1000, lambda: scan(BIG_TX)),
            Op("scan1000_past", 1000, lambda: scan(past())),
            Op("history", self.ds.versions, history, notes=f"{self.ds.versions} versions per key"),
            Op("tx_at", 1, lambda: db.execute(TX_AT, (ts_pool(),)).fetchone()),
        ]
        ops += [make_put(n, s) for s in (True, False) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None
