"""Topic filters: three edge syntaxes parsed into one canonical filter.

Examples (canonical tokens on the right; ``Pre('ab')`` is ``Prefix('ab')``)::

    MQTT (parse_mqtt_filter)            levels split on '/'
      valid    'a/b'         -> ('a', 'b')
               'a/+/c'       -> ('a', ONE, 'c')
               'a/#'         -> ('a', MANY0)        also matches 'a' [MQTT-4.7.1-2]
               '#', '+', '/' -> (MANY0,), (ONE,), ('', '')
               '$SYS/#'      -> ('$SYS', MANY0)
      invalid  ''                 empty                          [MQTT-4.7.3-1]
               'a/#/b'            '#' not last                   [MQTT-4.7.1-2]
               'a/b#', 'a+/b'     wildcard inside a level        [MQTT-4.7.1-2, 4.7.1-3]
               'a\\x00b'          U+0000                         [MQTT-4.7.3-2]

    native (parse_native_filter)        levels split on '/'
      valid    'a/*/c'       -> ('a', ONE, 'c')
               'a/ab*'       -> ('a', Pre('ab'))
               'a/>'         -> ('a', MANY1)        matches 'a/b', 'a/b/c', not 'a'
               'a/#', 'a/+'  -> ('a', '#'), ('a', '+')      literals in this syntax
      invalid  '', 'a/>/b', 'a/b>', 'a/*b', 'a/**', 'a\\x00b'

    AMQP 0-9-1 (parse_amqp_binding_key) words split on '.'
      valid    'a.*.c'       -> ('a', ONE, 'c')
               'a.#.c'       -> ('a', MANY0, 'c')   matches 'a/c', 'a/b/c', 'a/b/d/c'
               '#.#.a'       -> (MANY0, 'a')        consecutive '#' collapse
               'a/b.c'       -> ('a.b', 'c')        '/' and '.' swap, like routing keys
               '', 'a..b'    -> ('',), ('a', '', 'b')
      invalid  none: every string is a binding key; 'a*' and 'a#' are literal words

Canonical topics are UTF-8 strings of levels separated by '/' (levels may be
empty). A filter is a tuple of tokens: a ``str`` literal level, ``ONE``,
``Prefix(p)``, ``MANY0`` or ``MANY1``. The ``$`` rule [MQTT-4.7.2-1] is part of
matching: a filter that starts with a wildcard (``ONE``, ``MANY0``, ``MANY1``, or a
``Prefix`` that does not itself start with ``$``) never matches a topic whose first
level starts with ``$``.

Only the standard library and :mod:`warren.errors` are imported: ``client/`` and
``app/`` use this module too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias, final

from warren.errors import WarrenError

__all__ = [
    "MANY0",
    "MANY1",
    "ONE",
    "Filter",
    "InvalidTopic",
    "Prefix",
    "Token",
    "Wildcard",
    "amqp_routing_key_to_topic",
    "filter_matches",
    "filter_to_mqtt",
    "format_filter",
    "is_wildcard",
    "parse_amqp_binding_key",
    "parse_mqtt_filter",
    "parse_native_filter",
    "parse_shared_subscription",
    "starts_with_wildcard",
    "topic_to_amqp_routing_key",
    "validate_mqtt_topic_name",
]


class InvalidTopic(WarrenError, ValueError):
    """A topic name or filter is malformed; the message says what and where."""


@final
class Wildcard:
    """The class of the wildcard singletons ``ONE``, ``MANY0`` and ``MANY1``.

    Compared by identity (``tok is ONE``), so never equal to any ``str``.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        # Pickle and copy.deepcopy resolve the module-level name, so the
        # singletons stay singletons and `is` comparisons keep working.
        return self._name


ONE: Final = Wildcard("ONE")
"""Exactly one level: MQTT ``+``, native ``*``, AMQP ``*``."""
MANY0: Final = Wildcard("MANY0")
"""Zero or more levels: MQTT ``#`` (last only), AMQP ``#`` (any position)."""
MANY1: Final = Wildcard("MANY1")
"""One or more levels: native ``>`` (last only)."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """One level that starts with ``prefix`` (native ``abc*``)."""

    prefix: str


Token: TypeAlias = str | Wildcard | Prefix
Filter: TypeAlias = tuple[Token, ...]


# --- parsers -------------------------------------------------------------------


def parse_mqtt_filter(text: str) -> Filter:
    """Parse an MQTT topic filter (``+``, ``#``); ``$share/...`` is not handled here."""
    if not text:
        raise InvalidTopic("a topic filter must not be empty")  # [MQTT-4.7.3-1]
    if "\0" in text:
        raise InvalidTopic(f"a topic filter must not contain U+0000: {text!r}")  # [MQTT-4.7.3-2]
    levels = text.split("/")
    last = len(levels) - 1
    tokens: list[Token] = []
    for index, level in enumerate(levels):
        if level == "+":
            tokens.append(ONE)
        elif level == "#":
            if index != last:  # [MQTT-4.7.1-2]
                raise InvalidTopic(f"'#' must be the last level of a topic filter: {text!r}")
            tokens.append(MANY0)
        elif "#" in level or "+" in level:  # [MQTT-4.7.1-2], [MQTT-4.7.1-3]
            char = "#" if "#" in level else "+"
            raise InvalidTopic(
                f"{char!r} must be a whole level, not part of level {index + 1} "
                f"{level!r}, in topic filter {text!r}"
            )
        else:
            tokens.append(level)
    return tuple(tokens)


def parse_native_filter(text: str) -> Filter:
    """Parse a native filter: ``*`` one level, ``abc*`` prefix, ``>`` last = one or more."""
    if not text:
        raise InvalidTopic("a topic filter must not be empty")
    if "\0" in text:
        # Not a native-protocol rule as such: refused so that every canonical
        # topic can also be delivered to MQTT subscribers [MQTT-4.7.3-2].
        raise InvalidTopic(f"a topic filter must not contain U+0000: {text!r}")
    levels = text.split("/")
    last = len(levels) - 1
    tokens: list[Token] = []
    for index, level in enumerate(levels):
        if level == ">":
            if index != last:
                raise InvalidTopic(f"'>' must be the last level of a topic filter: {text!r}")
            tokens.append(MANY1)
        elif ">" in level:
            raise InvalidTopic(
                f"'>' must be a whole level, not part of level {index + 1} "
                f"{level!r}, in topic filter {text!r}"
            )
        elif level == "*":
            tokens.append(ONE)
        elif "*" in level:
            if level.index("*") != len(level) - 1:
                raise InvalidTopic(
                    f"'*' may only end a level, not appear inside level {index + 1} "
                    f"{level!r}, in topic filter {text!r}"
                )
            tokens.append(Prefix(level[:-1]))
        else:
            tokens.append(level)
    return tuple(tokens)


def parse_amqp_binding_key(key: str) -> Filter:
    """Parse an AMQP 0-9-1 topic-exchange binding key (``*`` one word, ``#`` zero or more)."""
    tokens: list[Token] = []
    for word in key.split("."):
        if word == "#":
            # '#.#' means the same as '#'; collapsing keeps the trie free of
            # filters that can match one topic in many ways.
            if not tokens or tokens[-1] is not MANY0:
                tokens.append(MANY0)
        elif word == "*":
            tokens.append(ONE)
        else:
            tokens.append(word.replace("/", "."))
    return tuple(tokens)


def parse_shared_subscription(text: str, marker: str = "$share") -> tuple[str, str] | None:
    """Split ``$share/group/filter`` into ``(group, filter)``; ``None`` if not shared.

    Native subscriptions use ``marker="#share"``. The filter part is returned as
    text, to be parsed with that syntax's parser.
    """
    head = marker + "/"
    if not text.startswith(head):  # [MQTT-4.8.2-1]: must start with "$share/"
        return None
    group, sep, rest = text[len(head) :].partition("/")
    if not group:  # [MQTT-4.8.2-1]
        raise InvalidTopic(f"a shared subscription needs a group name: {text!r}")
    for char in "+#*>":  # [MQTT-4.8.2-2] and the native wildcards
        if char in group:
            raise InvalidTopic(
                f"the group name of a shared subscription must not contain {char!r}: {text!r}"
            )
    if not sep or not rest:  # [MQTT-4.8.2-2]
        raise InvalidTopic(
            f"a shared subscription needs a topic filter after the group name: {text!r}"
        )
    return group, rest


def validate_mqtt_topic_name(topic: str) -> None:
    """Check an MQTT PUBLISH topic name; raise :class:`InvalidTopic` if it is not valid."""
    if not topic:
        raise InvalidTopic("a topic name must not be empty")  # [MQTT-4.7.3-1]
    if "\0" in topic:
        raise InvalidTopic(f"a topic name must not contain U+0000: {topic!r}")  # [MQTT-4.7.3-2]
    for char in "+#":
        if char in topic:  # [MQTT-4.7.1-1], [MQTT-3.3.2-2]
            raise InvalidTopic(f"a topic name must not contain the wildcard {char!r}: {topic!r}")


# --- conversions ---------------------------------------------------------------

_SWAP_DOT_SLASH: Final = str.maketrans("./", "/.")


def amqp_routing_key_to_topic(key: str) -> str:
    """Map an AMQP routing key to a topic by swapping ``.`` and ``/``."""
    return key.translate(_SWAP_DOT_SLASH)


def topic_to_amqp_routing_key(topic: str) -> str:
    """Map a topic to an AMQP routing key by swapping ``/`` and ``.``."""
    return topic.translate(_SWAP_DOT_SLASH)


def filter_to_mqtt(f: Filter) -> str | None:
    """The MQTT filter text for ``f``, or ``None`` if MQTT cannot express it.

    Not expressible: ``Prefix``, ``MANY1``, ``MANY0`` before the last level, a
    literal level holding ``+``, ``#`` or U+0000, and the empty filter ``('',)``.
    """
    parts: list[str] = []
    last = len(f) - 1
    for index, token in enumerate(f):
        if isinstance(token, str):
            if "+" in token or "#" in token or "\0" in token:
                return None
            parts.append(token)
        elif token is ONE:
            parts.append("+")
        elif token is MANY0 and index == last:
            parts.append("#")
        else:
            return None
    text = "/".join(parts)
    return text or None


def format_filter(f: Filter) -> str:
    """A readable form of ``f`` for logs and errors: ``+``, ``#``, ``>``, ``abc*``."""
    parts: list[str] = []
    for token in f:
        if isinstance(token, str):
            parts.append(token)
        elif isinstance(token, Prefix):
            parts.append(token.prefix + "*")
        elif token is ONE:
            parts.append("+")
        elif token is MANY0:
            parts.append("#")
        else:
            parts.append(">")
    return "/".join(parts)


def is_wildcard(f: Filter) -> bool:
    """True if ``f`` can match more than one topic (it holds a non-literal token)."""
    return not all(isinstance(token, str) for token in f)


# --- reference matcher ---------------------------------------------------------


def starts_with_wildcard(f: Filter) -> bool:
    """True if the ``$`` rule applies to ``f`` [MQTT-4.7.2-1]."""
    if not f:
        return False
    first = f[0]
    if isinstance(first, str):
        return False
    if isinstance(first, Prefix):
        return not first.prefix.startswith("$")
    return True


def filter_matches(f: Filter, topic: str) -> bool:
    """True if ``topic`` matches ``f``, honouring the ``$`` rule.

    The reference matcher: a direct recursive reading of the token definitions.
    ``SubscriptionTrie`` and ``RetainedStore`` are tested against it.
    """
    levels = topic.split("/")
    if levels[0].startswith("$") and starts_with_wildcard(f):  # [MQTT-4.7.2-1]
        return False
    return _matches_from(f, 0, levels, 0)


def _matches_from(f: Filter, i: int, levels: list[str], j: int) -> bool:
    """Does ``f[i:]`` match exactly ``levels[j:]``?"""
    if i == len(f):
        return j == len(levels)
    token = f[i]
    if token is MANY0:
        return any(_matches_from(f, i + 1, levels, k) for k in range(j, len(levels) + 1))
    if token is MANY1:
        return any(_matches_from(f, i + 1, levels, k) for k in range(j + 1, len(levels) + 1))
    if j == len(levels):
        return False
    level = levels[j]
    if token is ONE:
        ok = True
    elif isinstance(token, Prefix):
        ok = level.startswith(token.prefix)
    else:
        ok = token == level
    return ok and _matches_from(f, i + 1, levels, j + 1)
