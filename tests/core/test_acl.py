"""ACL filter algebra: `covers` must never over-claim, `overlaps` never miss.

Checked against brute force over every topic of up to four levels from a small
alphabet: if the algebra were wrong, a denied topic could leak through a wildcard
subscription.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from warren.core.acl import AccessControl, AclDecision, AclRule, Operation, covers, overlaps
from warren.core.topics import MANY0, MANY1, ONE, Filter, Prefix, filter_matches, parse_mqtt_filter

LEVELS = ["a", "ab", "b", "", "$s"]
TOPICS = ["/".join(levels) for n in range(1, 5) for levels in itertools.product(LEVELS, repeat=n)]

single = st.sampled_from(["a", "b", "", "$s", ONE, Prefix("a"), Prefix("$")])
token = st.one_of(single, st.sampled_from([MANY0, MANY1]))
filters = st.lists(token, min_size=1, max_size=4).map(tuple)


def matching(f: Filter) -> set[str]:
    return {t for t in TOPICS if filter_matches(f, t)}


@settings(max_examples=400, deadline=None)
@given(filters, filters)
def test_covers_is_sound(rule: Filter, requested: Filter) -> None:
    if covers(rule, requested):
        assert matching(requested) <= matching(rule)


@settings(max_examples=400, deadline=None)
@given(filters, filters)
def test_overlaps_is_complete(rule: Filter, requested: Filter) -> None:
    if matching(rule) & matching(requested):
        assert overlaps(rule, requested)


def test_covers_recognises_the_common_cases() -> None:
    f = parse_mqtt_filter
    assert covers(f("a/#"), f("a/b/c"))
    assert covers(f("a/#"), f("a/+/#"))
    assert covers(f("+/b"), f("a/b"))
    assert covers(f("#"), f("a/#"))
    assert not covers(f("#"), f("$SYS/#"))  # [MQTT-4.7.2-1]
    assert not covers(f("a/+"), f("a/#"))


@settings(max_examples=300, deadline=None)
@given(filters, st.booleans(), st.sampled_from(TOPICS))
def test_filtered_subscription_never_leaks(rule: Filter, allow: bool, topic: str) -> None:
    """Whatever a subscription to '#' receives is exactly what can_read allows."""
    acl = AccessControl([AclRule(allow, Operation.SUBSCRIBE, rule)], default_allow=not allow)
    decision = acl.check_subscribe(None, parse_mqtt_filter("#"))
    readable = acl.can_read(None, topic)
    if decision is AclDecision.ALLOW and filter_matches(parse_mqtt_filter("#"), topic):
        assert readable
    if decision is AclDecision.DENY:
        assert not readable or not filter_matches(parse_mqtt_filter("#"), topic)
