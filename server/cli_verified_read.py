"""``strata read --verified``: a read whose every record the shell proves against a head it trusts.

Through a server only (``--url``/``$STRATA_URL``; an embedded store proves nothing to itself). The
read asks for proofs and checks them with the client's :class:`~server.client.proofs.Verifier`
(:mod:`server.client.proved_reads` says what is checked), whose trusted head is kept in ``--state FILE``
between runs: a new file trusts the server's first head (and is written with it); afterwards the file's
head moves only forward, through a consistency proof the client checks. With ``--public-key KEY`` every
head must carry the server's signature by that key (one kept in the file is checked again as it is read).

Contract: on success the records are printed exactly as ``strata read`` prints them (exit 0). A proof
that fails prints ``strata read: PROOF_FAILED: message`` to stderr, prints no record and exits 1 (the
state file keeps the head it held). Bad use (no server, ``--state`` missing, ``--state``/``--public-key``
without ``--verified``, a key or state file that cannot be used) and the server's refusals exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from engine import errors

_STATE_SHAPE = ("a trusted-head file is JSON with an integer size and a root and hash (as strata read --verified "
                "and the client's verifier write it, or GET /v4/head's answer)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--verified``, ``--state`` and ``--public-key`` of ``strata read``."""
    p.add_argument("--verified", action="store_true",
                   help="prove every record against the head kept in --state (through a server: --url); "
                        "PROOF_FAILED and exit 1 instead of a record that does not prove out")
    p.add_argument("--state", default=None, metavar="FILE",
                   help="with --verified: the trusted head, kept between runs (a new file trusts the server's "
                        "first head; afterwards the head moves only forward, through a checked consistency proof)")
    p.add_argument("--public-key", default=None, metavar="KEY",
                   help="with --verified: the server's head-signing public key (64 hex digits, or a file from "
                        "strata keygen); every head must then carry its signature")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a verified read (or names one of its options)."""
    return bool(args.verified or args.state is not None or args.public_key is not None)


def _usage_error(args: argparse.Namespace) -> str | None:
    if not args.verified:
        return "--state and --public-key go with --verified"
    if args.data is not None:
        return "--verified reads through a server (--url): a store's own files prove nothing to the one reading them"
    if not (args.url or os.environ.get("STRATA_URL")):
        return "--verified reads through a server: give --url URL (or set STRATA_URL)"
    if args.state is None:
        return "--verified needs --state FILE: the head this reader trusts, kept between runs"
    return None


def _kept_state(path: str) -> str | None:
    """Why the state file at ``path`` cannot be used (None: it can, or it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            kept: Any = json.load(f)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    except ValueError:
        return f"it is not JSON; {_STATE_SHAPE}"
    if type(kept) is not dict or type(kept.get("size")) is not int or not all(
            type(kept.get(k)) is str for k in ("root", "hash")):
        return f"it is not a trusted head; {_STATE_SHAPE}"
    return None


def _problem(message: str) -> int:
    print(f"strata read: {message}", file=sys.stderr)
    return 2


def cmd(args: argparse.Namespace) -> int:
    """Run ``strata read --verified``; the exit status (see the module docstring)."""
    from engine.signed_head import KeyFileError
    from server.cli_data import _failed, _print_records, _tx_or_at
    from server.client import connect

    usage = _usage_error(args)
    if usage is not None:
        return _failed("read", errors.InvalidParameters(usage))
    why = _kept_state(args.state)
    if why is not None:
        return _problem(f"--state {args.state}: {why}")
    url = args.url or os.environ["STRATA_URL"]
    key = args.key if args.key is not None else os.environ.get("STRATA_KEY") or None
    try:
        store = connect(url, key, public_key=args.public_key)
    except KeyFileError as exc:
        return _problem(f"--public-key: {exc}")
    try:
        with store:
            try:
                store.verifier(args.state)
            except errors.ProofFailed as exc:
                print(f"strata read: {exc.code}: the head kept in {args.state}: {exc.message}", file=sys.stderr)
                return 1
            result = store.namespace(args.ns).read(args.keys, verified=True, **_tx_or_at(args))
    except errors.ProofFailed as exc:
        print(f"strata read: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except errors.EngineError as exc:
        return _failed("read", exc)
    except OSError as exc:  # the state file could not be written
        return _problem(f"--state {args.state}: cannot keep the trusted head: {exc.strerror or exc}")
    _print_records(args, result.records)
    return 0
