"""LMDB boundary: automatic map growth, disk-full errors, durability flags."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from engine import Store


def test_full_map_grows_without_the_user_noticing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, map_size=1 << 20) as store:
        ns = store.namespace("n")
        blob = b"x" * 200_000
        txs = [ns.put({f"k{i}": blob}) for i in range(40)]  # 8 MB into a 1 MiB map
        assert txs == list(range(1, 41))
        assert store.stats()["map_size"] >= 8 << 20
        assert all(ns.get(f"k{i}").value == blob for i in range(40))  # type: ignore[union-attr]


def test_growth_waits_for_readers_in_other_threads(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, map_size=1 << 20) as store:
        ns = store.namespace("n")
        ns.put({f"k{i}": i for i in range(100)})
        writer_done = threading.Event()
        failures: list[BaseException] = []
        rounds = [0]

        def reader() -> None:
            try:
                # Bounded: keep reading until the writer is done, but at least 5 rounds.
                while not writer_done.is_set() or rounds[0] < 5:
                    rounds[0] += 1
                    recs = ns.read([f"k{i}" for i in range(100)], tx=1).records
                    assert [r.value for r in recs] == list(range(100))
                    assert sum(1 for _ in ns.scan(tx=1)) == 100
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for i in range(30):
            ns.put({f"big{i}": b"y" * 100_000})
        writer_done.set()
        for t in threads:
            t.join(timeout=120)
        assert not failures
        assert store.stats()["map_size"] > 1 << 20


def test_disk_full_is_a_clear_error_and_the_store_survives(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.open(path, sync=False) as store:
        store.namespace("n").put({"kept": 1})
    size = (path / "data.mdb").stat().st_size
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size} + 65536, {size} + 65536))
        from engine import Store, errors
        store = Store.open({str(path)!r})
        try:
            store.namespace("n").put({{"big": b"z" * 4_000_000}})
        except errors.StorageFull as exc:
            print(exc.code)
        store.namespace("n").put({{"small": 2}})  # a write that fits still works
        print(store.namespace("n").get("kept").value, store.latest_tx)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["STORAGE_FULL", "1", "2"]
    with Store.open(path) as store:  # space is back: big writes resume
        assert store.namespace("n").put({"big": b"z" * 4_000_000}) == 3
        assert store.namespace("n").get("kept").value == 1  # type: ignore[union-attr]
