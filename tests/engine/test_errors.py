"""Every error code the engine raises, each leaving the store byte-for-byte as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine import Item, Limits, Store, errors
from tests.conftest import fingerprint


@pytest.fixture
def seeded(store: Store) -> Store:
    ns = store.namespace("sample")
    ns.put({"a": 1, "b": b"\x00"})
    ns.put({"a": 2})
    store.create_namespace("empty")
    return store


ns = "sample"
Case = Callable[[Store], Any]
CASES: list[tuple[str, str, Case]] = [
    ("negative tx", "INVALID_PARAMETERS", lambda s: s.namespace(ns).read(["a"], tx=-1)),
    ("float tx", "INVALID_PARAMETERS", lambda s: s.namespace(ns).read(["a"], tx=1.0)),
    ("bool tx", "INVALID_PARAMETERS", lambda s: s.namespace(ns).read(["a"], tx=True)),
    ("str tx", "INVALID_PARAMETERS", lambda s: s.namespace(ns).read(["a"], tx="1")),
    ("keys as one string", "INVALID_PARAMETERS", lambda s: s.namespace(ns).read("a")),
    ("bad limit", "INVALID_PARAMETERS", lambda s: s.namespace(ns).scan(limit=-1)),
    ("note not an object", "INVALID_PARAMETERS", lambda s: s.namespace(ns).put({"a": 3}, note="me")),
    ("note too large", "INVALID_PARAMETERS", lambda s: s.namespace(ns).put({"a": 3}, note={"x": "y" * 5000})),
    ("malformed item", "INVALID_PARAMETERS", lambda s: s.namespace(ns).put([("a", 1, 2)])),
    ("future tx", "FUTURE_TX", lambda s: s.namespace(ns).read(["a"], tx=3)),
    ("future tx scan", "FUTURE_TX", lambda s: s.namespace(ns).scan(tx=99)),
    ("dot namespace", "INVALID_NAMESPACE", lambda s: s.namespace("..")),
    ("slash namespace", "INVALID_NAMESPACE", lambda s: s.namespace("a/b")),
    ("long namespace", "INVALID_NAMESPACE", lambda s: s.namespace("n" * 65)),
    ("drop missing", "NAMESPACE_NOT_FOUND", lambda s: s.drop_namespace("nope")),
    ("create existing", "NAMESPACE_EXISTS", lambda s: s.create_namespace("empty")),
    ("empty key", "INVALID_KEY", lambda s: s.namespace(ns).put({"": 1})),
    ("bytes key", "INVALID_KEY", lambda s: s.namespace(ns).put([(b"a", 1)])),
    ("surrogate key", "INVALID_KEY", lambda s: s.namespace(ns).put({"\ud800": 1})),
    ("surrogate key read", "INVALID_KEY", lambda s: s.namespace(ns).read(["\udfff"])),
    ("513-byte key", "KEY_TOO_LONG", lambda s: s.namespace(ns).put({"x" * 513: 1})),
    ("257 two-byte chars", "KEY_TOO_LONG", lambda s: s.namespace(ns).delete(["é" * 257])),
    ("tuple value", "INVALID_VALUE", lambda s: s.namespace(ns).put({"a": (1, 2)})),
    ("nan value", "INVALID_VALUE", lambda s: s.namespace(ns).put([Item("a", float("nan"))])),
    ("int key in dict", "INVALID_VALUE", lambda s: s.namespace(ns).put({"a": {1: 2}})),
    ("empty put", "EMPTY_BATCH", lambda s: s.namespace(ns).put({})),
    ("empty delete", "EMPTY_BATCH", lambda s: s.namespace(ns).delete([])),
    ("empty transaction", "EMPTY_BATCH", lambda s: s.transaction().commit()),
    ("duplicate keys", "DUPLICATE_KEY", lambda s: s.namespace(ns).put([("a", 1), ("a", 2)])),
    ("duplicate clear", "DUPLICATE_KEY", lambda s: s.namespace(ns).clear(["a", "a"])),
]


def _expect_conflict(s: Store) -> None:
    with s.transaction() as t:
        t.put(ns, "a", 10)
        t.expect(ns, "a", tx=1)  # "a" was last changed at tx 2


CASES.append(("failed expect", "CONFLICT", _expect_conflict))


@pytest.mark.parametrize(("name", "code", "action"), CASES, ids=[c[0] for c in CASES])
def test_error_leaves_store_unchanged(seeded: Store, name: str, code: str, action: Case) -> None:
    before = fingerprint(seeded)
    with pytest.raises(errors.EngineError) as info:
        action(seeded)
    assert info.value.code == code
    assert info.value.message
    assert errors.BY_CODE[code] is type(info.value)
    assert fingerprint(seeded) == before
    assert seeded.latest_tx == 2


def test_limits_are_configurable_and_enforced(tmp_path: Any) -> None:
    limits = Limits(max_batch=3, max_read_keys=2, max_key_bytes=8, max_value_bytes=16)
    with Store.open(tmp_path / "s", sync=False, limits=limits) as s:
        sample = s.namespace("n")
        sample.put({"k": 1})
        before = fingerprint(s)
        cases: list[tuple[str, Case]] = [
            ("BATCH_TOO_LARGE", lambda: sample.put({"a": 1, "b": 2, "c": 3, "d": 4})),
            ("BATCH_TOO_LARGE", lambda: sample.read(["a", "b", "c"])),
            ("KEY_TOO_LONG", lambda: sample.put({"123456789": 1})),
            ("VALUE_TOO_LARGE", lambda: sample.put({"a": "x" * 17})),
            ("VALUE_TOO_LARGE", lambda: sample.put({"a": b"x" * 17})),
        ]
        for code, action in cases:
            with pytest.raises(errors.EngineError) as info:
                action()
            assert info.value.code == code
        assert fingerprint(s) == before


def test_every_bad_item_is_listed(store: Store) -> None:
    items = [("good", 1), ("", 2), ("also-good", 3), ("x" * 600, 4), ("bad-value", (1,))]
    with pytest.raises(errors.InvalidKey) as info:
        store.namespace("n").put(items)
    listed = info.value.details["errors"]
    assert [(e["index"], e["code"]) for e in listed] == [(1, "INVALID_KEY"), (3, "KEY_TOO_LONG"), (4, "INVALID_VALUE")]
    assert listed[2]["key"] == "bad-value"
    assert store.latest_tx == 0


def test_conflict_names_each_key(seeded: Store) -> None:
    with pytest.raises(errors.Conflict) as info, seeded.transaction() as t:
        t.delete(ns, "b")
        t.expect(ns, "a", tx=2)  # right
        t.expect(ns, "b", tx=0)  # wrong: b is live since tx 1
        t.expect("other", "zz", tx=5)  # wrong: absent
    conflicts = {(c["namespace"], c["key"]): (c["expected"], c["actual"]) for c in info.value.details["conflicts"]}
    assert conflicts == {(ns, "b"): (0, 1), ("other", "zz"): (5, 0)}


def test_closed_store_refuses_calls(tmp_path: Any) -> None:
    s = Store.open(tmp_path / "s", sync=False)
    sample = s.namespace("n")
    s.close()
    s.close()  # closing twice is fine
    for action in (lambda: sample.put({"a": 1}), lambda: sample.read(["a"]), lambda: s.latest_tx):
        with pytest.raises(errors.StoreClosed, match="the store is closed") as info:
            action()
        assert info.value.code == "STORE_CLOSED"


def test_no_lmdb_exception_escapes() -> None:
    import lmdb

    assert not any(issubclass(cls, lmdb.Error) for cls in errors.BY_CODE.values())
