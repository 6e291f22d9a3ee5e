"""The mutation score per module, from the results ``mutmut run`` left in ``mutants/``.

Run from the repository root after (or during) a mutation run::

    nice -n 19 mutmut run --max-children 1          # all configured modules; resumes where it stopped
    nice -n 19 mutmut run --max-children 1 "engine.txlog*"   # one module (re-runs its mutants)
    python -m tests.mutation                         # the table
    python -m tests.mutation --survivors             # also list every survivor not judged equivalent

A surviving mutant judged equivalent (no test can tell it from the original) is listed in
``tests/mutation_equivalent.txt`` as ``<mutant name> <one line of why>``; the score counts it out:
``score = killed / (mutants - survived-equivalent - not run)``. Mutant names carry a serial number per
function, so an edit to a function can renumber its mutants: the table warns about listed names that no
longer survive. Exit status: 0, or 1 if a module that was run scores below the target (95 %).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENT_LIST = Path(__file__).resolve().parent / "mutation_equivalent.txt"
TARGET = 0.95

# mutmut's exit codes (mutmut/stats.py): what each means for the score.
KILLED = {1, 3, 37}
# 5 and 33 mean "no test runs this code": such a mutant survives, however mutmut labels it.
SURVIVED = {0, 5, 33}
TIMEOUT = {36, -24, 24, 152, 255}
NOT_RUN = {None, 2, 34}


@dataclass
class ModuleScore:
    """The counts for one mutated module."""

    module: str
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    survived: list[str] = field(default_factory=list)
    timeouts: int = 0
    not_run: int = 0
    other: int = 0

    @property
    def judged(self) -> int:
        """Mutants that count: run to a verdict and not judged equivalent."""
        return self.mutants - self.not_run - self.equivalent

    @property
    def score(self) -> float | None:
        # A timeout is a detected mutant (the tests did not pass), as mutmut counts it.
        return (self.killed + self.timeouts) / self.judged if self.judged else None


def load_equivalent(path: Path = EQUIVALENT_LIST) -> dict[str, str]:
    """``{mutant name: why}`` from the equivalence list (blank lines and ``#`` comments skipped)."""
    if not path.exists():
        return {}
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, why = line.partition(" ")
        if not why.strip():
            raise SystemExit(f"{path.name}: {name} has no reason")
        result[name] = why.strip()
    return result


def exit_codes(meta: Path) -> dict[str, int | None]:
    """``{mutant name: mutmut's exit code}`` from one ``.meta`` file (re-read if a running mutmut was
    caught writing it)."""
    for _ in range(20):
        try:
            codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
            return codes
        except json.JSONDecodeError:
            time.sleep(0.05)
    raise SystemExit(f"{meta}: not valid JSON")


def module_name(meta: Path) -> str:
    """``mutants/engine/txlog.py.meta`` -> ``engine.txlog``."""
    return ".".join(meta.relative_to(MUTANTS).with_suffix("").with_suffix("").parts)


def collect(equivalent: dict[str, str]) -> list[ModuleScore]:
    """One score per module that has a ``.meta`` result file."""
    scores = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        codes = exit_codes(meta)
        score = ModuleScore(module_name(meta))
        for name, code in codes.items():
            score.mutants += 1
            if code in KILLED:
                score.killed += 1
            elif code in SURVIVED:
                if name in equivalent:
                    score.equivalent += 1
                else:
                    score.survived.append(name)
            elif code in TIMEOUT:
                score.timeouts += 1
            elif code in NOT_RUN:
                score.not_run += 1
            else:  # suspicious, segfault: a crash is a detection, but say so in its own column
                score.other += 1
                score.killed += 1
        if score.mutants:
            scores.append(score)
    return scores


def table(scores: list[ModuleScore]) -> str:
    """The Markdown table docs/reliability.md shows."""
    lines = [
        "| module | mutants | killed | survived, equivalent | survived, other | timeouts | not run | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        shown = "—" if s.score is None else f"{s.score:.1%}"
        lines.append(f"| `{s.module}` | {s.mutants} | {s.killed} | {s.equivalent} | {len(s.survived)} "
                     f"| {s.timeouts} | {s.not_run} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not MUTANTS.is_dir():
        print("no mutants/ directory: run `nice -n 19 mutmut run --max-children 1` first", file=sys.stderr)
        return 2
    equivalent = load_equivalent()
    scores = collect(equivalent)
    ran = [s for s in scores if s.judged > 0]
    print(table(ran))
    skipped = [s.module for s in scores if s.judged == 0 and s.equivalent == 0]
    if skipped:
        print(f"\nnot run: {', '.join(skipped)}")
    surviving = {name for s in scores for name in s.survived}
    all_names = {name for meta in MUTANTS.rglob("*.py.meta")
                 for name, code in exit_codes(meta).items() if code in SURVIVED}
    stale = sorted(set(equivalent) - all_names)
    if stale:
        print(f"\nlisted as equivalent but not a survivor (renumbered or now killed): {', '.join(stale)}")
    if "--survivors" in argv and surviving:
        print("\nsurvivors not judged equivalent (`mutmut show <name>` shows the diff):")
        for name in sorted(surviving):
            print(f"  {name}")
    return 1 if any(s.score is not None and s.score < TARGET for s in ran) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
