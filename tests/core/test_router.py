"""Router and session behaviour, protocol-free: what a subscriber would observe."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from warren.core.acl import AccessControl, AclRule, Operation
from warren.core.message import Message
from warren.core.router import NotAuthorized
from warren.core.sessions import Session, Subscription
from warren.core.stats import BrokerStats
from warren.core.topics import parse_mqtt_filter
from warren.core.vpn import Vpn


@dataclass
class RecordingSink:
    """A connection stand-in that records what the session writes to it."""

    open: bool = True
    sent: list[tuple[str, int, bool, tuple[int, ...], int, bool]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    full: int = 0

    def can_send(self) -> bool:
        return self.open

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int,
        dup: bool,
    ) -> None:
        self.sent.append((message.topic, qos, retain, subscription_ids, packet_id, dup))

    def send_release(self, packet_id: int) -> None:
        self.released.append(packet_id)

    def queue_full(self) -> None:
        self.full += 1

    @property
    def topics(self) -> list[str]:
        return [s[0] for s in self.sent]


def make_vpn(rules: list[AclRule] | None = None, default_allow: bool = True) -> Vpn:
    return Vpn("default", BrokerStats(), AccessControl(rules or [], default_allow))


def connect(vpn: Vpn, client_id: str, **kwargs: object) -> tuple[Session, RecordingSink]:
    session = Session(client_id, vpn, **kwargs)  # type: ignore[arg-type]
    vpn.add_session(session)
    sink = RecordingSink()
    session.attach(sink)
    return session, sink


def subscribe(session: Session, text: str, qos: int = 0, **kwargs: object) -> Subscription:
    group = None
    filter_text = text
    if text.startswith("$share/"):
        _, group, filter_text = text.split("/", 2)
    sub = Subscription(
        session,
        text,
        parse_mqtt_filter(filter_text),
        qos=qos,
        share_group=group,
        **kwargs,  # type: ignore[arg-type]
    )
    session.vpn.router.add(sub)
    return sub


def test_message_reaches_matching_subscribers_only() -> None:
    vpn = make_vpn()
    a, sink_a = connect(vpn, "a")
    b, sink_b = connect(vpn, "b")
    subscribe(a, "sensors/+/temp")
    subscribe(b, "sensors/kitchen/#")
    assert vpn.router.publish(Message("sensors/kitchen/temp", b"21")) == 2
    assert vpn.router.publish(Message("sensors/hall/humidity", b"40")) == 0
    assert sink_a.topics == ["sensors/kitchen/temp"]
    assert sink_b.topics == ["sensors/kitchen/temp"]


def test_overlapping_subscriptions_deliver_once_at_highest_qos_with_all_ids() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "c")
    subscribe(s, "a/#", qos=0, identifier=1)
    subscribe(s, "a/+", qos=2, identifier=7)
    vpn.router.publish(Message("a/b", b"x", qos=2))
    assert len(sink.sent) == 1
    topic, qos, _retain, ids, packet_id, _dup = sink.sent[0]
    assert (topic, qos, sorted(ids)) == ("a/b", 2, [1, 7])
    assert packet_id != 0


def test_delivery_qos_is_the_lower_of_message_and_subscription() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "c")
    subscribe(s, "t", qos=1)
    vpn.router.publish(Message("t", b"x", qos=2))
    vpn.router.publish(Message("t", b"y", qos=0))
    assert [q for _, q, *_ in sink.sent] == [1, 0]


def test_no_local_skips_the_publishing_session() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "c")
    subscribe(s, "chat", no_local=True)
    vpn.router.publish(Message("chat", b"me"), origin=s)
    other, _ = connect(vpn, "other")
    vpn.router.publish(Message("chat", b"you"), origin=other)
    assert len(sink.sent) == 1


def test_shared_subscription_round_robins_and_skips_disconnected_members() -> None:
    vpn = make_vpn()
    members = [connect(vpn, f"m{i}") for i in range(3)]
    for session, _ in members:
        subscribe(session, "$share/workers/jobs/#", qos=1)
    for i in range(6):
        vpn.router.publish(Message(f"jobs/{i}", b"", qos=1))
    assert [len(sink.sent) for _, sink in members] == [2, 2, 2]
    members[1][0].detach()
    for i in range(4):
        vpn.router.publish(Message(f"jobs/{i}", b"", qos=1))
    assert len(members[1][1].sent) == 2
    assert len(members[0][1].sent) + len(members[2][1].sent) == 8


def test_retained_message_replaced_and_cleared_by_empty_payload() -> None:
    vpn = make_vpn()
    router = vpn.router
    router.publish(Message("status/door", b"open", retain=True))
    router.publish(Message("status/door", b"closed", retain=True))
    assert [m.payload for m in router.retained_for(parse_mqtt_filter("status/#"))] == [b"closed"]
    router.publish(Message("status/door", b"", retain=True))
    assert router.retained_for(parse_mqtt_filter("status/#")) == []


def test_retain_flag_forwarded_only_with_retain_as_published() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "c")
    subscribe(s, "a", retain_as_published=True)
    t, sink_t = connect(vpn, "d")
    subscribe(t, "a")
    vpn.router.publish(Message("a", b"x", retain=True))
    assert sink.sent[0][2] is True
    assert sink_t.sent[0][2] is False


def test_offline_persistent_session_queues_and_resends_in_order() -> None:
    vpn = make_vpn()
    s, _sink = connect(vpn, "p", persistent=True, expiry_interval=60)
    subscribe(s, "q/#", qos=1)
    s.detach()
    for i in range(3):
        vpn.router.publish(Message(f"q/{i}", b"", qos=1))
    vpn.router.publish(Message("q/zero", b"", qos=0))  # QoS 0 is not queued offline
    new_sink = RecordingSink()
    s.attach(new_sink)
    assert new_sink.topics == ["q/0", "q/1", "q/2"]


def test_unacknowledged_messages_are_resent_with_dup_on_reattach() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "p", persistent=True, expiry_interval=60)
    subscribe(s, "q", qos=2)
    vpn.router.publish(Message("q", b"1", qos=2))
    vpn.router.publish(Message("q", b"2", qos=2))
    first, second = sink.sent[0][4], sink.sent[1][4]
    assert s.received(first)  # PUBREC for the first: now awaiting PUBCOMP
    s.detach()
    again = RecordingSink()
    s.attach(again)
    assert again.released == [first]  # PUBREL resent
    assert [(p, dup) for *_, p, dup in again.sent] == [(second, True)]
    assert s.acknowledge(first) and s.acknowledge(second)
    assert not s.inflight


def test_receive_maximum_limits_inflight_and_acks_release_more() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "p")
    s.receive_maximum = 2
    subscribe(s, "q", qos=1)
    for i in range(5):
        vpn.router.publish(Message("q", str(i).encode(), qos=1))
    assert len(sink.sent) == 2
    s.acknowledge(sink.sent[0][4])
    assert len(sink.sent) == 3
    assert len(s.pending) == 2


def test_queue_bound_drops_newest_and_tells_the_connection() -> None:
    vpn = make_vpn()
    s, sink = connect(vpn, "slow", max_queued=2)
    subscribe(s, "q", qos=0)
    sink.open = False  # the connection cannot take more bytes
    for i in range(5):
        vpn.router.publish(Message("q", str(i).encode()))
    assert len(s.pending) == 2
    assert s.dropped == 3 and sink.full == 3
    assert vpn.stats.dropped == 3
    sink.open = True
    s.drain()
    assert sink.topics == ["q", "q"]


def test_expired_messages_are_not_delivered_from_the_queue() -> None:
    vpn = make_vpn()
    s, _sink = connect(vpn, "p", persistent=True, expiry_interval=60)
    subscribe(s, "q", qos=1)
    s.detach()
    vpn.router.publish(Message("q", b"old", qos=1, expires_at=0.0))
    vpn.router.publish(Message("q", b"fresh", qos=1))
    again = RecordingSink()
    s.attach(again)
    assert len(again.sent) == 1


def test_acl_refuses_publish_and_filters_partially_denied_subscriptions() -> None:
    rules = [
        AclRule(False, Operation.SUBSCRIBE, parse_mqtt_filter("secret/#")),
        AclRule(False, Operation.PUBLISH, parse_mqtt_filter("ro/#"), user="guest"),
    ]
    vpn = make_vpn(rules)
    with pytest.raises(NotAuthorized):
        vpn.router.check_publish("guest", "ro/x")
    vpn.router.check_publish("admin", "ro/x")
    acl = vpn.acl
    assert acl.check_subscribe(None, parse_mqtt_filter("secret/plans")).value == "deny"
    assert acl.check_subscribe(None, parse_mqtt_filter("public/#")).value == "allow"
    assert acl.check_subscribe(None, parse_mqtt_filter("#")).value == "filtered"
    s, sink = connect(vpn, "c")
    subscribe(s, "#", filtered=True)
    vpn.router.publish(Message("secret/plans", b""))
    vpn.router.publish(Message("public/news", b""))
    assert sink.topics == ["public/news"]


def test_ending_a_session_removes_its_subscriptions() -> None:
    vpn = make_vpn()
    s, _sink = connect(vpn, "c")
    subscribe(s, "a/#")
    subscribe(s, "$share/g/a/#")
    vpn.end_session(s)
    assert vpn.router.publish(Message("a/b", b"")) == 0
    assert vpn.router.subscription_count == 0
    assert vpn.find_session("c") is None
