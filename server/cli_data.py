"""``strata get/put/rm/read/scan/ns``: the data of a store from the shell, embedded or through a server.

Each command works on ``--data DIR`` (the store's files, opened in this process) or on ``--url URL``
(a running ``strata serve``, through :mod:`server.client`, with ``--key KEY`` as its API key);
``STRATA_URL`` and ``STRATA_KEY`` set the same from the environment (a flag wins; ``--data`` and
``--url`` together are refused). With neither, ``./data``.

Output: a table on a terminal; JSON Lines when piped or with ``-o json`` (one record, namespace or
answer per line, in the HTTP API's shapes: binary values as base64 with ``"binary": true``), so
``strata scan --ns users --prefix user: -o json | jq`` works. Errors go to stderr as ``CODE: message``
(and one line per bad item), with exit status 2; ``get`` of a key with no record exits 1.
``strata read --verified`` proves every record it prints (:mod:`server.cli_verified_read`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from engine import errors
from server import cli_verified_read
from server.shapes import namespace_json, record_json

VALUE_WIDTH = 60


def _add_target(p: argparse.ArgumentParser, ns: bool = True) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data", default=None, help="store directory, opened here (default ./data without --url)")
    where.add_argument("--url", default=None, help="a strata server (default $STRATA_URL), used through the client")
    p.add_argument("--key", default=None, help="API key for --url (default $STRATA_KEY)")
    if ns:
        p.add_argument("--ns", required=True, help="namespace")
    p.add_argument("-o", "--output", choices=("table", "json"), default=None,
                   help="table (the default on a terminal) or json (JSON Lines; the default when piped)")


@contextlib.contextmanager
def _store(args: argparse.Namespace, create: bool = False) -> Iterator[Any]:
    """The store the command works on: remote with --url/$STRATA_URL, else the files at --data."""
    url = None if args.data is not None else (args.url or os.environ.get("STRATA_URL") or None)
    if url is not None:
        from server.client import connect

        with connect(url, args.key if args.key is not None else os.environ.get("STRATA_KEY") or None) as remote:
            yield remote
        return
    from engine import Store

    data = args.data or "./data"
    if not create and not (Path(data) / "data.mdb").is_file():
        raise errors.InvalidParameters(f"no store at {data} (give --data DIR, or --url URL)")
    with Store.open(data) as store:
        yield store


def _json_output(args: argparse.Namespace) -> bool:
    return args.output == "json" or (args.output is None and not sys.stdout.isatty())


def _value_text(rec: Any) -> str:
    if rec.cleared:
        return "(cleared)"
    if rec.binary:
        return f"(binary, {len(rec.value)} bytes)"
    text = orjson.dumps(rec.value).decode()
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 3] + "..."


def _table(header: list[str], rows: Iterable[list[str]]) -> None:
    """Rows under a header, columns padded to their widest cell (all rows are read first)."""
    rows = list(rows)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _print_records(args: argparse.Namespace, records: Iterable[Any]) -> int:
    """Records as JSON Lines (streamed) or as a table; returns how many."""
    count = 0
    if _json_output(args):
        for rec in records:
            sys.stdout.buffer.write(orjson.dumps(record_json(rec)) + b"\n")
            count += 1
        sys.stdout.flush()
        return count
    rows = [[rec.key, str(rec.tx), _value_text(rec)] for rec in records]
    if rows:
        _table(["KEY", "TX", "VALUE"], rows)
    return len(rows)


def _print_answer(args: argparse.Namespace, answer: dict[str, Any]) -> None:
    if _json_output(args):
        print(orjson.dumps(answer).decode())
    else:
        print("  ".join(f"{k} {v}" for k, v in answer.items()))


def _failed(command: str, exc: errors.EngineError) -> int:
    print(f"strata {command}: {exc.code}: {exc.message}", file=sys.stderr)
    for item in exc.details.get("errors") or ():
        if item.get("index") is not None:
            print(f"  item {item['index']} ({item.get('key')!r}): {item.get('code')}: {item.get('message')}",
                  file=sys.stderr)
    return 2


def _tx_or_at(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "at", None) is not None:
        from server.validation import parse_time

        try:
            return {"at": parse_time(args.at, "--at")}
        except Exception:
            raise errors.InvalidParameters(f"--at must be an RFC 3339 time such as 2026-11-23T07:31:47Z, "
                                           f"not {args.at!r}") from None
    return {} if args.tx is None else {"tx": args.tx}


# -- commands ------------------------------------------------------------------------------------


def add_get_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("key")
    p.add_argument("--tx", type=int, default=None, help="read at this tx (default: the latest)")
    _add_target(p)


def cmd_get(args: argparse.Namespace) -> int:
    try:
        with _store(args) as store:
            rec = store.namespace(args.ns).get(args.key, tx=args.tx)
    except errors.EngineError as exc:
        return _failed("get", exc)
    if rec is None:
        print(f"strata get: KEY_NOT_FOUND: key {args.key!r} has no record in {args.ns!r}", file=sys.stderr)
        return 1
    _print_records(args, [rec])
    return 0


def add_put_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("key")
    p.add_argument("value", nargs="?", default=None, help="a JSON value (or the text of a --binary value)")
    p.add_argument("--file", default=None, help="read the value from FILE ('-': stdin) instead")
    p.add_argument("--binary", action="store_true", help="store the value's bytes as they are, not as JSON")
    p.add_argument("--ttl", type=float, default=None, help="expire the value SECONDS after the commit")
    _add_target(p)


def _put_value(args: argparse.Namespace) -> Any:
    if (args.value is None) == (args.file is None):
        raise errors.InvalidParameters("give a VALUE or --file FILE (one of them)")
    if args.file is not None:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    else:
        raw = os.fsencode(args.value)
    if args.binary:
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.InvalidValue("the value is not JSON (quote a string: '\"text\"', or give --binary)") from None


def cmd_put(args: argparse.Namespace) -> int:
    try:
        value = _put_value(args)
        with _store(args, create=True) as store:
            tx = store.namespace(args.ns).put({args.key: value}, ttl=args.ttl)
    except (errors.EngineError, OSError) as exc:
        return _failed("put", exc if isinstance(exc, errors.EngineError) else errors.InvalidParameters(str(exc)))
    _print_answer(args, {"tx": tx})
    return 0


def add_rm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("keys", nargs="+", metavar="KEY")
    _add_target(p)


def cmd_rm(args: argparse.Namespace) -> int:
    try:
        with _store(args) as store:
            tx = store.namespace(args.ns).delete(args.keys)
    except errors.EngineError as exc:
        return _failed("rm", exc)
    _print_answer(args, {"tx": tx})
    return 0


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("keys", nargs="+", metavar="KEY")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--tx", type=int, default=None, help="read at this tx (default: the latest)")
    when.add_argument("--at", default=None, help="read as of this RFC 3339 time")
    _add_target(p)
    cli_verified_read.add_arguments(p)


def cmd_read(args: argparse.Namespace) -> int:
    if cli_verified_read.wanted(args):
        return cli_verified_read.cmd(args)
    try:
        with _store(args) as store:
            result = store.namespace(args.ns).read(args.keys, **_tx_or_at(args))
            _print_records(args, result.records)
    except errors.EngineError as exc:
        return _failed("read", exc)
    return 0


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", default="", help="keys starting with this (default: all)")
    p.add_argument("--tx", type=int, default=None, help="scan at this tx (default: the latest)")
    p.add_argument("--limit", type=int, default=None, help="at most N records")
    _add_target(p)


def cmd_scan(args: argparse.Namespace) -> int:
    try:
        with _store(args) as store:
            _print_records(args, store.namespace(args.ns).scan(args.prefix, tx=args.tx, limit=args.limit))
    except errors.EngineError as exc:
        return _failed("scan", exc)
    return 0


def add_ns_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("list", "create", "drop"), default="list")
    p.add_argument("name", nargs="?", default=None, help="the namespace to create or drop")
    _add_target(p, ns=False)


def cmd_ns(args: argparse.Namespace) -> int:
    try:
        if (args.action == "list") != (args.name is None):
            raise errors.InvalidParameters("strata ns lists; strata ns create NAME and strata ns drop NAME "
                                           "take a name")
        with _store(args, create=args.action == "create") as store:
            if args.action == "create":
                _print_answer(args, {"created": store.create_namespace(args.name).name})
            elif args.action == "drop":
                _print_answer(args, {"tx": store.drop_namespace(args.name)})
            else:
                _print_namespaces(args, store.namespaces())
    except errors.EngineError as exc:
        return _failed("ns", exc)
    return 0


def _print_namespaces(args: argparse.Namespace, infos: list[Any]) -> None:
    if _json_output(args):
        for info in infos:
            print(orjson.dumps(namespace_json(info), option=orjson.OPT_UTC_Z).decode())
        return
    if infos:
        _table(["NAMESPACE", "KEYS", "TX", "UPDATED"],
               [[i.name, str(i.key_count), str(i.tx), i.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")] for i in infos])


#: The data commands, as :data:`server.cli.COMMANDS` registers them.
COMMANDS = {
    "get": (add_get_arguments, cmd_get, "print one key's record (exit 1 if it has none)"),
    "put": (add_put_arguments, cmd_put, "store a JSON value (or bytes: --binary, --file) under a key"),
    "rm": (add_rm_arguments, cmd_rm, "delete keys (one tx)"),
    "read": (add_read_arguments, cmd_read, "print the records of keys, at the latest tx, a past --tx or --at a time"),
    "scan": (add_scan_arguments, cmd_scan, "print the records of keys under a --prefix, in key order"),
    "ns": (add_ns_arguments, cmd_ns, "list namespaces; ns create NAME; ns drop NAME"),
}
