"""Topic filter syntaxes, conversions and the reference matcher."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warren.core.topics import (
    MANY0,
    MANY1,
    ONE,
    Filter,
    InvalidTopic,
    Prefix,
    amqp_routing_key_to_topic,
    filter_matches,
    filter_to_mqtt,
    format_filter,
    is_wildcard,
    parse_amqp_binding_key,
    parse_mqtt_filter,
    parse_native_filter,
    parse_shared_subscription,
    starts_with_wildcard,
    topic_to_amqp_routing_key,
    validate_mqtt_topic_name,
)
from warren.errors import WarrenError

# --- tokens --------------------------------------------------------------------


def test_wildcards_are_readable_distinct_singletons() -> None:
    assert [repr(t) for t in (ONE, MANY0, MANY1)] == ["ONE", "MANY0", "MANY1"]
    assert len({ONE, MANY0, MANY1}) == 3
    strings: tuple[object, ...] = ("ONE", "MANY0", "MANY1", "+", "#", ">", "*", "")
    for token in (ONE, MANY0, MANY1):
        assert token not in strings
        assert copy.deepcopy(token) is token
        assert pickle.loads(pickle.dumps(token)) is token


def test_prefix_is_frozen_and_hashable() -> None:
    assert Prefix("ab") == Prefix("ab")
    assert hash(Prefix("ab")) == hash(Prefix("ab"))
    assert Prefix("ab") != "ab"  # type: ignore[comparison-overlap]
    with pytest.raises(AttributeError):
        Prefix("ab").prefix = "x"  # type: ignore[misc]


def test_invalid_topic_is_a_warren_error_and_a_value_error() -> None:
    assert issubclass(InvalidTopic, WarrenError)
    assert issubclass(InvalidTopic, ValueError)


# --- MQTT ----------------------------------------------------------------------

MQTT_VALID: list[tuple[str, Filter]] = [
    ("a", ("a",)),
    ("a/b/c", ("a", "b", "c")),
    ("+", (ONE,)),
    ("#", (MANY0,)),
    ("a/+/c", ("a", ONE, "c")),
    ("a/#", ("a", MANY0)),
    ("+/+/#", (ONE, ONE, MANY0)),
    ("/", ("", "")),
    ("/a", ("", "a")),
    ("a//b", ("a", "", "b")),
    ("$SYS/#", ("$SYS", MANY0)),
    ("$share/g/a", ("$share", "g", "a")),  # shared subscriptions are split off first
    ("a/b*/>", ("a", "b*", ">")),  # native wildcards are literal characters here
    ("caf\u00e9/\u00fc", ("caf\u00e9", "\u00fc")),
]

MQTT_INVALID: list[tuple[str, str]] = [
    ("", "must not be empty"),
    ("a/#/b", "'#' must be the last level of a topic filter: 'a/#/b'"),
    ("#/a", "'#' must be the last level of a topic filter: '#/a'"),
    ("a/b#", "'#' must be a whole level, not part of level 2 'b#', in topic filter 'a/b#'"),
    ("a#", "'#' must be a whole level, not part of level 1 'a#'"),
    ("a/+b", "'+' must be a whole level, not part of level 2 '+b'"),
    ("++", "'+' must be a whole level"),
    ("a/\0", "must not contain U+0000: 'a/\\x00'"),
]


@pytest.mark.parametrize(("text", "expected"), MQTT_VALID)
def test_parse_mqtt_filter_valid(text: str, expected: Filter) -> None:
    assert parse_mqtt_filter(text) == expected


@pytest.mark.parametrize(("text", "error"), MQTT_INVALID)
def test_parse_mqtt_filter_invalid(text: str, error: str) -> None:
    with pytest.raises(InvalidTopic) as info:
        parse_mqtt_filter(text)
    assert error in str(info.value)


@pytest.mark.parametrize("topic", ["a", "a/b", "/", "$SYS/x", "a b/*/>", "caf\u00e9"])
def test_validate_mqtt_topic_name_valid(topic: str) -> None:
    validate_mqtt_topic_name(topic)


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("", "a topic name must not be empty"),
        ("a/+", "a topic name must not contain the wildcard '+': 'a/+'"),
        ("a/#", "a topic name must not contain the wildcard '#': 'a/#'"),
        ("a+b", "wildcard '+'"),
        ("a\0", "must not contain U+0000"),
    ],
)
def test_validate_mqtt_topic_name_invalid(topic: str, error: str) -> None:
    with pytest.raises(InvalidTopic) as info:
        validate_mqtt_topic_name(topic)
    assert error in str(info.value)


# --- native --------------------------------------------------------------------

NATIVE_VALID: list[tuple[str, Filter]] = [
    ("a/b", ("a", "b")),
    ("*", (ONE,)),
    (">", (MANY1,)),
    ("a/*/c", ("a", ONE, "c")),
    ("a/>", ("a", MANY1)),
    ("a/ab*", ("a", Prefix("ab"))),
    ("ab*/>", (Prefix("ab"), MANY1)),
    ("$SYS/*", ("$SYS", ONE)),
    ("$S*", (Prefix("$S"),)),
    ("a/#", ("a", "#")),
    ("a/+", ("a", "+")),
    ("a//b", ("a", "", "b")),
]

NATIVE_INVALID: list[tuple[str, str]] = [
    ("", "must not be empty"),
    ("a/>/b", "'>' must be the last level of a topic filter: 'a/>/b'"),
    (">/a", "'>' must be the last level"),
    ("a/b>", "'>' must be a whole level, not part of level 2 'b>', in topic filter 'a/b>'"),
    ("a/>b", "'>' must be a whole level"),
    ("a/*b", "'*' may only end a level, not appear inside level 2 '*b', in topic filter 'a/*b'"),
    ("a/**", "'*' may only end a level"),
    ("a*b*", "'*' may only end a level"),
    ("a\0", "must not contain U+0000"),
]


@pytest.mark.parametrize(("text", "expected"), NATIVE_VALID)
def test_parse_native_filter_valid(text: str, expected: Filter) -> None:
    assert parse_native_filter(text) == expected


@pytest.mark.parametrize(("text", "error"), NATIVE_INVALID)
def test_parse_native_filter_invalid(text: str, error: str) -> None:
    with pytest.raises(InvalidTopic) as info:
        parse_native_filter(text)
    assert error in str(info.value)


# --- AMQP ----------------------------------------------------------------------

AMQP_VALID: list[tuple[str, Filter]] = [
    ("a.b.c", ("a", "b", "c")),
    ("*", (ONE,)),
    ("#", (MANY0,)),
    ("a.*.c", ("a", ONE, "c")),
    ("a.#.c", ("a", MANY0, "c")),
    ("#.a", (MANY0, "a")),
    ("a.#", ("a", MANY0)),
    ("#.#", (MANY0,)),
    ("a.#.#.#.b", ("a", MANY0, "b")),
    ("#.*.#", (MANY0, ONE, MANY0)),
    ("a/b.c", ("a.b", "c")),
    ("", ("",)),
    ("a..b", ("a", "", "b")),
    ("a*.#b", ("a*", "#b")),
    ("a+.>", ("a+", ">")),
]


@pytest.mark.parametrize(("key", "expected"), AMQP_VALID)
def test_parse_amqp_binding_key(key: str, expected: Filter) -> None:
    assert parse_amqp_binding_key(key) == expected


@pytest.mark.parametrize(
    ("key", "topic", "matches"),
    [
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.c", True),
        ("a.#.c", "a.b.d.c", True),
        ("a.#.c", "a.b.d", False),
        ("a.*.c", "a.c", False),
        ("#", "", True),
        ("", "", True),
        ("", "a", False),
        ("a/b.c", "a/b.c", True),
    ],
)
def test_amqp_binding_matches_routing_key(key: str, topic: str, matches: bool) -> None:
    f = parse_amqp_binding_key(key)
    assert filter_matches(f, amqp_routing_key_to_topic(topic)) is matches


def test_routing_key_mapping() -> None:
    assert amqp_routing_key_to_topic("a.b/c") == "a/b.c"
    assert topic_to_amqp_routing_key("a/b.c") == "a.b/c"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./$#*+", max_size=12))
def test_routing_key_mapping_round_trips(text: str) -> None:
    assert topic_to_amqp_routing_key(amqp_routing_key_to_topic(text)) == text
    assert amqp_routing_key_to_topic(topic_to_amqp_routing_key(text)) == text


# --- shared subscriptions --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "marker", "expected"),
    [
        ("$share/g/a/b", "$share", ("g", "a/b")),
        ("$share/g/#", "$share", ("g", "#")),
        ("$share/g//", "$share", ("g", "/")),
        ("$share/g/$share/x", "$share", ("g", "$share/x")),
        ("a/b", "$share", None),
        ("$share", "$share", None),  # [MQTT-4.8.2-1]: shared means "$share/..."
        ("$sharex/g/a", "$share", None),
        ("$SYS/x", "$share", None),
        ("#share/g/a/>", "#share", ("g", "a/>")),
        ("$share/g/a", "#share", None),
        ("#share/g/a", "$share", None),
    ],
)
def test_parse_shared_subscription(
    text: str, marker: str, expected: tuple[str, str] | None
) -> None:
    assert parse_shared_subscription(text, marker) == expected


@pytest.mark.parametrize(
    ("text", "marker", "error"),
    [
        ("$share//a", "$share", "a shared subscription needs a group name: '$share//a'"),
        ("$share/", "$share", "needs a group name"),
        ("$share/g", "$share", "needs a topic filter after the group name: '$share/g'"),
        ("$share/g/", "$share", "needs a topic filter after the group name"),
        ("$share/g+/a", "$share", "must not contain '+': '$share/g+/a'"),
        ("$share/#/a", "$share", "must not contain '#'"),
        ("$share/g*/a", "$share", "must not contain '*'"),
        ("$share/>/a", "$share", "must not contain '>'"),
        ("#share//a", "#share", "needs a group name"),
        ("#share/g", "#share", "needs a topic filter"),
        ("#share/a>b/c", "#share", "must not contain '>'"),
    ],
)
def test_parse_shared_subscription_invalid(text: str, marker: str, error: str) -> None:
    with pytest.raises(InvalidTopic) as info:
        parse_shared_subscription(text, marker)
    assert error in str(info.value)


def test_parse_shared_subscription_defaults_to_mqtt_marker() -> None:
    assert parse_shared_subscription("$share/g/a") == ("g", "a")
    assert parse_shared_subscription("#share/g/a") is None


# --- conversions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (("a", "b"), "a/b"),
        (("a", ONE, MANY0), "a/+/#"),
        ((MANY0,), "#"),
        (("", ""), "/"),
        (("$SYS", MANY0), "$SYS/#"),
        (("a", Prefix("b")), None),
        (("a", MANY1), None),
        (("a", MANY0, "c"), None),
        (("a+b",), None),
        (("#",), None),
        (("a\0",), None),
        (("",), None),
        ((), None),
    ],
)
def test_filter_to_mqtt(f: Filter, expected: str | None) -> None:
    assert filter_to_mqtt(f) == expected


@pytest.mark.parametrize("text", [text for text, _ in MQTT_VALID])
def test_filter_to_mqtt_round_trips_mqtt_filters(text: str) -> None:
    assert filter_to_mqtt(parse_mqtt_filter(text)) == text


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (("a", ONE, MANY0), "a/+/#"),
        ((Prefix("abc"), MANY1), "abc*/>"),
        (("a", MANY0, "c"), "a/#/c"),
        (("", "x"), "/x"),
        ((), ""),
    ],
)
def test_format_filter(f: Filter, expected: str) -> None:
    assert format_filter(f) == expected


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (("a", "b"), False),
        (("#", "+", ">"), False),
        (("a", ONE), True),
        ((MANY0,), True),
        ((MANY1,), True),
        ((Prefix("a"),), True),
        ((), False),
    ],
)
def test_is_wildcard(f: Filter, expected: bool) -> None:
    assert is_wildcard(f) is expected


# --- the reference matcher and the $ rule ---------------------------------------------

MATCH_CASES: list[tuple[Filter, str, bool]] = [
    # MQTT '#' includes the parent level (MQTT-4.7.1-2)
    (("a", MANY0), "a", True),
    (("a", MANY0), "a/b", True),
    (("a", MANY0), "a/b/c", True),
    (("a", MANY0), "ab", False),
    (("a", MANY0), "a/", True),
    ((MANY0,), "", True),
    ((MANY0,), "/", True),
    # '+' is exactly one, possibly empty, level
    (("a", ONE), "a", False),
    (("a", ONE), "a/", True),
    (("a", ONE), "a/b/c", False),
    ((ONE, ONE), "/", True),
    # native '>' needs at least one level
    (("a", MANY1), "a", False),
    (("a", MANY1), "a/b", True),
    (("a", MANY1), "a/b/c", True),
    # prefixes
    ((Prefix("ab"),), "abc", True),
    ((Prefix("ab"),), "ab", True),
    ((Prefix("ab"),), "a", False),
    ((Prefix(""),), "", True),
    # AMQP inner '#'
    (("a", MANY0, "c"), "a/c", True),
    (("a", MANY0, "c"), "a/b/d/c", True),
    (("a", MANY0, "c"), "a/c/d", False),
    ((MANY0, "a", MANY0), "x/a/a/y", True),
    # literals
    (("a", "", "b"), "a//b", True),
    (("a",), "a/b", False),
    (("a/b",), "a/b", False),  # a literal level never holds the separator
    ((), "", False),
]

DOLLAR_CASES: list[tuple[Filter, str, bool]] = [
    # [MQTT-4.7.2-1] a leading wildcard does not match a '$' topic ...
    ((MANY0,), "$SYS/x", False),
    ((ONE, "x"), "$SYS/x", False),
    ((MANY1,), "$SYS/x", False),
    ((Prefix(""),), "$SYS", False),
    ((Prefix("$"),), "$SYS", True),  # ... unless the prefix itself starts with '$'
    ((Prefix("$S"), "x"), "$SYS/x", True),
    ((MANY0, "x"), "$SYS/x", False),
    ((MANY0, "$SYS", "x"), "$SYS/x", False),
    # a literal '$' level matches normally, and wildcards after it apply
    (("$SYS", MANY0), "$SYS/x", True),
    (("$SYS", MANY0), "$SYS", True),
    (("$SYS", ONE), "$SYS/x", True),
    # the rule is about the first level only
    ((MANY0,), "a/$SYS", True),
    (("a", ONE), "a/$x", True),
    ((MANY0,), "x$/a", True),
]


@pytest.mark.parametrize(("f", "topic", "expected"), MATCH_CASES + DOLLAR_CASES)
def test_filter_matches(f: Filter, topic: str, expected: bool) -> None:
    assert filter_matches(f, topic) is expected


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ((ONE,), True),
        ((MANY0, "a"), True),
        ((MANY1,), True),
        ((Prefix("a"),), True),
        ((Prefix(""),), True),
        ((Prefix("$a"),), False),
        (("$a", MANY0), False),
        (("a", ONE), False),
        ((), False),
    ],
)
def test_starts_with_wildcard(f: Filter, expected: bool) -> None:
    assert starts_with_wildcard(f) is expected


@pytest.mark.parametrize(
    ("mqtt", "native", "amqp"),
    [
        ("a/+/c", "a/*/c", "a.*.c"),
        ("a/b", "a/b", "a.b"),
        ("+", "*", "*"),
        ("a/#", None, "a.#"),  # native has no MANY0
        ("a.b/c", "a.b/c", "a/b.c"),
    ],
)
def test_syntaxes_share_one_canonical_form(mqtt: str, native: str | None, amqp: str) -> None:
    f = parse_mqtt_filter(mqtt)
    assert parse_amqp_binding_key(amqp) == f
    if native is not None:
        assert parse_native_filter(native) == f
