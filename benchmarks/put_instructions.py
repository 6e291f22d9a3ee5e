"""Instructions per one-item put, Strata against the raw-LMDB floor: stable figures on a shared machine.

``python -m benchmarks.put_instructions [--puts N] [--keys K] [--system strata|floor|lmdb_tx] [--sync]``
runs under ``valgrind --tool=callgrind`` twice (N and 0 puts after the same setup) and prints the
difference divided by N: the instructions one put costs, start-up and loading cancelled out. Wall and
CPU times move 2-3x with the machine's load; instruction counts do not.

Systems: ``strata`` (``Namespace.put({key: value}, sync=False)`` on a store opened with the
default ``sync=True``, as the harness's put1 does with stores opened ``sync=False``: pass ``--nosync-env``),
``floor`` (:mod:`.targets.lmdb_floor`'s put: one ``txn.put`` of the msgpack value), ``lmdb_tx`` (raw
py-lmdb doing only the LMDB work of one Strata tx, nothing else), ``machinery`` (Strata's write
transaction machinery alone: ``Backend.write`` of a function that writes nothing), and
``lmdb_tx_meta1``, ``lmdb_tx_merged``, ``lmdb_tx_merged_time``: the LMDB work of one tx in layouts with
fewer B-trees per tx (see :func:`_lmdb_tx`), to measure what merging them would save.

Bulk puts (``put10k_big`` of :mod:`.puts`, counted): ``bulk_strata`` puts 10,000 items (the harness's
write batches) into a copy of a store of ``--bulk-keys`` keys x 10 versions (1,000,000 versions by
default), built once before the counted runs, outside valgrind; ``bulk_floor`` is the floor's put of
the same 10,000 values into an environment holding the same keys. Each put is counted per put of
10,000 items (``--puts`` defaults to 4 for them).

``--inner`` runs one measurement in this process (what the outer run starts under valgrind).
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import tempfile
from functools import partial
from typing import Any

from benchmarks.callgrind import instructions

KEYS = 1000
BULK_KEYS = 100_000
BULK_VERSIONS = 10
BULK_ITEMS = 10_000
#: The store the bulk systems copy (``--template``, built by :func:`_bulk_template`).
_template: list[str] = []


def _value(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user {i}", "tags": ["a", "b"], "score": i * 1.5}


def _strata(path: str, keys: int, sync_env: bool, sync: bool) -> Any:
    import engine

    store = engine.Store.open(path, sync=sync_env)
    ns = store.namespace("bench")
    for start in range(0, keys, 1000):
        ns.put({f"k:{i:014d}": _value(i) for i in range(start, min(keys, start + 1000))}, sync=False)
    items = [{f"k:{(i * 7919) % keys:014d}": _value(i)} for i in range(4)]

    def put(n: int) -> None:
        for i in range(n):
            ns.put(items[i & 3], sync=sync)
    return put


def _floor(path: str, keys: int, sync_env: bool, sync: bool) -> Any:
    import lmdb
    import msgpack

    env = lmdb.open(path, map_size=1 << 30, sync=sync or sync_env, max_dbs=1)
    with env.begin(write=True) as txn:
        for i in range(keys):
            txn.put(f"k:{i:014d}".encode(), msgpack.packb(_value(i)))
    packb = msgpack.packb
    items = [[(f"k:{(i * 7919) % keys:014d}".encode(), _value(i))] for i in range(4)]

    def put(n: int) -> None:
        for i in range(n):
            with env.begin(write=True) as txn:
                for k, v in items[i & 3]:
                    txn.put(k, packb(v))
    return put


def _lmdb_tx(path: str, keys: int, sync_env: bool, sync: bool, shape: str = "today") -> Any:
    """The LMDB calls of one Strata one-item put, with precomputed bytes (no Python work of Strata's).

    ``shape``: ``today`` (the layout of docs/design.md until 2026-12-01, when these figures were taken: a
    tx's runs in ``txops`` and a time index in ``txtime``, trees of their own; since, both are gone from the
    write path, see "The tx log" there), ``meta1`` (one ``meta`` entry per tx instead of
    four: latest tx, time, chain hash and index mark in one value), ``merged`` (``meta1``, and the tx log,
    its runs and the Merkle entry in one database keyed ``tx | kind``), ``merged_time`` (``merged``, and
    the time index in that database too, under a prefix that sorts after every tx)."""
    import lmdb

    names = ("versions", "meta", "namespaces", "txlog", "txops", "txtime", "expiry", "txtree", "latest")
    env = lmdb.open(path, map_size=1 << 30, sync=sync_env, metasync=False, max_dbs=16)
    dbs = {n: env.open_db(n.encode()) for n in names}
    u64 = struct.Struct(">Q").pack
    rec = b"\x84" + b"x" * 60
    with env.begin(write=True) as txn:
        for i in range(keys):
            kp = b"\0\0\0\1" + f"k:{i:014d}".encode() + b"\0\0"
            txn.put(kp + u64(2**64 - 2), rec, db=dbs["versions"])
            txn.put(kp, b"\x92" + rec + b"\xcf" + u64(1), db=dbs["latest"])
    state = {"tx": 1}
    one_meta = shape != "today"
    log, ops, tree = (dbs["txlog"],) * 3 if shape.startswith("merged") else (dbs["txlog"], dbs["txops"], dbs["txtree"])
    time_db = dbs["txlog"] if shape == "merged_time" else dbs["txtime"]
    time_prefix = b"\xff" if shape == "merged_time" else b""
    log_key = (lambda tx, kind: u64(tx) + kind) if shape.startswith("merged") else (lambda tx, kind: u64(tx))

    def put(n: int) -> None:
        for i in range(n):
            tx = state["tx"] = state["tx"] + 1
            kp = b"\0\0\0\1" + f"k:{(i * 7919) % keys:014d}".encode() + b"\0\0"
            with env.begin(write=True) as txn:
                meta = dbs["meta"]
                if one_meta:
                    txn.get(b"head", db=meta)
                else:
                    txn.get(b"latest_tx", db=meta)
                    txn.get(b"last_time_us", db=meta)
                cur = txn.cursor(db=dbs["expiry"])
                cur.first()
                txn.get(b"bench", db=dbs["namespaces"])
                if not one_meta:
                    txn.put(b"last_time_us", u64(tx), db=meta)
                txn.put(kp + u64(2**64 - 1 - tx), rec, db=dbs["versions"])
                txn.cursor(db=dbs["latest"]).replace(kp, b"\x92" + rec + b"\xcf" + u64(tx))
                txn.put(b"bench", b"\x97" + b"y" * 30, db=dbs["namespaces"])
                if not one_meta:
                    txn.get(b"head_hash", db=meta)
                txn.get(log_key(tx - 1, b"\x03"), db=tree)
                txn.put(log_key(tx, b"\x03"), b"z" * 32, db=tree)
                txn.put(log_key(tx, b"\x01"), b"w" * 50, db=log)
                txn.put(log_key(tx, b"\x02"), b"v" * 20, db=ops)
                txn.put(time_prefix + u64(tx) + u64(tx), b"", db=time_db)
                if one_meta:
                    txn.put(b"head", u64(tx) + u64(tx) + b"h" * 32 + u64(tx), db=meta)
                else:
                    txn.put(b"head_hash", b"h" * 32, db=meta)
                    txn.put(b"latest_tx", u64(tx), db=meta)
                    txn.put(b"indexed_tx", u64(tx), db=meta)
            if sync:
                env.sync(True)
    return put


def _strata_machinery(path: str, keys: int, sync_env: bool, sync: bool) -> Any:
    """Strata's write machinery alone: ``Backend.write`` of a function that writes nothing."""
    import engine

    backend = engine.Store.open(path, sync=sync_env)._backend

    def put(n: int) -> None:
        for _ in range(n):
            backend.write(_nothing, sync=sync, cost=1)
    return put


def _nothing(txn: Any) -> int:
    return 0


def _bulk_batches(keys: int) -> list[list[tuple[str, Any]]]:
    from .datasets import Dataset, Workload

    return Workload(Dataset(keys, BULK_VERSIONS)).write_batches(BULK_ITEMS, 4)


def _bulk_strata(path: str, keys: int, sync_env: bool, sync: bool) -> Any:
    """10,000-item puts into a copy of the template store (``keys`` x 10 versions)."""
    import engine

    os.rmdir(path)
    shutil.copytree(_template[0], path)
    ns = engine.Store.open(path, sync=sync_env).namespace("bench")
    batches = [dict(b) for b in _bulk_batches(keys)]

    def put(n: int) -> None:
        for i in range(n):
            ns.put(batches[i & 3], sync=sync)
    return put


def _bulk_floor(path: str, keys: int, sync_env: bool, sync: bool) -> Any:
    """The floor's 10,000-item put (benchmarks/puts.py's) into an environment of the same ``keys``."""
    import lmdb
    import msgpack

    from .datasets import Dataset

    env = lmdb.open(path, map_size=8 << 30, sync=sync or sync_env, max_dbs=1)
    latest = list(Dataset(keys, BULK_VERSIONS).latest())
    for start in range(0, len(latest), BULK_ITEMS):
        with env.begin(write=True) as txn:
            for k, v in latest[start:start + BULK_ITEMS]:
                txn.put(k.encode(), msgpack.packb(v))
    packb = msgpack.packb
    batches = [[(k.encode(), v) for k, v in b] for b in _bulk_batches(keys)]

    def put(n: int) -> None:
        for i in range(n):
            with env.begin(write=True) as txn:
                for k, v in batches[i & 3]:
                    txn.put(k, packb(v))
    return put


def _bulk_template(keys: int) -> str:
    """A store of ``keys`` x 10 versions loaded in the harness's batches, for the bulk systems to copy."""
    import engine

    from .datasets import Dataset

    path = tempfile.mkdtemp(prefix="strata-ipp-template-")
    store = engine.Store.open(path, sync=False)
    ns = store.namespace("bench")
    for _, batch in Dataset(keys, BULK_VERSIONS).batches():
        ns.put(dict(batch), sync=False)
    store.close()
    return path


SYSTEMS = {"strata": _strata, "floor": _floor, "lmdb_tx": _lmdb_tx, "machinery": _strata_machinery,
           **{f"lmdb_tx_{shape}": partial(_lmdb_tx, shape=shape) for shape in ("meta1", "merged", "merged_time")},
           "bulk_strata": _bulk_strata, "bulk_floor": _bulk_floor}


def inner(system: str, puts: int, keys: int, sync_env: bool, sync: bool) -> None:
    work = tempfile.mkdtemp(prefix="strata-ipp-")
    try:
        put = SYSTEMS[system](work, keys, sync_env, sync)
        put(2 if system.startswith("bulk") else 8)  # warm: first-call caches, imports
        put(puts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count(args: list[str]) -> int:
    return instructions("benchmarks.put_instructions", args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.put_instructions", description=__doc__.split("\n\n")[0])
    p.add_argument("--system", default="strata,floor", help=f"comma-separated, from {','.join(SYSTEMS)}")
    p.add_argument("--puts", type=int, help="puts counted (default 400, bulk systems 4)")
    p.add_argument("--keys", type=int, default=KEYS)
    p.add_argument("--sync", action="store_true", help="durable puts (the floor: LMDB's synced commit)")
    p.add_argument("--sync-env", action="store_true", help="open Strata's environment with sync=True")
    p.add_argument("--bulk-keys", type=int, default=BULK_KEYS, help="keys of the bulk systems' stores (x 10 versions)")
    p.add_argument("--template", help=argparse.SUPPRESS)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.inner:
        _template[:] = [a.template] if a.template else []
        for system in a.system.split(","):
            bulk = system.startswith("bulk")
            inner(system, a.puts if a.puts is not None else 4 if bulk else 400, a.bulk_keys if bulk else a.keys,
                  a.sync_env, a.sync)
        return 0
    figures = {}
    template = _bulk_template(a.bulk_keys) if "bulk_strata" in a.system.split(",") else None
    try:
        for system in a.system.split(","):
            bulk = system.startswith("bulk")
            puts = a.puts if a.puts is not None else 4 if bulk else 400
            common = ["--system", system, "--keys", str(a.keys), "--bulk-keys", str(a.bulk_keys)]
            common += ["--sync"] * a.sync + ["--sync-env"] * a.sync_env + ["--template", template] * bool(template)
            many, none = count([*common, "--puts", str(puts)]), count([*common, "--puts", "0"])
            figures[system] = (many - none) / puts
            print(f"{system:8} {figures[system]:12,.0f} instructions per put", flush=True)
    finally:
        if template is not None:
            shutil.rmtree(template, ignore_errors=True)
    for floor in ("floor", "bulk_floor"):
        if floor in figures:
            for system, n in figures.items():
                if system != floor and system.startswith("bulk") == floor.startswith("bulk"):
                    print(f"{system:8} x {floor}: {n / figures[floor]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
