"""SubscriptionTrie, checked against the brute-force matcher, with and without cache.

Every test runs with the cache off (0), with a tiny cache that evicts all the time
(2), and with the default cache (4096), as nats-server runs its sublist tests.
"""

from __future__ import annotations

from collections import Counter
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warren.core.topics import (
    MANY0,
    MANY1,
    ONE,
    Filter,
    Prefix,
    Token,
    filter_matches,
    parse_amqp_binding_key,
    parse_mqtt_filter,
    parse_native_filter,
)
from warren.core.trie import SubscriptionTrie

from .test_topics import DOLLAR_CASES, MATCH_CASES

CACHE_SIZES = [0, 2, 4096]

# Levels come from a small alphabet so that random filters and topics match often,
# with an empty level and '$' levels so that the $ rule is exercised.
LEVELS = ["a", "b", "ab", "", "$s"]
TOPIC_LEVELS = [*LEVELS, "abc", "$", "b$"]

one_level_tokens: st.SearchStrategy[Token] = st.one_of(
    st.sampled_from(LEVELS),
    st.just(ONE),
    st.builds(Prefix, st.sampled_from(["", "a", "ab", "$", "$s"])),
)
tokens: st.SearchStrategy[Token] = st.one_of(one_level_tokens, st.sampled_from([MANY0, MANY1]))

# MQTT and native filters: MANY0/MANY1 only last. A trie holding only these never
# backtracks, which is the hot path; the property runs once with these alone.
trailing_filters: st.SearchStrategy[Filter] = st.builds(
    lambda head, tail: (*head, *tail),
    st.lists(one_level_tokens, max_size=3),
    st.sampled_from([(), (MANY0,), (MANY1,)]),
)
# Any filter, including AMQP-style inner MANY0 and combinations no parser makes.
filters: st.SearchStrategy[Filter] = st.one_of(
    trailing_filters, st.lists(tokens, max_size=4).map(tuple)
)
topics: st.SearchStrategy[str] = st.lists(
    st.sampled_from(TOPIC_LEVELS), min_size=1, max_size=5
).map("/".join)

# Every topic of up to three levels over a smaller alphabet: checked after each
# example, so that rare combinations (a Prefix('') against an empty level, a
# wildcard against a '$' level) are always tried.
EXHAUSTIVE_TOPICS = [
    "/".join(p) for n in (1, 2, 3) for p in product(["a", "", "$s", "ab"], repeat=n)
]


def operations(filter_strategy: st.SearchStrategy[Filter]) -> st.SearchStrategy[list[tuple]]:  # type: ignore[type-arg]
    """("add", f, value) | ("remove", f, value) | ("remove-existing", n) | ("match", topic)"""
    return st.lists(
        st.one_of(
            st.tuples(st.just("add"), filter_strategy, st.integers(0, 3)),
            st.tuples(st.just("remove"), filter_strategy, st.integers(0, 3)),
            st.tuples(st.just("remove-existing"), st.integers(0, 1000)),
            st.tuples(st.just("match"), topics),
        ),
        max_size=60,
    )


def brute_force(pairs: dict[tuple[Filter, int], None], topic: str) -> list[int]:
    return sorted(value for f, value in pairs if filter_matches(f, topic))


@pytest.fixture(params=CACHE_SIZES, ids=lambda size: f"cache={size}")
def cache_size(request: pytest.FixtureRequest) -> int:
    size: int = request.param
    return size


# --- property: the trie agrees with the brute-force matcher ---------------------------------


@pytest.mark.parametrize("shape", ["trailing-many", "any"])
@pytest.mark.parametrize("size", CACHE_SIZES, ids=lambda size: f"cache={size}")
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_trie_matches_like_brute_force(size: int, shape: str, data: st.DataObject) -> None:
    ops = data.draw(operations(trailing_filters if shape == "trailing-many" else filters))
    probes = data.draw(st.lists(topics, max_size=10))
    trie: SubscriptionTrie[int] = SubscriptionTrie(cache_size=size)
    model: dict[tuple[Filter, int], None] = {}
    # Topics matched lately, most likely still cached: each change is followed by
    # matching them again, which catches a change the cache failed to see.
    recent: list[str] = []

    def check(topic: str) -> None:
        assert sorted(trie.match(topic)) == brute_force(model, topic)

    for op in ops:
        if op[0] == "match":
            topic = op[1]
            check(topic)
            check(topic)  # a cache hit when a cache is on
            recent.append(topic)
            continue
        if op[0] == "add":
            _, f, value = op
            assert trie.add(f, value) is ((f, value) not in model)
            model[(f, value)] = None
        elif op[0] == "remove":
            _, f, value = op
            assert trie.remove(f, value) is ((f, value) in model)
            model.pop((f, value), None)
        elif model:
            f, value = list(model)[op[1] % len(model)]
            assert trie.remove(f, value) is True
            del model[(f, value)]
        else:
            continue
        literals = [token for token in f if isinstance(token, str)]
        if f and len(literals) == len(f):
            recent.append("/".join(literals))
        for topic in recent[-3:]:
            check(topic)
        assert len(trie) == len(model)
        assert len(trie._cache) <= size
    for topic in [*probes, *EXHAUSTIVE_TOPICS]:
        assert sorted(trie.match(topic)) == brute_force(model, topic)
    assert Counter(trie) == Counter(list(model))
    for f, value in list(model):
        assert trie.remove(f, value)
    assert len(trie) == 0
    assert list(trie) == []
    assert trie._root.is_empty(), "remove must prune every node it emptied"
    assert trie._inner_many == 0, "back on the non-backtracking walk"


# --- examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(("f", "topic", "expected"), MATCH_CASES + DOLLAR_CASES)
def test_trie_agrees_with_reference_cases(
    cache_size: int, f: Filter, topic: str, expected: bool
) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add(f, "v")
    assert trie.match(topic) == (["v"] if expected else [])


def test_contract_examples(cache_size: int) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add(parse_mqtt_filter("a/#"), "mqtt")
    trie.add(parse_amqp_binding_key("a.#.c"), "amqp")
    trie.add(parse_native_filter("a/>"), "native")
    assert sorted(trie.match("a")) == ["mqtt"]
    assert sorted(trie.match("a/b")) == ["mqtt", "native"]
    assert sorted(trie.match("a/c")) == ["amqp", "mqtt", "native"]
    assert sorted(trie.match("a/b/c")) == ["amqp", "mqtt", "native"]
    assert sorted(trie.match("a/b/d/c")) == ["amqp", "mqtt", "native"]
    assert trie.match("b") == []


def test_one_entry_per_filter_value_pair(cache_size: int) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    assert trie.add(("a", MANY0), "s1")
    assert not trie.add(("a", MANY0), "s1")
    assert trie.add(("a", ONE), "s1")
    assert trie.add(("a", "b"), "s2")
    assert len(trie) == 3
    # s1 matches through two filters, so it is reported twice.
    assert sorted(trie.match("a/b")) == ["s1", "s1", "s2"]


def test_filter_that_matches_in_several_ways_reports_once(cache_size: int) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add((MANY0, "a", MANY0), "x")
    trie.add((MANY0, MANY0), "y")
    trie.add((MANY1, MANY0, MANY1), "z")
    assert sorted(trie.match("a/a/a")) == ["x", "y", "z"]
    assert sorted(trie.match("a")) == ["x", "y"]


def test_values_come_out_in_insertion_order(cache_size: int) -> None:
    trie: SubscriptionTrie[int] = SubscriptionTrie(cache_size)
    for value in (5, 1, 4, 2, 3):
        trie.add(("a", "b"), value)
    assert trie.match("a/b") == [5, 1, 4, 2, 3]
    trie.remove(("a", "b"), 4)
    trie.add(("a", "b"), 4)
    assert trie.match("a/b") == [5, 1, 2, 3, 4]


def test_match_returns_a_new_list_each_time(cache_size: int) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add(("a",), "v")
    first = trie.match("a")
    first.append("junk")
    first.clear()
    second = trie.match("a")
    assert second == ["v"]
    assert second is not trie.match("a")


@pytest.mark.parametrize(
    "f",
    [("a", "b"), ("a", ONE), ("a", MANY0), (MANY1,), (Prefix("a"), "b"), (MANY0, "b")],
    ids=repr,
)
def test_add_and_remove_are_seen_by_a_cached_topic(cache_size: int, f: Filter) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add(("a", "b"), "old")
    trie.add(("$x",), "other")
    assert trie.match("a/b") == ["old"]
    assert trie.match("$x") == ["other"]
    trie.add(f, "new")
    assert sorted(trie.match("a/b")) == ["new", "old"]
    assert trie.match("$x") == ["other"]
    trie.remove(f, "new")
    assert trie.match("a/b") == ["old"]
    trie.remove(("a", "b"), "old")
    assert trie.match("a/b") == []
    assert trie.match("$x") == ["other"]


def test_remove_of_absent_pair_changes_nothing(cache_size: int) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    trie.add(("a", "b"), "v")
    assert not trie.remove(("a", "b"), "w")
    assert not trie.remove(("a",), "v")
    assert not trie.remove(("a", "b", "c"), "v")
    assert not trie.remove(("a", ONE), "v")
    assert trie.match("a/b") == ["v"]
    assert len(trie) == 1


def test_remove_prunes_empty_nodes_but_keeps_shared_ones() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(("a", "b", "c"), "deep")
    trie.add(("a",), "shallow")
    trie.remove(("a", "b", "c"), "deep")
    node = trie._root.literal["a"]
    assert node.values == {"shallow": None}
    assert node.is_empty() is False
    assert not node.literal
    trie.remove(("a",), "shallow")
    assert trie._root.is_empty()


def test_iteration_is_a_snapshot(cache_size: int) -> None:
    trie: SubscriptionTrie[int] = SubscriptionTrie(cache_size)
    pairs: list[tuple[Filter, int]] = [
        (("a",), 1),
        (("a", ONE), 2),
        ((MANY0,), 3),
        ((Prefix("x"), MANY1), 4),
        ((), 5),
    ]
    for f, value in pairs:
        trie.add(f, value)
    for f, value in trie:
        trie.remove(f, value)
    assert len(trie) == 0
    assert trie._root.is_empty()


def test_cache_stays_bounded() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size=8)
    trie.add(("t", ONE), "v")
    for i in range(100):
        assert trie.match(f"t/{i}") == ["v"]
        assert len(trie._cache) <= 8
    trie.clear_cache()
    assert not trie._cache
    assert trie.match("t/1") == ["v"]


def test_cache_off_caches_nothing() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size=0)
    trie.add(("a",), "v")
    assert trie.match("a") == ["v"]
    assert not trie._cache


def test_many_prefixes_under_one_node(cache_size: int) -> None:
    # More prefixes than characters in the level: the walk looks up the level's
    # own prefixes instead of testing every prefix.
    trie: SubscriptionTrie[str] = SubscriptionTrie(cache_size)
    for prefix in ["", "a", "ab", "abc", "abcd", "b", "$"]:
        trie.add(("x", Prefix(prefix)), prefix)
    assert sorted(trie.match("x/ab")) == ["", "a", "ab"]
    assert sorted(trie.match("x/")) == [""]
    assert sorted(trie.match("x/$")) == ["", "$"]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        SubscriptionTrie(cache_size=-1)
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    with pytest.raises(TypeError, match="tuple of tokens"):
        trie.add("a/b", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a filter token"):
        trie.add(("a", 3), "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple of tokens"):
        trie.remove(["a"], "v")  # type: ignore[arg-type]


def test_bad_filter_leaves_the_trie_unchanged() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    with pytest.raises(TypeError):
        trie.add(("a", "b", None), "v")  # type: ignore[arg-type]
    assert trie._root.is_empty()
    assert len(trie) == 0
