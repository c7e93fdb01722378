"""Access control: allow/deny publish and subscribe by topic filter, per user.

Rules are checked in order; the first rule whose user and operation apply and whose
filter matches decides. When no rule applies, the VPN's default decides.

Publishing is decided per topic. Subscribing is decided per requested filter:

- a rule whose filter *covers* the requested one (every topic the subscription
  could receive matches the rule) decides outright: ``deny`` refuses the
  SUBSCRIBE (MQTT SUBACK 0x80/0x87);
- a rule that only *overlaps* the requested filter cannot decide for all topics, so
  the subscription is granted but marked *filtered*: each message is checked
  against the rules before delivery. A user denied ``secret/#`` who subscribes to
  ``#`` therefore receives everything except ``secret/...``.

``covers`` under-approximates and ``overlaps`` over-approximates, so when unsure
the decision falls to the per-message check, which is exact: never a leak.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from warren.core.topics import MANY0, MANY1, ONE, Filter, Prefix, filter_matches, format_filter

__all__ = ["ANONYMOUS", "EVERYONE", "AccessControl", "AclDecision", "AclRule", "Operation"]

ANONYMOUS = "$anonymous"
EVERYONE = "*"


class Operation(enum.Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    ALL = "all"


class AclDecision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    FILTERED = "filtered"  # granted; every message is checked before delivery


@dataclass(frozen=True, slots=True)
class AclRule:
    allow: bool
    operation: Operation
    filter: Filter
    user: str = EVERYONE
    source: str = "config"  # where the rule came from, for error messages

    def applies_to(self, username: str | None, operation: Operation) -> bool:
        if self.operation is not Operation.ALL and self.operation is not operation:
            return False
        if self.user == EVERYONE:
            return True
        if self.user == ANONYMOUS:
            return username is None
        return self.user == username

    def describe(self) -> str:
        verb = "allow" if self.allow else "deny"
        return (
            f"{verb} {self.operation.value} {format_filter(self.filter)!r} "
            f"for {self.user!r} ({self.source})"
        )


class AccessControl:
    """The ACL of one VPN."""

    def __init__(self, rules: Iterable[AclRule] = (), default_allow: bool = True) -> None:
        self.rules: tuple[AclRule, ...] = tuple(rules)
        self.default_allow = default_allow

    @property
    def is_open(self) -> bool:
        """True when everything is allowed: lets the hot path skip checks entirely."""
        return self.default_allow and not self.rules

    def _rules_for(self, username: str | None, operation: Operation) -> Sequence[AclRule]:
        return [r for r in self.rules if r.applies_to(username, operation)]

    def can_publish(self, username: str | None, topic: str) -> bool:
        for rule in self.rules:
            if rule.applies_to(username, Operation.PUBLISH) and filter_matches(rule.filter, topic):
                return rule.allow
        return self.default_allow

    def can_read(self, username: str | None, topic: str) -> bool:
        """Per-message check for a filtered subscription."""
        for rule in self.rules:
            if rule.applies_to(username, Operation.SUBSCRIBE) and filter_matches(
                rule.filter, topic
            ):
                return rule.allow
        return self.default_allow

    def check_subscribe(self, username: str | None, requested: Filter) -> AclDecision:
        partial = False
        for rule in self._rules_for(username, Operation.SUBSCRIBE):
            if covers(rule.filter, requested):
                if rule.allow:
                    return AclDecision.FILTERED if partial else AclDecision.ALLOW
                return AclDecision.FILTERED if partial else AclDecision.DENY
            if overlaps(rule.filter, requested):
                partial = True
        if partial:
            return AclDecision.FILTERED
        return AclDecision.ALLOW if self.default_allow else AclDecision.DENY


# --- filter algebra -------------------------------------------------------------


def _is_multi(token: object) -> bool:
    return token is MANY0 or token is MANY1


def _single_covers(r: object, f: object) -> bool:
    """Does single-level token r match every level single-level token f matches?"""
    if r is ONE:
        return True
    if isinstance(r, Prefix):
        if isinstance(f, str):
            return f.startswith(r.prefix)
        if isinstance(f, Prefix):
            return f.prefix.startswith(r.prefix)
        return False
    return isinstance(f, str) and r == f


def _single_overlaps(r: object, f: object) -> bool:
    if r is ONE or f is ONE:
        return True
    if isinstance(r, Prefix) and isinstance(f, Prefix):
        return r.prefix.startswith(f.prefix) or f.prefix.startswith(r.prefix)
    if isinstance(r, Prefix):
        return isinstance(f, str) and f.startswith(r.prefix)
    if isinstance(f, Prefix):
        return isinstance(r, str) and r.startswith(f.prefix)
    return r == f


def _first_is_wildcard(f: Filter) -> bool:
    if not f:
        return False
    first = f[0]
    if isinstance(first, str):
        return False
    if isinstance(first, Prefix):
        return not first.prefix.startswith("$")
    return True


def _may_match_dollar(f: Filter) -> bool:
    """Whether ``f`` can match a topic whose first level starts with '$'."""
    if not f:
        return False
    first = f[0]
    if isinstance(first, str):
        return first.startswith("$")
    return isinstance(first, Prefix) and first.prefix.startswith("$")


def _min_levels(tokens: Sequence[object]) -> int:
    return sum(0 if t is MANY0 else 1 for t in tokens)


def covers(rule: Filter, requested: Filter) -> bool:
    """Whether every topic matching ``requested`` also matches ``rule`` (sound, not complete)."""
    # [MQTT-4.7.2-1] a leading wildcard never matches '$' topics.
    if _first_is_wildcard(rule) and _may_match_dollar(requested):
        return False
    return _covers(rule, 0, requested, 0)


def _covers(r: Filter, i: int, f: Filter, j: int) -> bool:
    if i == len(r):
        return j == len(f)
    tok = r[i]
    if tok is MANY0:
        if i == len(r) - 1:
            return True
        return any(_covers(r, i + 1, f, k) for k in range(j, len(f) + 1))
    if tok is MANY1:
        if i == len(r) - 1:
            return len(f) > j and _min_levels(f[j:]) >= 1
        return any(
            _covers(r, i + 1, f, k)
            for k in range(j + 1, len(f) + 1)
            if _min_levels(f[j:k]) >= 1
        )
    if j == len(f) or _is_multi(f[j]):
        return False
    return _single_covers(tok, f[j]) and _covers(r, i + 1, f, j + 1)


def overlaps(rule: Filter, requested: Filter) -> bool:
    """Whether some topic could match both filters (may say True when unsure)."""
    return _overlaps(rule, 0, requested, 0)


def _overlaps(r: Filter, i: int, f: Filter, j: int) -> bool:
    if i == len(r) or j == len(f):
        rest = r[i:] if j == len(f) else f[j:]
        return all(t is MANY0 for t in rest)
    if _is_multi(r[i]) or _is_multi(f[j]):
        return True
    return _single_overlaps(r[i], f[j]) and _overlaps(r, i + 1, f, j + 1)
