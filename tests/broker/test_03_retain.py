"""03 - Retained messages: store, replace, clear, QoS, retain handling, RAP."""

from __future__ import annotations

import pytest
from mqtt_peers import Peers
from mqtt_wire import PUBLISH, RawClient, publish


@pytest.mark.parametrize("version", [4, 5])
def test_03_new_subscriber_gets_retained_with_retain_flag(peers: Peers, uid, version):
    pub = peers.paho(version=version)
    pub.publish(f"{uid}/r", b"kept", 1, retain=True)
    sub = peers.paho(version=version)
    sub.subscribe(f"{uid}/r", 1)
    m = sub.expect_one()
    assert (m.payload, m.retain, m.qos) == (b"kept", True, 1), m


def test_03_retained_qos0_is_stored_too(peers: Peers, uid):
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/r", b"zero", 0, retain=True)
    pub.barrier()  # the QoS 0 PUBLISH has been processed
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/r", 2)
    m = sub.expect_one()
    assert (m.payload, m.retain, m.qos) == (b"zero", True, 0), m


def test_03_delivered_qos_is_min_of_stored_and_subscription(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"two", 2, retain=True)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 1)
    assert sub.expect_one().qos == 1


def test_03_newer_retained_replaces_older(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"old", 1, retain=True)
    pub.publish(f"{uid}/r", b"new", 1, retain=True)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 1)
    assert sub.expect_one().payload == b"new"
    sub.barrier(via=pub)
    sub.assert_nothing("(only the latest retained message per topic)")


@pytest.mark.parametrize("version", [4, 5])
def test_03_empty_payload_clears_and_is_forwarded_live(peers: Peers, uid, version):
    pub = peers.paho(version=version)
    pub.publish(f"{uid}/r", b"soon gone", 1, retain=True)
    live = peers.paho(version=version)
    live.subscribe(f"{uid}/r", 1)
    assert live.expect_one().payload == b"soon gone"
    pub.publish(f"{uid}/r", b"", 1, retain=True)
    # The empty retained PUBLISH still goes to current subscribers [MQTT-3.3.1-10/11].
    assert live.expect_one().payload == b""
    late = peers.paho(version=version)
    late.subscribe(f"{uid}/r", 1)
    late.barrier(via=pub)
    late.assert_nothing("(an empty retained payload must clear the retained message)")


def test_03_non_retained_publish_keeps_retained(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"retained", 1, retain=True)
    pub.publish(f"{uid}/r", b"transient", 1, retain=False)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 1)
    assert sub.expect_one().payload == b"retained"


def test_03_wildcard_subscription_gets_every_retained_topic(peers: Peers, uid):
    pub = peers.paho(version=5)
    topics = [f"{uid}/w/a", f"{uid}/w/b/c", f"{uid}/w", f"{uid}/other"]
    for i, t in enumerate(topics):
        pub.publish(t, str(i).encode(), 1, retain=True)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/w/#", 1)
    got = sub.expect(3)
    assert sorted(m.topic for m in got) == sorted(topics[:3])
    assert all(m.retain for m in got)
    sub.barrier(via=pub)
    sub.assert_nothing()


def test_03_retained_flag_on_wire_exact(broker, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}p")
    c.send(publish(f"{uid}/r", b"xyz", qos=0, retain=True))
    s = RawClient.to(broker)
    s.connect(f"{uid}s")
    # The retained message must be in before the subscriber asks: a PINGREQ on
    # the publisher's connection is answered after its PUBLISH was handled.
    c.ping()
    s.subscribe(1, [(f"{uid}/r", 0)])
    p = s.expect(PUBLISH)
    topic = f"{uid}/r".encode()
    assert p.raw == bytes([0x31, 2 + len(topic) + 3, 0, len(topic)]) + topic + b"xyz", p


def test_03_v5_retain_handling(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/rh", b"r", 1, retain=True)
    # rh=0: sent at every subscribe, even a repeated one.
    s0 = peers.paho(version=5)
    s0.subscribe(f"{uid}/rh", 1, rh=0)
    assert s0.expect_one().retain
    s0.subscribe(f"{uid}/rh", 1, rh=0)
    assert s0.expect_one().retain
    # rh=1: only when the subscription is new.
    s1 = peers.paho(version=5)
    s1.subscribe(f"{uid}/rh", 1, rh=1)
    assert s1.expect_one().retain
    s1.subscribe(f"{uid}/rh", 1, rh=1)
    s1.barrier(via=pub)
    s1.assert_nothing("(retain handling 1 on an existing subscription)")
    # rh=2: never.
    s2 = peers.paho(version=5)
    s2.subscribe(f"{uid}/rh", 1, rh=2)
    s2.barrier(via=pub)
    s2.assert_nothing("(retain handling 2)")
    # but live messages still flow to all three
    pub.publish(f"{uid}/rh", b"live", 1)
    for s in (s0, s1, s2):
        assert s.expect_one().payload == b"live"


def test_03_v5_retain_as_published(peers: Peers, uid):
    rap = peers.paho(version=5)
    rap.subscribe(f"{uid}/rap", 1, rap=True)
    plain = peers.paho(version=5)
    plain.subscribe(f"{uid}/rap", 1, rap=False)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/rap", b"r", 1, retain=True)
    pub.publish(f"{uid}/rap", b"n", 1, retain=False)
    assert [(m.payload, m.retain) for m in rap.expect(2)] == [(b"r", True), (b"n", False)]
    assert [(m.payload, m.retain) for m in plain.expect(2)] == [(b"r", False), (b"n", False)]


def test_03_v5_retained_keeps_properties(peers: Peers, uid):
    pub = peers.paho(version=5)
    props = {
        "ContentType": "text/plain",
        "UserProperty": [("a", "1"), ("b", "2"), ("a", "3")],
        "ResponseTopic": f"{uid}/reply",
        "CorrelationData": b"\x00\x01corr",
        "PayloadFormatIndicator": 1,
    }
    pub.publish(f"{uid}/rp", b"with props", 1, retain=True, properties=props)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/rp", 1)
    m = sub.expect_one()
    assert m.retain
    for key, value in props.items():
        assert m.props.get(key) == value, f"{key}: sent {value!r}, got {m.props.get(key)!r}"


def test_03_retained_across_clients_and_transports(peers: Peers, uid):
    js = peers.js(version=4, transport="ws")
    js.publish(f"{uid}/x", b"from js over ws", 1, retain=True)
    sub = peers.paho(version=5, transport="tcp")
    sub.subscribe(f"{uid}/x", 1)
    m = sub.expect_one()
    assert (m.payload, m.retain) == (b"from js over ws", True)
    js2 = peers.js(version=5, transport="tcp")
    js2.subscribe(f"{uid}/#", 1)
    m = js2.expect_one()
    assert (m.payload, m.retain) == (b"from js over ws", True)


def test_03_v5_shared_subscription_gets_no_retained(peers: Peers, uid):
    # MQTT 5 4.8.2: retained messages are not sent when a shared subscription
    # is established.
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/s", b"r", 1, retain=True)
    sub = peers.paho(version=5)
    sub.subscribe(f"$share/g/{uid}/s", 1)
    sub.barrier(via=pub)
    sub.assert_nothing("(a shared subscription received a retained message)")
