"""Retained messages: the last retained message of each topic, found by filter.

Two structures over the same entries:

- a dict ``topic -> message`` for ``get``, ``len`` and iteration: O(1) per lookup,
  and iteration in the order the topics were first retained;
- a tree keyed by level (each node a dict of children plus the entry whose topic
  ends there) for ``match``. A new subscription walks it guided by its filter: a
  literal level is one dict lookup, ``ONE``/``Prefix`` visit one node's children,
  ``MANY0``/``MANY1`` collect whole subtrees. A literal filter therefore costs one
  path, never a scan of every retained topic.

A node stores its entry as the ``(topic, message)`` tuple that ``match`` returns,
so matching allocates nothing per result.

Not thread-safe: the core runs on the event loop thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from warren.core.topics import MANY0, MANY1, ONE, Filter, Prefix, starts_with_wildcard

__all__ = ["RetainedStore"]

M = TypeVar("M")


class _Node(Generic[M]):
    __slots__ = ("children", "entry")

    def __init__(self) -> None:
        self.children: dict[str, _Node[M]] = {}
        self.entry: tuple[str, M] | None = None


class RetainedStore(Generic[M]):
    """Retained messages by topic, looked up by filter (a topic tree, not a scan)."""

    __slots__ = ("_by_topic", "_root")

    def __init__(self) -> None:
        self._by_topic: dict[str, M] = {}
        self._root: _Node[M] = _Node()

    def set(self, topic: str, message: M) -> None:
        """Retain ``message`` for ``topic``, replacing any message retained before."""
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        node.entry = (topic, message)
        self._by_topic[topic] = message

    def delete(self, topic: str) -> bool:
        """Forget the message retained for ``topic``; False if there was none."""
        if self._by_topic.pop(topic, _MISSING) is _MISSING:
            return False
        path: list[tuple[_Node[M], str]] = []
        node = self._root
        for level in topic.split("/"):
            path.append((node, level))
            node = node.children[level]
        node.entry = None
        # Prune the branch left empty, so walks never visit dead subtrees.
        for parent, level in reversed(path):
            if node.entry is not None or node.children:
                break
            del parent.children[level]
            node = parent
        return True

    def get(self, topic: str) -> M | None:
        """The message retained for ``topic``, or None."""
        return self._by_topic.get(topic)

    def match(self, f: Filter) -> list[tuple[str, M]]:
        """Every retained ``(topic, message)`` whose topic matches ``f``.

        Honours the ``$`` rule [MQTT-4.7.2-1]. Returns a new list; the store may be
        changed while the caller goes through it.
        """
        if not f:
            return []
        root = self._root
        if starts_with_wildcard(f):
            # [MQTT-4.7.2-1] Walk a view of the root without its '$' children.
            root = _Node()
            root.children = {
                level: child
                for level, child in self._root.children.items()
                if not level.startswith("$")
            }
        found: list[tuple[str, M]] = []
        last = len(f) - 1
        # (node, index of the next token to match against the node's children)
        stack: list[tuple[_Node[M], int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i > last:
                if node.entry is not None:
                    found.append(node.entry)
                continue
            token = f[i]
            if isinstance(token, str):
                child = node.children.get(token)
                if child is not None:
                    stack.append((child, i + 1))
            elif token is ONE:
                stack.extend((child, i + 1) for child in node.children.values())
            elif isinstance(token, Prefix):
                prefix = token.prefix
                stack.extend(
                    (child, i + 1)
                    for level, child in node.children.items()
                    if level.startswith(prefix)
                )
            elif i == last:
                # A trailing MANY0/MANY1: the whole subtree matches, with (MANY0)
                # or without (MANY1) the node itself.
                if token is MANY0 and node.entry is not None:
                    found.append(node.entry)
                _collect_entries(node, found)
            else:
                # An inner MANY0/MANY1 (AMQP 'a.#.c'): continue with the next token
                # from every node it can end on.
                if token is MANY0:
                    stack.append((node, i + 1))
                stack.extend((below, i + 1) for below in _descendants(node))
        if any(token is MANY0 or token is MANY1 for token in f[:-1]):
            # Several ways to absorb levels can reach one topic; keep it once.
            found = list({entry[0]: entry for entry in found}.values())
        return found

    def __len__(self) -> int:
        """The number of retained messages."""
        return len(self._by_topic)

    def __iter__(self) -> Iterator[tuple[str, M]]:
        """Every ``(topic, message)``; a snapshot, so the store may change meanwhile."""
        return iter(list(self._by_topic.items()))


_MISSING = object()


def _descendants(node: _Node[M]) -> list[_Node[M]]:
    """Every node strictly below ``node``."""
    out: list[_Node[M]] = []
    stack = list(node.children.values())
    while stack:
        below = stack.pop()
        out.append(below)
        stack.extend(below.children.values())
    return out


def _collect_entries(node: _Node[M], found: list[tuple[str, M]]) -> None:
    """Append the entry of every node strictly below ``node``."""
    stack = list(node.children.values())
    while stack:
        below = stack.pop()
        if below.entry is not None:
            found.append(below.entry)
        stack.extend(below.children.values())
