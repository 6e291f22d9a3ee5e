"""Run one module's mutants against a few test files in a single pytest session: a fast, conservative score.

``mutmut run`` first writes every mutant into ``mutants/`` (each function behind a trampoline that picks the
mutant named by ``MUTANT_UNDER_TEST``), then runs a coverage pass over the whole configured selection and,
for each mutant, a pytest process. On a loaded machine under ``nice -n 19`` that pass alone can take hours.
This runner reuses the mutants mutmut wrote, collects the given test files once, and for each mutant runs
them until one fails (first the test that killed the previous mutant, then those that name the mutated function)::

    python -m tests.mutation_focused server.http tests/server/test_http_request.py
    python -m tests.mutation_focused server.http tests/server/test_http_request.py xǁRequestǁbody__mutmut_62

A mutant these files do not kill may still be killed by another test of the configured selection, so the
survivors are an upper bound and the score a lower bound of what ``mutmut run`` reports. Survivors judged
equivalent are counted out as in ``tests.mutation``. Exit status: 0, or 1 below the 95 % target.

Each test runs under a time limit (``--timeout SECONDS``, default 5, or ten times the test's own time without
a mutant if that is longer): the engine has loops (a compaction walk, the expiry sweep, a scan), and a mutant
that makes one endless would otherwise hang the whole session. A test stopped by the limit fails, so its mutant
counts as detected, as ``mutmut run`` counts its timeouts, and is reported apart as a timeout. The limit
covers the test's teardown too (a fixture waiting for a thread the stopped test left waiting), and after a
timeout the test must pass again without a mutant, or the session stops with no score: state a stopped test
left behind would otherwise "kill" every later mutant by timeout. A test that fails
or passes the limit without any mutant means no score, as before::

    python -m tests.mutation_focused --timeout 10 engine.expiry tests/engine/test_expiry.py
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from tests.mutation import MUTANTS, TARGET, load_equivalent


def mutant_names(module: str) -> list[str]:
    """Every mutant of ``module`` in ``mutants/``, in mutmut's order (per function, by serial number)."""
    source = (MUTANTS / Path(*module.split("."))).with_suffix(".py").read_text()
    names = set(re.findall(r"def (x\S*?__mutmut_\d+)\(", source))
    return sorted(names, key=lambda n: (n.rsplit("_", 1)[0], int(n.rsplit("_", 1)[1])))


def _function_of(name: str) -> str:
    """``x_check_tx__mutmut_3`` -> ``check_tx``; ``xǁRequestǁbody__mutmut_9`` -> ``body``."""
    return name.rsplit("__mutmut_", 1)[0].split("ǁ")[-1].removeprefix("x_")


def _source(item: Any) -> str:
    """The source of a test function (the order only: a test that cannot be read goes last)."""
    try:
        return inspect.getsource(item.function)
    except (OSError, TypeError, AttributeError):
        return ""


class TestTimeout(BaseException):
    """Raised in the main thread when a test passes its time limit (a BaseException, so that no test's
    ``except Exception`` can swallow it)."""


#: The limit of a test's run without a mutant, which measures its own time (only a hang passes it).
CLEAN_LIMIT = 300.0


def _alarm(signum: int, frame: Any) -> None:
    raise TestTimeout("the test passed its time limit")


class MutantLoop:
    """A pytest plugin that replaces the test loop: every collected test, once per mutant."""

    def __init__(self, module: str, names: list[str], timeout: float = 5.0) -> None:
        self.module, self.names, self.timeout = module, names, timeout
        self.survivors: list[str] = []
        self.timeouts: list[str] = []
        self.clean_failures = 0
        self.limits: dict[int, float] = {}
        self.timed_out = False
        self.ran = False

    def pytest_runtestloop(self, session: Any) -> bool:
        items = session.items
        signal.signal(signal.SIGALRM, _alarm)
        os.environ["MUTANT_UNDER_TEST"] = ""
        self.ran = bool(items)
        for item in items:  # each test's limit: the default, or ten times its own time if that is longer
            self.limits[id(item)] = CLEAN_LIMIT
            start = time.monotonic()
            if self._fails(item):
                self.clean_failures += 1
                print(f"fails without a mutant: {item.nodeid}", file=sys.stderr, flush=True)
            self.limits[id(item)] = max(self.timeout, 10 * (time.monotonic() - start))
        if self.clean_failures:
            return True
        sources = {id(item): _source(item) for item in items}
        function = None
        for name in self.names:
            if function != _function_of(name):  # a new function: the tests that name it first
                function = _function_of(name)
                items.sort(key=lambda item: f"{function}(" not in sources[id(item)])
            os.environ["MUTANT_UNDER_TEST"] = f"{self.module}.{name}"
            self.timed_out = False
            killer = next((i for i, item in enumerate(items) if self._fails(item)), None)
            if killer is None:
                self.survivors.append(name)
                print(f"survived: {self.module}.{name}", flush=True)
            else:
                if self.timed_out:
                    self.timeouts.append(name)
                    print(f"timeout: {self.module}.{name}", flush=True)
                    if not self._still_clean(items[killer]):
                        return True
                # the next mutant is most likely of the same function: try this test first
                items.insert(0, items.pop(killer))
        os.environ["MUTANT_UNDER_TEST"] = ""
        return True

    def _still_clean(self, item: Any) -> bool:
        """After a timeout, whether ``item`` still passes without a mutant. A test stopped mid-way can
        leave state behind (a thread waiting on a lock its fixture's teardown then waits for); every
        later test would then time out and "kill" mutants it never saw, so the session stops, with no
        score, rather than count them."""
        os.environ["MUTANT_UNDER_TEST"] = ""
        if not self._fails(item):
            return True
        self.clean_failures += 1
        print(f"fails without a mutant after a timeout (state left behind): {item.nodeid}; "
              "run its file apart, or its other tests by node id", file=sys.stderr, flush=True)
        return False

    def _fails(self, item: Any) -> bool:
        """Whether the test fails (or passes its time limit: then ``timed_out`` is set). The alarm
        repeats every second after the limit, so a teardown that blocks after the call was stopped is
        stopped too, rather than hang the session."""
        signal.setitimer(signal.ITIMER_REAL, self.limits.get(id(item), self.timeout), 1.0)
        try:
            reports = runtestprotocol(item, nextitem=None, log=False)
        except TestTimeout:  # raised outside what pytest records (between its phases)
            self.timed_out = True
            return True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        failed = [report for report in reports if report.failed]
        if any("TestTimeout" in str(report.longrepr) for report in failed):
            self.timed_out = True
        return bool(failed)


def main(argv: list[str]) -> int:
    timeout = 5.0
    if argv[:1] == ["--timeout"] and len(argv) > 1:
        timeout, argv = float(argv[1]), argv[2:]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    module, tests, chosen = argv[0], argv[1].split(","), argv[2:]
    names = chosen or mutant_names(module)
    loop = MutantLoop(module, names, timeout)
    os.chdir(MUTANTS)  # the mutated copy of the code (and of the tests) is the one imported
    sys.path.insert(0, str(MUTANTS))
    for name in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
        del sys.modules[name]  # this package as imported from the repository, not from mutants/
    # A failing test is all that is asked: no assertion rewriting, and native tracebacks (pytest's own
    # formatting of a failure's source and diff costs more than most tests).
    pytest.main(["-q", "-p", "no:randomly", "-n", "0", "-p", "no:cacheprovider", "--assert=plain", "--tb=native",
                 *tests], plugins=[loop])
    if not loop.ran:
        print("no test was collected and run: no score", file=sys.stderr)
        return 2
    if loop.clean_failures:
        print(f"{loop.clean_failures} test(s) fail (or pass their time limit) without a mutant: no score",
              file=sys.stderr)
        return 2
    equivalent = load_equivalent()
    judged = [n for n in loop.survivors if f"{module}.{n}" not in equivalent]
    counted = len(names) - (len(loop.survivors) - len(judged))
    killed = len(names) - len(loop.survivors)
    score = killed / counted if counted else 1.0
    print(f"{module}: {len(names)} mutants, {killed - len(loop.timeouts)} killed, {len(loop.timeouts)} timeouts, "
          f"{len(loop.survivors) - len(judged)} survived equivalent, {len(judged)} survived other: {score:.1%}")
    for name in judged:
        print(f"  survived: {module}.{name}")
    return 1 if score < TARGET else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
