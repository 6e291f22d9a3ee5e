"""One commit time per write: the expiry sweep a write makes first and the write's own tx commit at
the time the write read once, the time its ``expect`` conditions were checked at."""

from __future__ import annotations

from pathlib import Path

from engine import Item, Store
from engine.txlog import entry
from tests.engine.clock import T0


class TickingClock:
    """A clock that moves one microsecond each time it is read, so a second read shows."""

    def __init__(self, us: int) -> None:
        self.us = us

    def __call__(self) -> float:
        self.us += 1
        return (self.us - 1) / 1_000_000


def test_the_sweep_and_the_write_commit_at_the_time_the_expects_were_checked(tmp_path: Path) -> None:
    start = round(T0 * 1_000_000)
    clock = TickingClock(start)
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("n")
        put_tx = ns.put([Item("due", 1, expiration=T0 + 5), Item("edge", 2, expiration=T0 + 10)])
        clock.us = round((T0 + 10) * 1_000_000) - 1  # the write below reads the last microsecond before "edge" expires
        with store.transaction() as t:
            t.put("n", "other", 3)
            t.expect("n", "edge", tx=put_tx)  # live when checked
        assert t.tx == put_tx + 2  # after the tx recording the expiry of "due"
        swept, own = store.tx_info(put_tx + 1), store.tx_info(t.tx)
        assert swept is not None and own is not None
        assert [(o.key, o.op) for o in swept.operations] == [("due", "delete")]
        backend = store._backend
        times = backend.read(lambda txn: [entry(txn, backend.dbs, tx)[0] for tx in (put_tx + 1, t.tx)])
        assert times == [round((T0 + 10) * 1_000_000) - 1] * 2
        # At the write's tx "edge" is still live, as its expect said.
        assert ns.get("edge", tx=t.tx) is not None
