"""The lifecycle commands of ``strata``: ``backup``, ``restore``, ``export``, ``import``, ``compact``.

Registered in :data:`server.cli.COMMANDS` (each an ``add_<name>_arguments`` / ``cmd_<name>`` pair).
Like the audit commands they work on the store directly (``--data``, default ``./data``), beside a
running ``strata serve`` if there is one: LMDB lets many processes share a store, backups are hot
copies, and compaction works in short chunks that interleave with the server's writers.
``export``, ``import`` and ``compact`` also take ``--data etcd://HOST:PORT,.../PREFIX`` (a store on
etcd, see docs/scale-out.md).

Progress bars (tqdm, drawn on stderr, with throughput: ``keys/s``, ``tx/s``, ``MB/s``) appear on
anything that can take more than a moment, only when stderr is a terminal, and never with
``--quiet``. They go to stderr so that ``strata export --out - > file`` still shows one while the
data goes to stdout; a cron job or a pipe into a log gets none. A one-line summary goes to stdout
(to stderr for an export written to stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="./data", help="store directory (default ./data)")


def _open_store(args: argparse.Namespace, command: str) -> Any:
    from server import cli  # imported here: server.cli imports this module to register the commands

    return cli._open_store(args, command)


def _on_etcd(data: str) -> bool:
    """``--data`` names a store on etcd (``etcd://HOST:PORT,.../PREFIX``), not a directory."""
    return data.startswith("etcd://")


def _open_etcd(data: str) -> Any:
    from engine import Store

    return Store.open(data, sync=False)


def _engine_failed(command: str, exc: Exception) -> int:
    from server import cli

    return cli._engine_failed(command, exc)


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


class _Progress:
    """A tqdm bar fed by the engine's ``progress(done, total)`` callbacks (cumulative ``done``), or
    nothing when bars are off (``--quiet``, stderr not a terminal, or tqdm missing)."""

    def __init__(self, args: argparse.Namespace, unit: str, desc: str, total: int | None = None,
                 bytes_: bool = False) -> None:
        self.bar: Any = None
        if getattr(args, "quiet", False) or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ModuleNotFoundError:  # pragma: no cover - tqdm is a dependency
            return
        self.bar = tqdm(total=total, unit=unit, unit_scale=True, unit_divisor=1024 if bytes_ else 1000,
                        desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True)

    def __call__(self, done: int, total: int | None = None) -> None:
        bar = self.bar
        if bar is None:
            return
        if total is not None and bar.total != max(total, done):
            bar.total = max(total, done)
        if done > bar.n:
            bar.update(done - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _watch_size(progress: _Progress, folder: Path, pattern: str) -> Iterator[None]:
    """While the body runs, feed ``progress`` the size of the file matching ``folder/pattern``
    (the engine's temporary copy): LMDB's copy is one C call with no callback of its own."""
    if progress.bar is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            for file in folder.glob(pattern):
                with contextlib.suppress(OSError):
                    progress(file.stat().st_size)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


# -- backup and restore -------------------------------------------------------------------------


def add_backup_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", help="the new backup directory (must not exist, or be empty)")
    p.add_argument("--data", default="./data", help="store directory (default ./data), or "
                   "etcd://HOST:PORT,.../PREFIX for a store on etcd (its whole history, as an LMDB store)")
    _add_quiet(p)


def cmd_backup(args: argparse.Namespace) -> int:
    from engine import errors

    try:
        store = _open_store(args, "backup") if not _on_etcd(args.data) else _open_etcd(args.data)
    except errors.EngineError as exc:  # a bad etcd:// URL, an unreachable cluster
        return _engine_failed("backup", exc)
    if store is None:
        return 2
    dest = Path(args.dest).absolute()
    with store:
        used = None if _on_etcd(args.data) else store.stats().get("used_bytes")  # etcd's: the whole cluster's
        with _Progress(args, "B", "backup", used, bytes_=True) as progress, \
                _watch_size(progress, dest.parent, f".{dest.name}.partial-{os.getpid()}-*/data.mdb"):
            try:
                info = store.backup(dest)
            except errors.EngineError as exc:
                return _engine_failed("backup", exc)
            progress(info.size_bytes, info.size_bytes)
    print(f"backup of tx {info.tx} (hash {info.hash}) written to {info.path}: {_size(info.size_bytes)}")
    return 0


def add_restore_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("backup", help="a backup directory (from 'strata backup' or POST /v4/admin/backup)")
    p.add_argument("data_dir", help="the new store directory (must not exist, or be empty), or "
                   "etcd://HOST:PORT,.../PREFIX: an empty store on etcd")
    p.add_argument("--no-verify", action="store_true",
                   help="skip re-deriving the hash chain (O(all operations)); the head is still checked")
    _add_quiet(p)


def cmd_restore(args: argparse.Namespace) -> int:
    from engine import errors, restore

    source = Path(args.backup)
    data = source / "data.mdb" if source.is_dir() else source
    on_etcd = _on_etcd(args.data_dir)  # replayed tx by tx: no file grows to watch
    target: str | Path = args.data_dir if on_etcd else Path(args.data_dir).absolute()
    total = data.stat().st_size if data.is_file() and not on_etcd else None
    with _Progress(args, "B", "restore", total, bytes_=True) as progress:
        try:
            pattern = f".{Path(target).name}.partial-{os.getpid()}-*/data.mdb"
            with _watch_size(progress, Path(target).parent, pattern) if not on_etcd else contextlib.nullcontext():
                info = restore(source, target, verify=not args.no_verify)
        except errors.EngineError as exc:
            progress.close()
            return _engine_failed("restore", exc)
        if total is not None:
            progress(total, total)
    checked = "head checked" if args.no_verify else "hash chain verified"
    print(f"restored tx {info.tx} (hash {info.hash}) into {info.path}: {checked}")
    return 0


# -- export and import --------------------------------------------------------------------------


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ns", default=None,
                   help="namespace (required for a snapshot; for --history, only its txs: default all)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tx", type=int, default=None, help="snapshot as of this tx (default: the latest)")
    which.add_argument("--history", action="store_true",
                       help="every tx, in order, with times and notes (without --ns: the whole store, which "
                            "'strata import' replays into an empty store with the same tx numbers and head)")
    p.add_argument("--since", type=int, default=None, metavar="TX",
                   help="with --history: start after tx TX (after a compaction, the horizon minus 1); such a "
                        "history imports into a store at tx TX, or anywhere with 'strata import --renumber'")
    p.add_argument("--out", default="-", help="output file, JSON Lines ('-', the default: stdout)")
    p.add_argument("--data", default="./data",
                   help="store directory (default ./data), or etcd://HOST:PORT,.../PREFIX for a store on etcd")
    _add_quiet(p)


def _export_problem(args: argparse.Namespace) -> str | None:
    """Why these export options cannot work, or None."""
    if not args.history and args.ns is None:
        return "a snapshot needs --ns NAMESPACE (or give --history)"
    if args.since is not None and not args.history:
        return "--since applies to --history exports"
    if args.since is not None and args.since < 0:
        return f"--since must be a tx (0 or more), not {args.since}"
    return None


def cmd_export(args: argparse.Namespace) -> int:
    import orjson

    from engine import errors, export

    problem = _export_problem(args)
    if problem is not None:
        print(f"strata export: {problem}", file=sys.stderr)
        return 2
    try:
        store = _open_store(args, "export") if not _on_etcd(args.data) else _open_etcd(args.data)
    except errors.EngineError as exc:  # a bad etcd:// URL, an unreachable cluster
        return _engine_failed("export", exc)
    if store is None:
        return 2
    to_stdout = args.out == "-"
    partial = None if to_stdout else Path(f"{args.out}.partial-{os.getpid()}")
    rows = 0
    with store:
        unit, desc = ("tx", "export history") if args.history else ("key", f"export {args.ns}")
        with _Progress(args, unit, desc) as progress:
            try:
                it = export(store, args.ns, tx=args.tx, history=args.history, since=args.since or 0,
                            progress=progress)
                header = next(it)
                progress(0, header.get("txs") if args.history else header.get("count"))
                out: IO[bytes] = sys.stdout.buffer if partial is None else open(partial, "wb")  # noqa: SIM115
                try:
                    out.write(orjson.dumps(header) + b"\n")
                    for row in it:
                        out.write(orjson.dumps(row) + b"\n")
                        rows += 1
                    out.flush()
                finally:
                    if partial is not None:
                        out.close()
            except errors.EngineError as exc:
                progress.close()
                if partial is not None:
                    partial.unlink(missing_ok=True)
                if isinstance(exc, errors.TxCompacted) and args.history and "horizon" in exc.details:
                    exc = errors.TxCompacted(f"{exc.message} (give --since {exc.details['horizon'] - 1})",
                                             **exc.details)
                return _engine_failed("export", exc)
            except BaseException:
                if partial is not None:
                    partial.unlink(missing_ok=True)
                raise
    if partial is not None:
        os.replace(partial, args.out)
    after = f" after tx {header['since']}" if args.history and header.get("since") else ""
    what = (f"{rows} tx(s){after} up to tx {header['until']}" if args.history
            else f"{rows} record(s) of {args.ns} at tx {header['tx']}")
    print(f"exported {what} to {'stdout' if to_stdout else args.out}", file=sys.stderr if to_stdout else sys.stdout)
    return 0


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a JSON Lines export ('-': stdin)")
    p.add_argument("--ns", default=None,
                   help="target namespace: of a snapshot (default: the exported one), or the new name of a "
                        "one-namespace history's namespace")
    p.add_argument("--history", action="store_true",
                   help="the file is a history export (checked against its header; for a file without a "
                        "header, its rows are read as txs, not records)")
    p.add_argument("--renumber", action="store_true",
                   help="commit each tx of a history as the next tx, now (a one-namespace history or a "
                        "non-empty store); without it tx numbers and times are replayed as exported")
    p.add_argument("--data", default="./data",
                   help="store directory (created if missing; default ./data), or etcd://HOST:PORT,.../PREFIX "
                        "for a store on etcd")
    _add_quiet(p)


def _json_lines(stream: IO[bytes]) -> Iterator[Any]:
    import orjson

    from engine import errors

    for number, line in enumerate(stream, start=1):
        if line.strip():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise errors.InvalidParameters(f"line {number} is not JSON: {exc}", line=number) from None


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _import_problem(args: argparse.Namespace, header: dict[str, Any] | None, history: bool) -> str | None:
    """Why these options do not fit this input, or None."""
    if header is not None and args.history and not history:
        return f"--history given, but this is a {header.get('mode')} export"
    if history and header is not None and args.ns and header.get("namespace") is None:
        return "--ns renames the namespace of a one-namespace history; this export holds every namespace"
    if not history and args.renumber:
        return "--renumber applies to history imports (a snapshot is always written as new txs)"
    if header is None and not history and args.ns is None:
        return "rows without a header need --ns NAMESPACE (or --history for txs)"
    return None


def cmd_import(args: argparse.Namespace) -> int:
    from engine import Store, errors, import_history, import_rows, import_snapshot

    if args.file != "-" and not Path(args.file).is_file():
        print(f"strata import: no file {args.file}", file=sys.stderr)
        return 2
    stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    try:
        rows = _json_lines(stream)
        try:
            first = next(rows, None)
        except errors.EngineError as exc:
            return _engine_failed("import", exc)
        if first is None:
            print("strata import: the input is empty; nothing imported", file=sys.stderr)
            return 0
        header = first if type(first) is dict and "format" in first else None
        history = header.get("mode") == "history" if header is not None else args.history
        problem = _import_problem(args, header, history)
        if problem is not None:
            print(f"strata import: {problem}", file=sys.stderr)
            return 2
        total = None if header is None else header.get("txs" if history else "count")
        if not _on_etcd(args.data):
            Path(args.data).mkdir(parents=True, exist_ok=True)
        try:
            opened = Store.open(args.data, sync=False)
        except errors.EngineError as exc:  # a bad etcd:// URL, an unreachable cluster
            return _engine_failed("import", exc)
        with opened as store, _Progress(args, "tx" if history else "key", "import", total) as progress:
            try:
                if header is not None:
                    report = import_rows(store, _chain(first, rows), namespace=args.ns, renumber=args.renumber,
                                         progress=progress)
                elif history:
                    report = import_history(store, _chain(first, rows), renumber=args.renumber,
                                            progress=progress)
                else:
                    report = import_snapshot(store, _chain(first, rows), namespace=args.ns, progress=progress)
                store.sync()
            except errors.EngineError as exc:
                progress.close()
                store.sync()  # the txs written before the bad row stay: make them durable
                return _engine_failed("import", exc)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    txs = f"txs {report.first_tx} to {report.last_tx}" if report.txs else "no tx"
    print(f"imported {report.items} operation(s) in {report.txs} tx(s) ({txs}) in {report.seconds:.2f} s")
    return 0


# -- compaction ---------------------------------------------------------------------------------


def add_compact_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--before", "--before-tx", dest="before", type=int, default=None, metavar="TX",
                       help="the new horizon: free every version no read at a tx >= TX can see (reads below "
                            "TX then fail with TX_COMPACTED)")
    which.add_argument("--retain-txs", type=int, default=None, metavar="N",
                       help="apply this retention once: keep the last N txs readable")
    p.add_argument("--retain-for", default=None, metavar="DURATION",
                   help="apply this retention once: keep txs of the last DURATION (30d, 12h, 1d12h); with "
                        "--retain-txs, the laxer wins")
    _add_data(p)
    _add_quiet(p)


def cmd_compact(args: argparse.Namespace) -> int:
    from engine import errors
    from server.lifecycle import retention_policy

    if args.before is not None and args.retain_for is not None:
        print("strata compact: give --before or a retention (--retain-txs, --retain-for), not both", file=sys.stderr)
        return 2
    try:
        policy = retention_policy(args.retain_txs, args.retain_for)
    except ValueError as exc:
        print(f"strata compact: {exc}", file=sys.stderr)
        return 2
    try:
        store = _open_store(args, "compact") if not _on_etcd(args.data) else _open_etcd(args.data)
    except errors.EngineError as exc:  # a bad etcd:// URL, an unreachable cluster
        return _engine_failed("compact", exc)
    if store is None:
        return 2
    with store:
        try:
            if policy is not None:
                report = store.apply_retention(policy) or store.compact()
            else:
                with _Progress(args, "tx", "compact") as progress:
                    report = store.compact(args.before, progress=progress)
            store.sync()
        except errors.EngineError as exc:
            return _engine_failed("compact", exc)
    left = "; work is left, run 'strata compact' again to finish it" if report.pending else ""
    print(f"horizon {report.horizon}: freed {report.freed} version(s) visiting {report.txs} tx(s) in "
          f"{report.chunks} chunk(s), {report.seconds:.2f} s{left}")
    return 0
