"""Destinations: a topic to publish to, a topic subscription, a share name."""

from __future__ import annotations

from warren.core.topics import InvalidTopic, parse_native_filter
from warren.messaging._errors import IllegalArgumentError, InvalidDataTypeError

__all__ = ["Destination", "ShareName", "Topic", "TopicSubscription"]


def _text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidDataTypeError(f"{kind} must be a str, not {type(value).__name__}")
    return value


class Destination:
    """Something with a name: a topic, a topic subscription, a share name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def get_name(self) -> str:
        """The name as given."""
        return self._name

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{type(self).__name__}.of({self._name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Destination) and type(other) is type(self) \
            and other._name == self._name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._name))


class Topic(Destination):
    """A topic to publish to: levels separated by ``/``, e.g. ``orders/eu/created``."""

    __slots__ = ()

    @staticmethod
    def of(topic_string: str) -> Topic:
        """The topic named ``topic_string`` (non-empty, without U+0000)."""
        name = _text("a topic", topic_string)
        if not name:
            raise IllegalArgumentError("a topic must not be empty")
        if "\0" in name:
            raise IllegalArgumentError(f"a topic must not contain U+0000: {name!r}")
        return Topic(name)


class TopicSubscription(Destination):
    """A topic filter in native syntax: ``*`` one level, ``abc*`` a level starting with
    ``abc``, ``>`` (last) one or more levels. Example: ``orders/*/created``."""

    __slots__ = ()

    @staticmethod
    def of(expression: str) -> TopicSubscription:
        """The subscription to ``expression``; raises IllegalArgumentError if invalid."""
        text = _text("a topic subscription", expression)
        try:
            parse_native_filter(text)
        except InvalidTopic as exc:
            raise IllegalArgumentError(str(exc)) from None
        return TopicSubscription(text)


class ShareName(Destination):
    """The group of a shared subscription: each message goes to one member."""

    __slots__ = ()

    @staticmethod
    def of(group_name: str) -> ShareName:
        """The share group ``group_name`` (non-empty, without ``*``, ``>`` or ``/``)."""
        share = ShareName(_text("a share name", group_name))
        share.validate()
        return share

    def validate(self) -> None:
        """Raise IllegalArgumentError if the name cannot be used."""
        name = self._name
        if not name:
            raise IllegalArgumentError("a share name must not be empty")
        for char in ("*", ">", "/", "\0"):
            if char in name:
                raise IllegalArgumentError(f"a share name must not contain {char!r}: {name!r}")
