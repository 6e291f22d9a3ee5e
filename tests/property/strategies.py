"""Hypothesis strategies for awkward keys and every kind of value the engine accepts."""

from __future__ import annotations

from hypothesis import strategies as st

NAMESPACES = ("alpha", "beta", "g.a-m_ma")

# Small alphabets make collisions (same key twice, shared prefixes) likely; NUL, '/', space and
# non-ASCII exercise the key escape; the long stems push keys past the short form into buckets.
_TAIL = st.text(alphabet=["a", "b", "\x00", "/", " ", "é", "\U0001f600"], max_size=12)
_STEMS = st.sampled_from(["", "a", "b/", "k" * 470, "k" * 478, "k" * 479 + "\x00", "\x00" * 240, "z" * 496])


# A few hot keys, short and long, so that the same key is rewritten, cleared and deleted often.
HOT = ["a", "a\x00", "b/", "k" * 478 + "a", "k" * 479 + "\x00" * 16, "z" * 496 + "\U0001f600", "k" * 470]


@st.composite
def _built_keys(draw: st.DrawFn) -> str:
    key = draw(_STEMS) + draw(_TAIL)
    while len(key.encode()) > 512:
        key = key[:-1]
    return key or "a"


def keys() -> st.SearchStrategy[str]:
    """Keys that collide often and straddle the short/long layout boundary."""
    return st.sampled_from(HOT) | _built_keys()


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)
values = json_values | st.binary(max_size=40)
