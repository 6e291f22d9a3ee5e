"""The ``strata`` command: ``serve`` (the default), ``demo``, the audit commands and ``bench``.

Each subcommand is one ``add_<name>_arguments(parser)`` plus one ``cmd_<name>(args) -> int``,
registered in :data:`COMMANDS`; add a subcommand by adding a pair there.

``serve`` runs the WSGI app under gunicorn, started programmatically, with
:class:`server.worker.StrataWorker`: gthread's event loop reading every head and answering small
requests itself, one at a time, and a pool of ``--threads`` for writes, SSE streams, whole-store work
and large requests or answers
(``--threads 1`` runs gunicorn's sync workers). The app is built in the master (``preload_app``) so
workers share the metrics memory; each worker opens its own LMDB store after the fork
(``post_worker_init``) and closes it on exit. Without API keys the server refuses a non-loopback
address unless ``--insecure`` is given.

``history``, ``at``, ``diff``, ``verify``, ``tail`` and ``head`` read the store directly (``--data``,
default ``./data``), not through a server: they work beside a running ``strata serve`` (LMDB lets
many processes open one store) and on a copy of a store taken for an audit.

``get``, ``put``, ``rm``, ``read``, ``scan`` and ``ns`` (in :mod:`server.cli_data`) work on the store's
files or, with ``--url``, on a server through :mod:`server.client`.

``backup``, ``restore``, ``export``, ``import`` and ``compact`` (in :mod:`server.cli_lifecycle`)
work on the store directly too, with progress bars on a terminal. ``serve --retain-txs N`` /
``--retain-for 30d`` compacts in the background, in one worker at a time (:mod:`server.lifecycle`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from typing import Any

from server import cli_data, cli_signing
from server import cli_lifecycle as lifecycle
from server.auth import KeysFileError


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    # No argparse defaults for these four: a flag wins over $STRATA_*, which wins over the default
    # (server.serve_config resolves them).
    p.add_argument("--data", default=None, help="store directory (created if missing; default $STRATA_DATA or ./data), "
                   "or etcd://HOST:PORT,HOST:PORT,.../PREFIX for a store on an etcd cluster (docs/scale-out.md)")
    p.add_argument("--host", default=None, help="address to listen on (default $STRATA_HOST or 127.0.0.1)")
    p.add_argument("--port", default=None, help="port, 1 to 65535 (default $STRATA_PORT or 8080)")
    p.add_argument("--workers", default=None,
                   help="gunicorn worker processes (default $STRATA_WORKERS, or CPUs, 2 to 8)")
    p.add_argument("--keys", default=None, help="API keys file (default $STRATA_KEYS_FILE; none: auth off)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without API keys")
    p.add_argument("--no-sync", action="store_true",
                   help="do not fsync each commit (faster; a crash may lose the latest commits)")
    p.add_argument("--threads", type=int, default=16,
                   help="threads per worker for writes, SSE streams, whole-store work and large requests or answers "
                        "(default 16); small requests are answered one at a time on each worker's event loop. "
                        "1 runs gunicorn's sync workers, which cannot hold SSE streams")
    p.add_argument("--max-streams", type=int, default=None,
                   help="open SSE streams per worker (default: half of --threads), so streams never take "
                        "every thread")
    p.add_argument("--heartbeat", type=float, default=15.0,
                   help="seconds between SSE heartbeat comments (default 15)")
    p.add_argument("--timeout", type=int, default=30, help="gunicorn worker timeout in seconds (default 30)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a request head must arrive within SECONDS, else 408 and the connection is closed (default 10)")
    p.add_argument("--body-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="a request body must arrive within SECONDS of its head, else 408 (default 60)")
    p.add_argument("--access-log", default=None, help="access log file ('-' for stderr; default: none)")
    p.add_argument("--retain-txs", type=int, default=None, metavar="N",
                   help="retention: keep the last N txs readable, compacting older versions in the background")
    p.add_argument("--retain-for", default=None, metavar="DURATION",
                   help="retention: keep the txs of the last DURATION (30d, 12h, 1d12h); with --retain-txs the "
                        "laxer wins (default: keep everything)")
    p.add_argument("--expire-every", type=float, default=60.0, metavar="SECONDS",
                   help="record due expiries as deletes every SECONDS in the background, so key counts and "
                        "history stay exact without writes (default 60; 0: only writes record them)")
    p.add_argument("--backup-dir", default=None, metavar="DIR",
                   help="the only directory POST /v4/admin/backup writes into (default: 'backups' beside --data)")
    p.add_argument("--signing-key", default=None, metavar="FILE",
                   help="an Ed25519 private key (PEM, from strata keygen): sign every head served (GET /v4/head, "
                        "proof reads) so auditors can keep them as evidence")
    p.add_argument("--idempotency-ttl", default="24h", metavar="DURATION",
                   help="how long a write's answer is kept for retries with the same Idempotency-Key (1s to 10 years, "
                        "such as 24h, 7d, 3600; default 24h)")


def _check_serve_options(args: argparse.Namespace) -> str | None:
    """Why the options other than the address and data directory cannot work, or None."""
    if (args.threads < 1 or args.heartbeat <= 0 or (args.max_streams is not None and args.max_streams < 0)
            or not 0 <= args.expire_every < float("inf") or args.timeout < 0
            or not 0 < args.header_timeout < float("inf") or not 0 < args.body_timeout < float("inf")):
        return ("--threads must be at least 1, --heartbeat, --header-timeout and --body-timeout above 0, "
                "--max-streams, --expire-every and --timeout not negative")
    max_streams = args.threads // 2 if args.max_streams is None else args.max_streams
    if args.threads > 1 and max_streams >= args.threads:
        return (f"--max-streams {max_streams} would let streams take all {args.threads} threads of a worker; give "
                "fewer streams or more threads")
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    """Check everything that can be checked (values, the data directory, the address), then run
    gunicorn; nothing is created on disk before the checks pass."""
    from engine.etcd.url import is_etcd_url
    from server.app import create_app
    from server.arbiter import StrataSyncWorker
    from server.lifecycle import idempotency_ttl, retention_policy
    from server.serve_config import ServeConfigError, check_bindable, check_data_dir, check_etcd_store, resolve
    from server.worker import StrataWorker

    keys_file = args.keys or os.environ.get("STRATA_KEYS_FILE") or None
    problem = _check_serve_options(args)
    if problem is not None:
        print(f"strata serve: {problem}", file=sys.stderr)
        return 2
    max_streams = args.threads // 2 if args.max_streams is None else args.max_streams
    try:
        config = resolve(args, os.environ)
        retention = retention_policy(args.retain_txs, args.retain_for)
        app = create_app(config.data, keys_file=keys_file, sync=not args.no_sync, heartbeat=args.heartbeat,
                         max_streams=0 if args.threads == 1 else max_streams, retention=retention,
                         backup_dir=args.backup_dir, expire_every=args.expire_every or None,
                         store_options={"idempotency_ttl": idempotency_ttl(args.idempotency_ttl)},
                         signing_key=args.signing_key)
    except (ServeConfigError, ValueError, KeysFileError) as exc:
        print(f"strata serve: {exc}", file=sys.stderr)
        return 2
    if not app.keyring.enabled and not args.insecure and not is_loopback(config.host):
        print(f"strata serve: refusing to listen on {config.host} without API keys; give --keys FILE "
              "(or STRATA_KEYS_FILE), or --insecure to accept that anyone who can reach it may write",
              file=sys.stderr)
        return 2
    etcd = is_etcd_url(config.data)
    try:
        if etcd:
            check_etcd_store(config.data, retention)
        else:
            check_data_dir(config.data)
        check_bindable(config.host, config.port)
        if not etcd:
            os.makedirs(config.data, exist_ok=True)
    except ServeConfigError as exc:
        print(f"strata serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"strata serve: cannot create --data {config.data}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    auth = (f"API keys required ({len(app.keyring)} from {keys_file})" if app.keyring.enabled
            else "API keys not required (auth off)")
    signing = "" if app.signer is None else f", heads signed by key {app.signer.key_id}"
    data = config.data if etcd else os.path.abspath(config.data)
    started = (f"strata serve: data {data}, listening on {config.url}, "
               f"{config.workers} worker(s) x {args.threads} thread(s), {auth}{signing}")
    host = f"[{config.host}]" if ":" in config.host else config.host
    options = {
        "bind": f"{host}:{config.port}",
        "workers": config.workers,
        "worker_class": (StrataWorker.configured(args.header_timeout, args.body_timeout) if args.threads > 1
                         else StrataSyncWorker),
        "threads": args.threads,
        "preload_app": True,
        "timeout": args.timeout,
        "accesslog": args.access_log,
        # gunicorn 25+ opens a control socket at one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn):
        # every instance on the machine would share it, and stopping one removes another's. Strata
        # does not use gunicornc, so it is off (the setting is skipped where gunicorn lacks it).
        "control_socket_disable": True,
        "when_ready": lambda server: server.log.info("%s", started),
        "post_worker_init": app.attach_worker,
        "worker_exit": lambda server, worker: app.close(),
    }
    from server.gunicorn_app import StrataGunicorn  # gunicorn is imported only to serve

    StrataGunicorn(app, options).run()
    return 0


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="a new or empty directory to keep the demo store in (default: a temporary one, removed after)")


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo commits txs, and a tx stays in the hash chain forever: it runs only on a fresh store,
    never on data someone keeps (a non-empty ``--data`` is refused, rather than silently redirected
    to a temporary directory, so that the user learns where the demo did *not* write)."""
    import tempfile
    from pathlib import Path

    from engine import Store

    if args.data is not None:
        data = Path(args.data)
        if data.exists() and (not data.is_dir() or any(data.iterdir())):
            print(f"strata demo: {args.data} is not empty; the demo commits txs that would stay in that store's "
                  "hash chain forever. Give a new directory (--data ./demo-store) or no --data for a temporary one",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp, Store.open(args.data or tmp, sync=False) as store:
        ns = store.namespace("demo")
        t1 = ns.put({"city:1": {"name": "Braavos"}, "city:2": {"name": "Oldtown"}, "logo": b"\x89PNG"})
        print(f"tx {t1}: put city:1, city:2, logo")
        t2 = ns.clear(["city:1"])
        print(f"tx {t2}: cleared city:1 (the key stays, without a value)")
        t3 = ns.delete(["city:2"])
        print(f"tx {t3}: deleted city:2 (gone from later snapshots)")
        keys = ["city:1", "city:2", "logo"]
        for tx in (t1, t3):
            print(f"read at tx {tx}:")
            for rec in ns.read(keys, tx=tx).records:
                print(f"  {rec.key}: {'(cleared)' if rec.cleared else repr(rec.value)} (tx {rec.tx})")
    return 0


# -- the audit commands: read the store directly ------------------------------------------------


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="./data", help="store directory (default ./data)")


def _open_store(args: argparse.Namespace, command: str) -> Any:
    """The store at ``args.data``, or None (after printing why) when there is none: the audit
    commands never create an empty store where the auditor mistyped a path."""
    from pathlib import Path

    from engine import Store

    if not (Path(args.data) / "data.mdb").is_file():
        print(f"strata {command}: no store at {args.data} (give --data DIR)", file=sys.stderr)
        return None
    return Store.open(args.data, sync=False)


def _time(value: Any) -> str:
    """A datetime as RFC 3339 UTC with microseconds and a Z (as the HTTP API writes it)."""
    return str(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _value_text(value: Any, binary: bool) -> str:
    import base64

    import orjson

    if binary:
        return f"(binary, {len(value)} bytes) {base64.b64encode(value).decode('ascii')}"
    return orjson.dumps(value).decode()


def _record_text(rec: Any) -> str:
    if rec is None:
        return "(absent)"
    if rec.cleared:
        return f"(cleared) (tx {rec.tx})"
    return f"{_value_text(rec.value, rec.binary)} (tx {rec.tx})"


def _engine_failed(command: str, exc: Exception) -> int:
    code = getattr(exc, "code", type(exc).__name__)
    print(f"strata {command}: {code}: {getattr(exc, 'message', exc)}", file=sys.stderr)
    return 2


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", help="the key")
    p.add_argument("--ns", required=True, help="namespace")
    _add_data(p)
    p.add_argument("--limit", type=int, default=20, help="versions to show, at least 1 (default 20)")
    p.add_argument("--order", choices=("desc", "asc"), default="desc", help="desc: newest first (default)")
    p.add_argument("--before", type=int, default=None, help="only versions with tx < BEFORE")
    p.add_argument("--after", type=int, default=None, help="only versions with tx > AFTER")


def cmd_history(args: argparse.Namespace) -> int:
    from engine import errors

    if args.limit < 1:
        print(f"strata history: --limit must be at least 1, not {args.limit}", file=sys.stderr)
        return 2
    store = _open_store(args, "history")
    if store is None:
        return 2
    with store:
        try:
            versions = store.namespace(args.ns).history(args.key, before=args.before, after=args.after,
                                                        limit=args.limit + 1, order=args.order)
        except errors.EngineError as exc:
            return _engine_failed("history", exc)
        more = len(versions) > args.limit
        versions = versions[:args.limit]
        print(f"history of {args.ns}/{args.key}: {len(versions)} version(s), "
              f"{'newest' if args.order == 'desc' else 'oldest'} first")
        for v in versions:
            shown = _value_text(v.value, v.binary) if v.op == "put" else ""
            print(f"  tx {v.tx:<6} {_time(v.time)}  {v.op:<6} {shown}".rstrip())
        if more:
            flag = "--before" if args.order == "desc" else "--after"
            print(f"  more: {flag} {versions[-1].tx}")
    return 0


def add_at_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("time", help="an RFC 3339 time, such as 2026-11-23T09:00:00Z or 2026-11-23T10:00:00+01:00")
    p.add_argument("keys", nargs="+", metavar="KEY", help="keys to read")
    p.add_argument("--ns", required=True, help="namespace")
    _add_data(p)


def cmd_at(args: argparse.Namespace) -> int:
    from engine import errors
    from server.problems import HTTPProblem
    from server.validation import is_before_epoch, parse_time

    try:
        when = parse_time(args.time, "time")
    except HTTPProblem as problem:
        print(f"strata at: {problem.detail}", file=sys.stderr)
        return 2
    store = _open_store(args, "at")
    if store is None:
        return 2
    with store:
        try:
            tx = 0 if is_before_epoch(when) else store.tx_at(when)
            found = {r.key: r for r in store.namespace(args.ns).read(args.keys, tx=tx).records}
        except errors.EngineError as exc:
            return _engine_failed("at", exc)
        info = store.tx_info(tx) if tx else None
        committed = f"committed {_time(info.time)}" if info else "before the first tx: the empty store"
        print(f"at {args.time}: tx {tx} ({committed})")
        for key in dict.fromkeys(args.keys):
            print(f"  {key}: {_record_text(found.get(key))}")
    return 0


def add_diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("from_tx", type=int, help="the earlier tx")
    p.add_argument("to_tx", type=int, help="the later tx")
    p.add_argument("--ns", required=True, help="namespace")
    _add_data(p)


def cmd_diff(args: argparse.Namespace) -> int:
    from engine import errors

    store = _open_store(args, "diff")
    if store is None:
        return 2
    with store:
        try:
            changes = store.namespace(args.ns).diff(args.from_tx, args.to_tx)
            print(f"diff of {args.ns} from tx {args.from_tx} to tx {args.to_tx}:")
            count = 0
            for change in changes:
                count += 1
                print(f"  {change.kind:<8} {change.key}: {_record_text(change.before)} -> "
                      f"{_record_text(change.after)}")
        except errors.EngineError as exc:
            return _engine_failed("diff", exc)
        print(f"  {count} key(s) differ")
    return 0


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    _add_data(p)
    p.add_argument("--receipt", default=None, metavar="TX:HASH",
                   help="a receipt kept from 'strata head' (or GET /v4/head): prove history up to it is unchanged")
    p.add_argument("--from-head", default=None, metavar="FILE",
                   help="a head kept as JSON with size and root (GET /v4/head's answer, or a client's trusted-head "
                        "file): check, in O(log n) with a Merkle consistency proof, that the log extends it")
    p.add_argument("--public-key", default=None, metavar="KEY",
                   help="with --from-head: the server's public key (64 hex digits, or a file from strata keygen); "
                        "the kept head must then carry the server's signature, and it is checked first")


def cmd_verify(args: argparse.Namespace) -> int:
    import re

    from engine import errors

    if args.from_head is not None:
        if args.receipt is not None:
            print("strata verify: give --receipt or --from-head, not both", file=sys.stderr)
            return 2
        return _verify_from_head(args)
    receipt = None
    if args.receipt is not None:
        m = re.fullmatch(r"(\d+):([0-9a-fA-F]{64})", args.receipt.strip())
        if m is None:
            print("strata verify: --receipt must be TX:HASH, such as 42:9f86d0... (64 hex digits)", file=sys.stderr)
            return 2
        receipt = (int(m.group(1)), m.group(2).lower())
    store = _open_store(args, "verify")
    if store is None:
        return 2
    with store:
        try:
            report = store.verify(receipt)
        except errors.EngineError as exc:  # a receipt past the head is FUTURE_TX
            return _engine_failed("verify", exc)
    against = f" and receipt {receipt[0]}:{receipt[1][:16]}..." if receipt else ""
    if report.ok:
        print(f"OK: {report.checked} txs verified{against}; head tx {report.head_tx} hash {report.head_hash}")
        return 0
    print(f"FAILED at tx {report.bad_tx}: {report.problem}")
    intact = f"txs 1 to {report.checked} verified intact" if report.checked else "no tx before it to verify"
    print(f"  {intact}; the store's head is tx {report.head_tx}")
    return 1


def _verify_from_head(args: argparse.Namespace) -> int:
    """``strata verify --from-head FILE``: one consistency proof from the kept head to the latest tx."""
    import json
    import re

    from engine import merkle

    try:
        kept = json.loads(open(args.from_head).read())  # noqa: SIM115 - a small file read at once
        size, root = kept["size"], kept["root"]
        if type(size) is not int or size < 1 or type(root) is not str or not re.fullmatch(r"[0-9a-f]{64}", root):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        print(f"strata verify: --from-head {args.from_head} must be a JSON file with a size (1 or more) and a root "
              "(64 lowercase hex digits), as GET /v4/head answers", file=sys.stderr)
        return 2
    signer = ""
    if args.public_key is not None:
        checked = _check_kept_signature(args, kept)
        if isinstance(checked, int):
            return checked
        signer = checked
    store = _open_store(args, "verify")
    if store is None:
        return 2
    with store:
        head = store.head()
        if head.root is None:
            print("strata verify: this store's Merkle tree does not reach its latest tx (it was compacted before it "
                  "had one): use --receipt", file=sys.stderr)
            return 2
        if head.size < size:
            print(f"FAILED: the log has {head.size} txs, fewer than the {size} of the kept head: it was truncated "
                  "or replaced")
            return 1
        path = [bytes.fromhex(h) for h in store.consistency_proof(size, head.size).path]
    if not merkle.verify_consistency(size, head.size, bytes.fromhex(root), bytes.fromhex(head.root), path):
        print(f"FAILED: the log of {head.size} txs does not extend the kept head of {size} txs (root {root[:16]}...): "
              "history up to it was rewritten")
        return 1
    print(f"OK: the log of {head.size} txs extends the kept head of {size} txs (root {root[:16]}...{signer}), "
          f"{len(path)} hashes; head root {head.root}")
    return 0


def _check_kept_signature(args: argparse.Namespace, kept: dict[str, Any]) -> str | int:
    """``--public-key``: the kept head's signature checked; what to say of it, or the exit status (1: it
    does not verify or signs another head, 2: no usable key or no signed head in the file)."""
    from engine import errors, signed_head

    try:
        keys = signed_head.trusted_keys(args.public_key)
    except signed_head.KeyFileError as exc:
        print(f"strata verify: --public-key: {exc}", file=sys.stderr)
        return 2
    if kept.get("signed") is None:
        print(f"strata verify: {args.from_head} holds no signed head (keep GET /v4/head's answer from a server "
              "started with --signing-key, or a client's trusted-head file)", file=sys.stderr)
        return 2
    try:
        sig = signed_head.SignedHead.from_dict(kept["signed"])
        signed_head.verify(sig, keys)
    except errors.ProofFailed as exc:
        print(f"FAILED: the kept head's signature: {exc.message}")
        return 1
    if (sig.size, sig.root) != (kept["size"], kept["root"]):
        print(f"FAILED: the kept head's signature is for size {sig.size} root {sig.root[:16]}..., not the head "
              "the file gives")
        return 1
    return f", signed by key {sig.key_id} at {signed_head.time_text(sig.time_us)}"


def add_head_arguments(p: argparse.ArgumentParser) -> None:
    _add_data(p)


def cmd_head(args: argparse.Namespace) -> int:
    store = _open_store(args, "head")
    if store is None:
        return 2
    with store:
        head = store.head()
        tx, digest = head
        info = store.tx_info(tx) if tx else None
    print(f"tx {tx}")
    print(f"time {_time(info.time) if info else '-'}")
    print(f"hash {digest}")
    print(f"root {head.root or '-'}")  # the Merkle tree of the first `tx` txs: what proofs are checked against
    print(f"receipt {tx}:{digest}")
    return 0


def add_tail_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ns", default=None, help="only txs touching this namespace (default: all)")
    _add_data(p)
    p.add_argument("--since", type=int, default=None, help="start after this tx (default: the latest; 0: all)")
    p.add_argument("--no-follow", action="store_true", help="print the txs there are and exit")


def cmd_tail(args: argparse.Namespace) -> int:
    from engine import errors
    from server.handlers.feed import feed_page

    if args.since is not None and args.since < 0:
        print(f"strata tail: --since must be a tx, 0 or above, not {args.since}", file=sys.stderr)
        return 2
    store = _open_store(args, "tail")
    if store is None:
        return 2
    with store:
        try:
            latest = store.latest_tx
            if args.since is not None and args.since > latest:  # as GET .../changes?since= answers
                raise errors.FutureTx(f"--since {args.since} is above the latest tx {latest}", tx=args.since,
                                      latest_tx=latest)
            since = latest if args.since is None else args.since
            while True:
                if args.ns is None:  # every tx, in order (the feed's namespace filter is off)
                    latest = store.latest_tx
                    infos = store.changes(since, limit=1000)
                    more = len(infos) == 1000
                    cursor = infos[-1].tx if more else max(since, latest, infos[-1].tx if infos else 0)
                else:
                    infos, cursor, more = feed_page(store, args.ns, since, 1000)
                for info in infos:
                    _print_tx(store, info)
                since = cursor
                if more:
                    continue
                if args.no_follow:
                    return 0
                store.wait_for(since + 1, timeout=1.0)
        except KeyboardInterrupt:
            return 0
        except BrokenPipeError:  # piped into head(1) and the reader left: done, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except errors.EngineError as exc:
            return _engine_failed("tail", exc)


def _print_tx(store: Any, info: Any) -> None:
    from engine import TxInfo
    from server.handlers.feed import tx_event

    note = "" if info.note is None else "  note " + _value_text(info.note, False)
    lines = [f"tx {info.tx}  {_time(info.time)}{note}"]
    for name in dict.fromkeys(op.namespace for op in info.operations):
        ops = [op for op in info.operations if op.namespace == name]
        event = tx_event(store, name, TxInfo(info.tx, info.time, info.time_us, info.note, ops, info.hash))
        for op in event["operations"]:
            value = ""
            if "value" in op:
                raw = op["value"]
                value = " = " + (f"(binary, base64) {raw}" if op["binary"] else _value_text(raw, False))
            lines.append(f"  {op['op']:<6} {name}/{op['key']}{value}")
    print("\n".join(lines), flush=True)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the benchmark harness (try: bench --help)")


def cmd_bench(args: argparse.Namespace) -> int:
    harness = _bench_harness()
    if harness is None:
        return 2
    return int(harness(list(args.args), prog="strata bench"))


def _bench_harness() -> Callable[..., int] | None:
    """``benchmarks.harness.main``: importable as is, or from the repository root (the parent of
    ``server/``), since ``benchmarks/`` is not an installed package."""
    import importlib
    from pathlib import Path

    try:
        module = importlib.import_module("benchmarks.harness")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", "benchmarks.harness"):
            print(f"strata bench: the benchmarks need {exc.name!r}: pip install -e '.[bench]'", file=sys.stderr)
            return None
        root = Path(__file__).resolve().parent.parent
        if not (root / "benchmarks" / "harness.py").is_file():
            print(f"strata bench: the benchmark harness is not installed and {root} has no benchmarks/ "
                  "directory; run it from a clone of the repository", file=sys.stderr)
            return None
        sys.path.insert(0, str(root))
        sys.modules.pop("benchmarks", None)
        try:
            module = importlib.import_module("benchmarks.harness")
        except ModuleNotFoundError as missing:
            print(f"strata bench: the benchmarks need {missing.name!r}: pip install -e '.[bench]'", file=sys.stderr)
            return None
    harness: Callable[..., int] = module.main
    return harness


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {
    "serve": (add_serve_arguments, cmd_serve, "serve the HTTP API with gunicorn (the default)"),
    "demo": (add_demo_arguments, cmd_demo, "write, clear, delete and read at an old tx, printing records"),
    "history": (add_history_arguments, cmd_history, "the versions of a key: tx, commit time, operation, value"),
    "at": (add_at_arguments, cmd_at, "read keys as of a time (RFC 3339), saying which tx that was"),
    "diff": (add_diff_arguments, cmd_diff, "keys added, changed, cleared and deleted between two txs"),
    "verify": (add_verify_arguments, cmd_verify, "re-derive the hash chain (and check a kept receipt); "
               "exit 1 if the store was tampered with"),
    "head": (add_head_arguments, cmd_head, "the latest tx and its chain hash: a receipt to keep"),
    "keygen": (cli_signing.add_keygen_arguments, cli_signing.cmd_keygen, "an Ed25519 key pair for serve "
               "--signing-key: the server signs the heads it serves, auditors check them with the public key"),
    "tail": (add_tail_arguments, cmd_tail, "follow the change feed, printing each tx (Ctrl-C stops)"),
    "bench": (add_bench_arguments, cmd_bench, "run the benchmark harness (benchmarks.harness)"),
    "backup": (lifecycle.add_backup_arguments, lifecycle.cmd_backup, "a hot, consistent copy of the store into "
               "a new directory"),
    "restore": (lifecycle.add_restore_arguments, lifecycle.cmd_restore, "restore a backup into a new data "
                "directory, checking its head and hash chain"),
    "export": (lifecycle.add_export_arguments, lifecycle.cmd_export, "a namespace at a tx, or the history, "
               "as JSON Lines"),
    "import": (lifecycle.add_import_arguments, lifecycle.cmd_import, "load an export (a history replays its "
               "txs with their numbers)"),
    "compact": (lifecycle.add_compact_arguments, lifecycle.cmd_compact, "free old versions below a horizon "
                "(or per a retention policy)"),
    **cli_data.COMMANDS,
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def version() -> str:
    """The installed distribution's version (``strata-kv``), or ``unknown`` when run from a
    checkout that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("strata-kv")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description="Strata: a versioned key-value store on LMDB")
    parser.add_argument("--version", action="version", version=f"strata {version()}")
    sub = parser.add_subparsers(dest="command")
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``strata`` console script; no subcommand means ``serve``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # everything after it belongs to the harness, options included
        return cmd_bench(argparse.Namespace(command="bench", args=argv[1:]))
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
