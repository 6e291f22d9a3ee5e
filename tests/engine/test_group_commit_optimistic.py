"""Group commit runs its members directly in the group's transaction, and reruns the group with
each member in a nested transaction only when one of them fails.

What must not change: each write its own tx, its own error, a failing write leaving no trace (the
store's bytes, compared with :func:`tests.conftest.fingerprint` against the same successful writes
made one at a time under the same settable clock), gapless txs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import Store
from engine.errors import Conflict, StorageError
from tests.conftest import fingerprint
from tests.engine.clock import Clock
from tests.engine.test_group_commit import Gathering, counters


def test_members_of_a_group_without_failures_share_its_transaction(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False) as store:
        backend = store._backend
        seen: list[tuple[str, Any]] = []

        def member(name: str) -> Any:
            def fn(txn: Any) -> str:
                seen.append((name, txn))  # keeps the transaction object alive: identities stay distinct
                return name
            return lambda: backend.write(fn, cost=1)

        with Gathering(store) as g:
            for name in "abcd":
                g.add(name, member(name))
        assert [g.results[n] for n in "abcd"] == list("abcd")
        assert [name for name, _ in seen] == list("abcd")  # each ran once
        assert len({id(txn) for _, txn in seen}) == 1  # in one transaction, no nested ones


def test_a_failure_reruns_the_group_each_member_nested(tmp_path: Path) -> None:
    """The first attempt stops at the failing member and is rolled back; the rerun gives every
    member a nested transaction of its own, so the failure is the failing member's alone."""
    with Store.open(tmp_path / "s", sync=False) as store:
        backend = store._backend
        seen: list[tuple[str, Any]] = []

        def member(name: str, fails: bool = False) -> Any:
            def fn(txn: Any) -> str:
                seen.append((name, txn))
                txn.put(f"junk-{name}".encode(), b"x", db=backend.meta)
                if fails:
                    raise ZeroDivisionError(name)
                return name
            return lambda: backend.write(fn, cost=1)

        before = counters(store)
        with Gathering(store) as g:
            g.add("a", member("a"))
            g.add("bad", member("bad", fails=True))
            g.add("b", member("b"))
        assert (g.results["a"], g.results["b"]) == ("a", "b")
        assert type(g.results["bad"]) is ZeroDivisionError and str(g.results["bad"]) == "bad"
        assert [name for name, _ in seen] == ["a", "bad", "a", "bad", "b"]
        first, rerun = seen[:2], seen[2:]
        assert first[0][1] is first[1][1]  # the first attempt: one transaction
        assert len({id(txn) for _, txn in rerun}) == 3  # the rerun: one nested transaction each
        writes, commits, _ = (a - b for a, b in zip(counters(store), before, strict=True))
        assert (writes, commits) == (3, 2)  # the held write, then the group: one commit (the rerun's)
        junk = backend.read(lambda txn: [txn.get(f"junk-{n}".encode(), db=backend.meta) for n in ("a", "bad", "b")])
        assert junk == [b"x", None, b"x"]


def _failing_writes(store: Store) -> dict[str, Any]:
    """The calls of the mixed group below: plain puts, and writes that fail in every way a member
    can (an engine error from a condition, a bug after writing, a refusal by LMDB)."""
    ns, backend = store.namespace("n"), store._backend

    def bug(txn: Any) -> None:
        txn.put(b"junk", b"written, then a bug", db=backend.meta)
        raise ZeroDivisionError("a bug in fn")

    def lmdb_refuses(txn: Any) -> None:
        txn.put(b"junk2", b"x", db=backend.meta)
        txn.put(b"", b"x", db=backend.meta)  # LMDB refuses an empty key

    def conflicting() -> int | None:
        with store.transaction() as t:
            t.put("n", "c", "never")
            t.expect("n", "k", tx=99)
        return t.tx

    return {
        "conflict": conflicting,
        "ok1": lambda: ns.put({"a": 1}),
        "bug": lambda: backend.write(bug, cost=1),
        "ok2": lambda: store.namespace("m").put({"b": 2}),  # a new namespace in the group
        "ok3": lambda: ns.put({"a": 3}),
        "lmdb": lambda: backend.write(lmdb_refuses, cost=1),
        "ok4": lambda: ns.put({"d": 4}),
    }


def test_failing_members_leave_the_store_as_the_others_alone_would(tmp_path: Path) -> None:
    """A group of seven, three failing (the first member among them): the four others get txs 2-5
    in queue order, and the store's bytes equal a store where only those four were written, one
    at a time, at the same instant."""
    clock = Clock()
    with Store.open(tmp_path / "grouped", sync=False, clock=clock) as grouped, \
            Store.open(tmp_path / "alone", sync=False, clock=clock) as alone:
        for store in (grouped, alone):
            store.namespace("n").put({"k": 0})
        with Gathering(grouped) as g:
            for name, call in _failing_writes(grouped).items():
                g.add(name, call)
        assert [g.results[n] for n in ("ok1", "ok2", "ok3", "ok4")] == [2, 3, 4, 5]
        assert isinstance(g.results["conflict"], Conflict)
        assert type(g.results["bug"]) is ZeroDivisionError
        assert isinstance(g.results["lmdb"], StorageError)
        assert counters(grouped)[:2] == (6, 3)  # the seed, the held write, the group

        each = _failing_writes(alone)
        assert [each[n]() for n in ("ok1", "ok2", "ok3", "ok4")] == [2, 3, 4, 5]
        assert fingerprint(grouped) == fingerprint(alone)
        assert grouped.verify().ok


def test_a_write_failing_only_in_the_first_attempt_commits_in_the_rerun(tmp_path: Path) -> None:
    """A write function must be safe to run again; its outcome is the one of the attempt that
    committed: here it fails in the group's first attempt and succeeds in the rerun."""
    with Store.open(tmp_path / "s", sync=False) as store:
        ns, backend = store.namespace("n"), store._backend
        calls: list[int] = []

        def flaky(txn: Any) -> str:
            calls.append(1)
            if len(calls) == 1:
                raise ZeroDivisionError("first attempt only")
            return "second"

        with Gathering(store) as g:
            g.add("a", lambda: ns.put({"a": 1}))
            g.add("flaky", lambda: backend.write(flaky, cost=1))
            g.add("b", lambda: ns.put({"b": 1}))
        assert (g.results["a"], g.results["flaky"], g.results["b"]) == (1, "second", 2)
        assert len(calls) == 2 and store.verify().ok
