"""Subscription matching: a trie of filter tokens plus a bounded match cache.

The shape follows nats-server's sublist. Each node holds

- ``literal``: a dict of literal children, so a literal level costs one hash
  lookup however many siblings there are;
- ``one``, ``many0``, ``many1``: at most one child per wildcard kind, a plain
  attribute, so checking for it costs one load and an ``is None`` test;
- ``prefixes``: a dict of ``Prefix`` children keyed by the prefix text (see
  ``_prefix_children`` for how it is searched; prefixes are rare);
- ``values``: the values whose filter ends here, a dict used as an ordered set,
  so membership is O(1) and results come out in insertion order.

``match`` is on the path of every published message, so it splits the topic once
and walks with an explicit stack instead of recursion (a Python call costs more
than a list append). A literal level, by far the commonest, is followed in place
without touching the stack at all.

A ``MANY0``/``MANY1`` that ends its filter (MQTT ``#``, native ``>``) is the cheap
case: its node has no children, so its values match whatever the rest of the
topic is and are collected without looking at the remaining levels. Only while
some filter has a ``MANY0``/``MANY1`` before its last token (AMQP ``a.#.c``) does
``match`` switch to a walk that backtracks over every number of absorbed levels
and de-duplicates what it finds; the trie counts such filters to know.

The cache maps a topic to the tuple of values it matched, so a hit is one dict
lookup plus a list copy. It is bounded; when full, the oldest quarter is
dropped (insertion order; a hit does no bookkeeping). Adding or removing a
literal filter drops the one topic it names; a wildcard filter clears the cache.

Not thread-safe: the core runs on the event loop thread.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from itertools import islice
from typing import Generic, TypeVar

from warren.core.topics import MANY0, MANY1, ONE, Filter, Prefix, Token

__all__ = ["SubscriptionTrie"]

V = TypeVar("V", bound=Hashable)


class _Node(Generic[V]):
    __slots__ = ("literal", "many0", "many1", "one", "prefixes", "values")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[V]] = {}
        self.one: _Node[V] | None = None
        self.many0: _Node[V] | None = None
        self.many1: _Node[V] | None = None
        # Created on first use: few nodes ever get one, and an empty dict per
        # node would cost 64 bytes; the walk tests it by truthiness either way.
        self.prefixes: dict[str, _Node[V]] | None = None
        self.values: dict[V, None] = {}

    def has_children(self) -> bool:
        return bool(
            self.literal
            or self.prefixes
            or self.one is not None
            or self.many0 is not None
            or self.many1 is not None
        )

    def is_empty(self) -> bool:
        return not (self.values or self.has_children())

    def child(self, token: Token) -> _Node[V] | None:
        if isinstance(token, str):
            return self.literal.get(token)
        if token is ONE:
            return self.one
        if token is MANY0:
            return self.many0
        if token is MANY1:
            return self.many1
        assert isinstance(token, Prefix)
        return self.prefixes.get(token.prefix) if self.prefixes else None

    def add_child(self, token: Token) -> _Node[V]:
        node = self.child(token)
        if node is not None:
            return node
        node = _Node[V]()
        if isinstance(token, str):
            self.literal[token] = node
        elif isinstance(token, Prefix):
            if self.prefixes is None:
                self.prefixes = {}
            self.prefixes[token.prefix] = node
        elif token is ONE:
            self.one = node
        elif token is MANY0:
            self.many0 = node
        else:
            self.many1 = node
        return node

    def drop_child(self, token: Token) -> None:
        if isinstance(token, str):
            del self.literal[token]
        elif isinstance(token, Prefix):
            assert self.prefixes
            del self.prefixes[token.prefix]
            if not self.prefixes:
                self.prefixes = None
        elif token is ONE:
            self.one = None
        elif token is MANY0:
            self.many0 = None
        else:
            self.many1 = None


def _check_filter(f: Filter) -> None:
    """Refuse a malformed filter before anything is changed."""
    if not isinstance(f, tuple):
        raise TypeError(f"a filter is a tuple of tokens, not {type(f).__name__}")
    for token in f:
        if not (
            isinstance(token, str | Prefix) or token is ONE or token is MANY0 or token is MANY1
        ):
            raise TypeError(f"not a filter token: {token!r}")


def _has_inner_many(f: Filter) -> bool:
    """True if a MANY0/MANY1 comes before the last token (the backtracking case)."""
    return any(token is MANY0 or token is MANY1 for token in f[:-1])


class SubscriptionTrie(Generic[V]):
    """Filters -> values; match(topic) returns every value whose filter matches."""

    __slots__ = ("_cache", "_cache_size", "_count", "_inner_many", "_root")

    def __init__(self, cache_size: int = 4096) -> None:
        """``cache_size`` bounds the match cache in topics; 0 disables it."""
        if cache_size < 0:
            raise ValueError(f"cache_size must be 0 or more, not {cache_size}")
        self._root: _Node[V] = _Node()
        self._count = 0
        # Filters with a MANY0/MANY1 before their last token. While there are
        # none, the walk never backtracks and never needs to de-duplicate.
        self._inner_many = 0
        self._cache: dict[str, tuple[V, ...]] = {}
        self._cache_size = cache_size

    def add(self, f: Filter, value: V) -> bool:
        """Add ``value`` under ``f``; False if that pair is already present."""
        _check_filter(f)
        node = self._root
        for token in f:
            node = node.add_child(token)
        if value in node.values:
            return False
        node.values[value] = None
        self._count += 1
        if _has_inner_many(f):
            self._inner_many += 1
        self._invalidate(f)
        return True

    def remove(self, f: Filter, value: V) -> bool:
        """Remove ``value`` from under ``f``; False if that pair is absent."""
        _check_filter(f)
        path: list[_Node[V]] = []
        node = self._root
        for token in f:
            child = node.child(token)
            if child is None:
                return False
            path.append(node)
            node = child
        if value not in node.values:
            return False
        del node.values[value]
        self._count -= 1
        if _has_inner_many(f):
            self._inner_many -= 1
        # Prune the nodes left empty, deepest first, so that the walk never
        # visits dead branches and memory follows the live subscriptions.
        for parent, token in zip(reversed(path), reversed(f), strict=True):
            if not node.is_empty():
                break
            parent.drop_child(token)
            node = parent
        self._invalidate(f)
        return True

    def match(self, topic: str) -> list[V]:
        """Every value whose filter matches ``topic``, once per (filter, value) pair.

        Returns a new list on every call; the caller may keep or change it.
        """
        # A hit is this one lookup and a list copy. (`.get` rather than
        # try/except: raising KeyError on every miss would cost about a third
        # of a cache-off walk of a short topic.)
        cached = self._cache.get(topic)
        if cached is not None:
            return list(cached)
        levels = topic.split("/")
        result = self._walk_backtracking(levels) if self._inner_many else self._walk(levels)
        if self._cache_size:
            cache = self._cache
            if len(cache) >= self._cache_size:
                # Drop the oldest entries in one batch: one pass from the front
                # of the dict, amortised over a quarter of the cache's inserts.
                for key in list(islice(cache, max(1, self._cache_size // 4))):
                    del cache[key]
            cache[topic] = tuple(result)
        return result

    def clear_cache(self) -> None:
        """Forget every cached match result."""
        self._cache.clear()

    def __len__(self) -> int:
        """The number of (filter, value) pairs."""
        return self._count

    def __iter__(self) -> Iterator[tuple[Filter, V]]:
        """Every (filter, value) pair; a snapshot, so the trie may change meanwhile."""
        pairs: list[tuple[Filter, V]] = []
        stack: list[tuple[_Node[V], Filter]] = [(self._root, ())]
        while stack:
            node, f = stack.pop()
            pairs.extend((f, value) for value in node.values)
            children: list[tuple[Token, _Node[V] | None]] = [
                (MANY1, node.many1),
                (MANY0, node.many0),
                (ONE, node.one),
            ]
            if node.prefixes:
                children.extend((Prefix(p), child) for p, child in node.prefixes.items())
            children.extend(node.literal.items())
            stack.extend((child, (*f, token)) for token, child in children if child is not None)
        return iter(pairs)

    def _invalidate(self, f: Filter) -> None:
        if not self._cache:
            return
        literals = [token for token in f if isinstance(token, str)]
        if len(literals) == len(f):
            # A literal filter matches exactly one topic: drop just that entry.
            self._cache.pop("/".join(literals), None)
        else:
            self._cache.clear()

    def _walk(self, levels: list[str]) -> list[V]:
        """Match when every MANY0/MANY1 ends its filter: the hot path.

        A MANY0/MANY1 node then has no children, so its values are taken as soon
        as it is seen; each node is reached at most once, so values go straight
        into the result with no de-duplication.
        """
        n = len(levels)
        out: list[V] = []
        # Branches still to walk, as (node, levels consumed to reach it): a list
        # used as a LIFO stack, O(1) append/pop, no call per level.
        stack: list[tuple[_Node[V], int]]
        if levels[0][:1] == "$":
            stack = _dollar_starts(self._root, levels[0])
            if not stack:
                return out
            node, i = stack.pop()
        else:
            stack = []
            node, i = self._root, 0
        while True:
            while True:
                many = node.many0
                if many is not None:
                    out.extend(many.values)  # absorbs levels[i:], possibly none
                if i == n:
                    out.extend(node.values)
                    break
                level = levels[i]
                i += 1
                many = node.many1
                if many is not None:
                    out.extend(many.values)  # absorbs levels[i-1:], at least one
                child = node.one
                if child is not None:
                    stack.append((child, i))
                if node.prefixes:
                    stack.extend([(child, i) for child in _prefix_children(node, level)])
                # The literal child is followed in place, without the stack.
                found = node.literal.get(level)
                if found is None:
                    break
                node = found
            if not stack:
                return out
            node, i = stack.pop()

    def _walk_backtracking(self, levels: list[str]) -> list[V]:
        """Match when some filter has a MANY0/MANY1 before its last token.

        Such a node has children, so the walk continues below it after every
        possible number of absorbed levels. One filter may then match one topic
        in several ways (``#.a.#`` against ``a/a``); a node is one filter, so the
        nodes reached are de-duplicated before their values are taken. A trailing
        MANY0/MANY1 node (no children) is still taken at once, as in ``_walk``.
        """
        n = len(levels)
        hits: list[_Node[V]] = []
        first = levels[0]
        stack = _dollar_starts(self._root, first) if first[:1] == "$" else [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            while True:
                many = node.many0
                if many is not None:
                    if many.has_children():
                        stack.extend([(many, k) for k in range(i, n + 1)])
                    elif many.values:
                        hits.append(many)
                if i == n:
                    if node.values:
                        hits.append(node)
                    break
                level = levels[i]
                i += 1
                many = node.many1
                if many is not None:
                    if many.has_children():
                        stack.extend([(many, k) for k in range(i, n + 1)])
                    elif many.values:
                        hits.append(many)
                child = node.one
                if child is not None:
                    stack.append((child, i))
                if node.prefixes:
                    stack.extend([(child, i) for child in _prefix_children(node, level)])
                found = node.literal.get(level)
                if found is None:
                    break
                node = found
        out: list[V] = []
        for node in dict.fromkeys(hits):
            out.extend(node.values)
        return out


def _dollar_starts(root: _Node[V], first: str) -> list[tuple[_Node[V], int]]:
    """Where a walk of a topic whose first level starts with '$' may begin.

    [MQTT-4.7.2-1] A filter that starts with a wildcard does not match such a
    topic: only the root's literal child and its Prefix children that themselves
    start with '$' apply. Both are returned as having consumed the first level.
    """
    starts = [
        (child, 1)
        for prefix, child in (root.prefixes or {}).items()
        if prefix[:1] == "$" and first.startswith(prefix)
    ]
    child = root.literal.get(first)
    if child is not None:
        starts.append((child, 1))
    return starts


def _prefix_children(node: _Node[V], level: str) -> list[_Node[V]]:
    """The Prefix children of ``node`` whose prefix starts ``level``.

    Whichever is fewer: test each prefix against the level, or look up each of
    the level's own prefixes (``level[:0]`` .. ``level``) in the dict. Either way
    a node with many prefixes costs at most len(level) + 1 lookups.
    """
    prefixes = node.prefixes
    assert prefixes
    if len(prefixes) <= len(level):
        return [child for prefix, child in prefixes.items() if level.startswith(prefix)]
    found = []
    for end in range(len(level) + 1):
        child = prefixes.get(level[:end])
        if child is not None:
            found.append(child)
    return found
