"""The tx log keeps operations in the order they were applied, a re-touched key at its last place."""

from __future__ import annotations

from engine import Store


def test_a_retouched_key_moves_to_its_last_position(store: Store) -> None:
    with store.transaction() as t:
        t.put("n", "a", 1)
        t.put("n", "b", 2)
        t.put("n", "a", 3)
    info = store.tx_info(t.tx)  # type: ignore[arg-type]
    assert info is not None
    assert [(o.key, o.op) for o in info.operations] == [("b", "put"), ("a", "put")]
    assert store.namespace("n").get("a").value == 3  # type: ignore[union-attr]


def test_operations_across_namespaces_and_kinds_keep_their_order(store: Store) -> None:
    store.namespace("m").put({"x": 0, "y": 0})
    with store.transaction() as t:
        t.clear("m", "x")
        t.put("n", "k", 1)
        t.delete("m", "y")
        t.put("m", "x", 2)
    info = store.tx_info(t.tx)  # type: ignore[arg-type]
    assert info is not None
    assert [(o.namespace, o.key, o.op) for o in info.operations] == [
        ("n", "k", "put"), ("m", "y", "delete"), ("m", "x", "put")]
