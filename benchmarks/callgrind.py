"""Instructions a benchmark module's ``--inner`` run executes, counted by valgrind's callgrind.

Contract: ``instructions(module, args)`` runs ``python -m MODULE --inner ARGS`` under
``valgrind --tool=callgrind`` (hash seed fixed, so dict layouts do not move the count) and returns the
total instructions it collected. Callers run it twice, with N and 0 operations after the same setup, and
divide the difference by N: start-up and loading cancel out, and the count does not move with the
machine's load as CPU time does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile


def instructions(module: str, args: list[str]) -> int:
    """Total instructions of ``python -m module --inner *args`` under callgrind."""
    fd, out = tempfile.mkstemp(prefix="callgrind-", suffix=".out")
    os.close(fd)
    env = dict(os.environ, PYTHONHASHSEED="0")
    try:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               sys.executable, "-m", module, "--inner", *args],
                              capture_output=True, text=True, env=env, check=True)
    finally:
        os.unlink(out)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1))
