"""RetainedStore, checked against the brute-force matcher."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warren.core.retained import RetainedStore
from warren.core.topics import (
    MANY0,
    MANY1,
    ONE,
    Filter,
    Prefix,
    Token,
    filter_matches,
    parse_mqtt_filter,
)

from .test_topics import DOLLAR_CASES, MATCH_CASES
from .test_trie import filters, topics

# ("set", topic, message) | ("delete", topic) | ("match", filter)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), topics, st.integers(0, 9)),
        st.tuples(st.just("delete"), topics),
        st.tuples(st.just("match"), filters),
    ),
    max_size=60,
)


# Every filter of up to two tokens over a smaller alphabet, checked after each example.
FILTER_TOKENS: list[Token] = ["a", "", "$s", ONE, MANY0, MANY1, Prefix("a"), Prefix("$")]
EXHAUSTIVE_FILTERS: list[Filter] = [f for n in (1, 2) for f in product(FILTER_TOKENS, repeat=n)]


def brute_force(model: dict[str, int], f: Filter) -> list[tuple[str, int]]:
    return sorted((topic, message) for topic, message in model.items() if filter_matches(f, topic))


@settings(max_examples=400, deadline=None)
@given(ops=operations, probes=st.lists(filters, max_size=10))
def test_store_matches_like_brute_force(ops: list[tuple], probes: list[Filter]) -> None:  # type: ignore[type-arg]
    store: RetainedStore[int] = RetainedStore()
    model: dict[str, int] = {}
    for op in ops:
        if op[0] == "set":
            _, topic, message = op
            store.set(topic, message)
            model[topic] = message
        elif op[0] == "delete":
            topic = op[1]
            assert store.delete(topic) is (topic in model)
            model.pop(topic, None)
        else:
            f = op[1]
            found = store.match(f)
            assert len(found) == len(set(found)), "each topic at most once"
            assert sorted(found) == brute_force(model, f)
        assert len(store) == len(model)
    for f in [*probes, *EXHAUSTIVE_FILTERS]:
        assert sorted(store.match(f)) == brute_force(model, f)
    assert list(store) == list(model.items())
    for topic in TOPIC_SAMPLE:
        assert store.get(topic) == model.get(topic)
    for topic in list(model):
        assert store.delete(topic)
    assert len(store) == 0
    assert not store._root.children, "delete must prune every node it emptied"


TOPIC_SAMPLE = ["a", "a/b", "", "$s", "ab/abc", "b$/$"]


@pytest.mark.parametrize(("f", "topic", "expected"), MATCH_CASES + DOLLAR_CASES)
def test_store_agrees_with_reference_cases(f: Filter, topic: str, expected: bool) -> None:
    store: RetainedStore[str] = RetainedStore()
    store.set(topic, "m")
    assert store.match(f) == ([(topic, "m")] if expected else [])


def test_set_replaces_and_get_finds() -> None:
    store: RetainedStore[str] = RetainedStore()
    store.set("a/b", "first")
    store.set("a/b", "second")
    assert store.get("a/b") == "second"
    assert store.get("a") is None
    assert len(store) == 1
    assert store.match(("a", "b")) == [("a/b", "second")]


def test_mqtt_examples() -> None:
    store: RetainedStore[str] = RetainedStore()
    for topic in ["a", "a/b", "a/b/c", "ab", "$SYS/x", "b/$x"]:
        store.set(topic, topic.upper())
    assert sorted(t for t, _ in store.match(parse_mqtt_filter("a/#"))) == ["a", "a/b", "a/b/c"]
    assert sorted(t for t, _ in store.match(parse_mqtt_filter("#"))) == [
        "a",
        "a/b",
        "a/b/c",
        "ab",
        "b/$x",
    ]
    assert store.match(parse_mqtt_filter("+/x")) == []
    assert store.match(parse_mqtt_filter("$SYS/#")) == [("$SYS/x", "$SYS/X")]
    # The $ rule looks at the first level only.
    assert sorted(store.match(parse_mqtt_filter("+/+"))) == [("a/b", "A/B"), ("b/$x", "B/$X")]


def test_inner_many_reports_each_topic_once() -> None:
    store: RetainedStore[int] = RetainedStore()
    store.set("a/a/a", 1)
    store.set("a", 2)
    for f in [(MANY0, "a", MANY0), (MANY0, MANY0), (MANY1, MANY0), (MANY0, ONE, MANY1)]:
        found = store.match(f)
        assert len(found) == len(set(found))
        assert sorted(found) == sorted(
            e for e in [("a", 2), ("a/a/a", 1)] if filter_matches(f, e[0])
        )


def test_delete_prunes_only_empty_branches() -> None:
    store: RetainedStore[str] = RetainedStore()
    store.set("a/b/c", "deep")
    store.set("a", "shallow")
    assert store.delete("a/b/c")
    assert not store.delete("a/b/c")
    assert not store.delete("a/b")
    node = store._root.children["a"]
    assert node.entry == ("a", "shallow")
    assert not node.children
    assert store.delete("a")
    assert not store._root.children


def test_match_result_is_independent_of_the_store() -> None:
    store: RetainedStore[str] = RetainedStore()
    for topic in ["a/1", "a/2", "a/3"]:
        store.set(topic, "m")
    for topic, _ in store.match(("a", ONE)):
        store.delete(topic)
    assert len(store) == 0


def test_iteration_is_in_first_retained_order_and_a_snapshot() -> None:
    store: RetainedStore[int] = RetainedStore()
    for i, topic in enumerate(["c", "a", "b/x"]):
        store.set(topic, i)
    store.set("a", 9)
    assert list(store) == [("c", 0), ("a", 9), ("b/x", 2)]
    for topic, _ in store:
        store.delete(topic)
    assert list(store) == []


def test_prefix_and_empty_levels() -> None:
    store: RetainedStore[int] = RetainedStore()
    for i, topic in enumerate(["", "/", "ab", "abc/", "$ab"]):
        store.set(topic, i)
    assert sorted(store.match((Prefix("ab"),))) == [("ab", 2)]
    assert sorted(store.match((Prefix("ab"), ""))) == [("abc/", 3)]
    assert sorted(store.match((Prefix("$a"),))) == [("$ab", 4)]
    assert sorted(store.match(("",))) == [("", 0)]
    assert sorted(store.match((ONE, ONE))) == [("/", 1), ("abc/", 3)]
    assert store.match(()) == []
