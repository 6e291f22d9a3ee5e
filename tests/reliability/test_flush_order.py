"""No durable write is acknowledged before a flush that makes it survive power loss, in the order
the system calls were made.

A SIGKILL cannot tell a flushed write from one the OS still holds, so this reads the order
itself: :mod:`tests.reliability.flush_order_writer` runs 8 threads writing durably (their writes
group) under ``strace -f -ttt -T``, which records every ``pwrite64``, ``fdatasync`` and ``write``
with its start time and duration. LMDB (``metasync=False``) writes a commit's meta page, the page
that makes the commit part of the file, with one ``pwrite`` to page 0 or 1 whose last 8 bytes
are the commit's txnid; the commit's data pages were flushed before it. So a commit survives
power loss once an ``fdatasync`` *started after* its meta ``pwrite`` returned has returned. The
test checks, for every acknowledgement ``ack <txnid>``: such an ``fdatasync`` returned before the
acknowledging ``write`` started. ``strace`` is required (``.ci/run`` installs it): without it the
test fails, it never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import REPO, child_env

THREADS, WRITES = 8, 40
META_END = 2 * 65536  # meta pages are pages 0 and 1: below twice the largest page size

_DONE = re.compile(r"^(\d+)\s+([\d.]+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)(?:\s.*)?\s<([\d.]+)>$")
_STARTED = re.compile(r"^(\d+)\s+([\d.]+)\s+(\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+)\s+([\d.]+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+)(?:\s.*)?\s<([\d.]+)>$")
_BUFFER = re.compile(r'^(\d+), "((?:\\x[0-9a-f]{2})*)"(\.\.\.)?, (\d+)(?:, (\d+))?$')


def calls(trace: str) -> list[tuple[str, float, float, str, int]]:
    """Every completed call in ``trace``: (name, start, end, arguments, result), times in seconds."""
    started: dict[str, tuple[str, float, str]] = {}
    done = []
    for line in trace.splitlines():
        if m := _DONE.match(line):
            pid, at, name, args, result, took = m.groups()
            done.append((name, float(at), float(at) + float(took), args, int(result)))
        elif m := _STARTED.match(line):
            pid, at, name, args = m.groups()
            started[pid] = (name, float(at), args)
        elif m := _RESUMED.match(line):
            pid, _, name, rest, result, took = m.groups()
            first, at, args = started.pop(pid)
            assert first == name, line
            done.append((name, at, at + float(took), args + rest, int(result)))
    return done


def buffer(args: str) -> tuple[int, bytes | None, int | None]:
    """(fd, bytes, offset) of a ``pwrite64``/``write`` call's arguments, as ``strace -xx`` prints
    them; bytes None when strace cut them short (longer than ``-s``: the 2-page write that creates
    the file, never a commit's meta page)."""
    m = _BUFFER.match(args)
    assert m is not None, args
    fd, escaped, cut, _, offset = m.groups()
    data = None if cut else bytes.fromhex(escaped.replace("\\x", ""))
    return int(fd), data, None if offset is None else int(offset)


@pytest.mark.parametrize("mode", ["threads", "parked"])
def test_every_acknowledged_write_was_flushed_after_its_meta_page_was_written(tmp_path: Path, mode: str) -> None:
    """``threads``: writer threads grouping through the engine's group commit; ``parked``: the
    server's write batcher, whose flush runs on its own thread while the next batch commits."""
    assert shutil.which("strace") is not None, "this test needs strace: apt-get install strace"
    out = tmp_path / "trace.txt"
    proc = subprocess.run(
        ["strace", "-f", "-ttt", "-T", "-xx", "-s", "256", "-e", "trace=pwrite64,fdatasync,write", "-o", str(out),
         sys.executable, "-m", "tests.reliability.flush_order_writer", str(tmp_path / "store"), str(THREADS),
         str(WRITES), *(["parked"] if mode == "parked" else [])],
        cwd=REPO, env=child_env(), capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.decode().splitlines()
    acked = [int(line.split()[1]) for line in lines if line.startswith("ack ")]
    assert len(acked) == THREADS * WRITES
    _, writes, commits, syncs = lines[-1].split()
    assert int(writes) == THREADS * WRITES + 1 and int(commits) < int(writes)  # groups formed
    assert int(syncs) == int(commits)  # one meta flush per durable commit

    meta_written: dict[int, float] = {}  # txnid -> when its meta page's pwrite returned
    flushes: list[tuple[float, float]] = []
    acks: dict[int, list[float]] = {}  # txnid -> when each acknowledgement's write started
    for name, start, end, args, result in calls(out.read_text()):
        if name == "fdatasync" and result == 0:
            flushes.append((start, end))
        elif name == "pwrite64":
            _, data, offset = buffer(args)
            if data is not None and offset is not None and offset < META_END and len(data) >= 8:
                meta_written[int.from_bytes(data[-8:], "little")] = end
        elif name == "write":
            fd, data, _ = buffer(args)
            if fd == 1 and data is not None and data.startswith(b"ack "):
                acks.setdefault(int(data.split()[1]), []).append(start)
    assert sorted(t for t, times in acks.items() for _ in times) == sorted(acked)
    for txnid, times in acks.items():
        assert txnid in meta_written, f"txnid {txnid} was acknowledged, but no meta page of it was written"
        written = meta_written[txnid]
        for acked_at in times:
            assert any(start >= written and end <= acked_at for start, end in flushes), (
                f"txnid {txnid}: acknowledged at {acked_at:.6f} with no flush between its meta page "
                f"({written:.6f}) and the acknowledgement")
