"""``strata keygen``: an Ed25519 key pair for ``strata serve --signing-key`` (see :mod:`engine.signed_head`).

``--out FILE`` writes the private key to FILE (PKCS#8 PEM, created with mode 0600, never over an
existing file) and the public key to ``FILE.pub`` (64 hex digits and a newline); without ``--out``
the private key PEM goes to stdout, for a secrets manager to take. Either way the key id and the
public key are printed (to stderr when stdout holds the private key): the public key is what an
auditor is given, out of band, to check the heads the server signs.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_keygen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the private key to FILE (mode 0600) and the public key to FILE.pub "
                        "(default: the private key PEM to stdout)")


def cmd_keygen(args: argparse.Namespace) -> int:
    from engine import signed_head

    pem, public = signed_head.generate()
    about = f"key_id {signed_head.key_id(public)}\npublic_key {public.hex()}"
    if args.out is None:
        sys.stdout.write(pem.decode())
        print(about, file=sys.stderr)
        return 0
    pub_path = f"{args.out}.pub"
    for path in (args.out, pub_path):
        if os.path.lexists(path):
            print(f"strata keygen: {path} exists; a key is never overwritten (give another --out)", file=sys.stderr)
            return 2
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        with open(pub_path, "x") as out:
            out.write(public.hex() + "\n")
    except OSError as exc:
        print(f"strata keygen: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(about)
    print(f"private key {args.out} (mode 0600; give it to strata serve --signing-key)")
    print(f"public key {pub_path} (give it to auditors: strata verify --public-key, connect(public_key=...))")
    return 0
