"""02 - PUBLISH at QoS 0/1/2 both ways, exactly-once, ordering, matching, overlap."""

from __future__ import annotations

import pytest
from mqtt_peers import Peers
from mqtt_wire import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RawClient,
    ack,
    publish,
    unsubscribe,
)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_02_delivered_qos_is_min_of_publish_and_subscription(
    peers: Peers, uid, version, pub_qos, sub_qos
):
    sub = peers.paho(version=version)
    assert sub.subscribe(f"{uid}/q", sub_qos) == [sub_qos]
    pub = peers.paho(version=version)
    pub.publish(f"{uid}/q", b"payload", pub_qos)
    m = sub.expect_one()
    assert (m.topic, m.payload) == (f"{uid}/q", b"payload")
    assert m.qos == min(pub_qos, sub_qos), f"published {pub_qos}, subscribed {sub_qos}: {m}"
    assert m.retain is False, "live delivery to an existing subscription has RETAIN 0"
    sub.barrier(via=pub)
    sub.assert_nothing("(one PUBLISH must give one delivery)")


def test_02_v311_publisher_qos1_exact_puback(broker, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}p")
    c.send(publish(f"{uid}/x", b"1", qos=1, pid=0x1234))
    c.expect_bytes(b"\x40\x02\x12\x34")


def test_02_v311_publisher_qos2_exactly_once_with_duplicate(peers: Peers, uid, broker):
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/x", 2)
    c = RawClient.to(broker)
    c.connect(f"{uid}p")
    c.send(publish(f"{uid}/x", b"once", qos=2, pid=7))
    c.expect_bytes(b"\x50\x02\x00\x07")  # PUBREC 7
    # The same packet again with DUP (as after a lost PUBREC): acknowledged again
    # but not delivered again [MQTT-4.3.3-2, method A or B].
    c.send(publish(f"{uid}/x", b"once", qos=2, pid=7, dup=True))
    c.expect_bytes(b"\x50\x02\x00\x07")
    c.send(ack(PUBREL, 7))
    c.expect_bytes(b"\x70\x02\x00\x07")  # PUBCOMP 7
    # After PUBCOMP the id is free: a new message with id 7 is a new message.
    c.send(publish(f"{uid}/x", b"second", qos=2, pid=7))
    c.expect_bytes(b"\x50\x02\x00\x07")
    c.send(ack(PUBREL, 7))
    c.expect_bytes(b"\x70\x02\x00\x07")
    got = sub.expect(2)
    assert [m.payload for m in got] == [b"once", b"second"]
    assert all(m.qos == 2 for m in got)
    sub.barrier()
    sub.assert_nothing("(a QoS 2 duplicate was delivered twice)")


def test_02_v5_publisher_qos2_pubrel_unknown_id_gets_0x92(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}p")
    c.send(ack(PUBREL, 99, reason=0))
    pkt = c.expect(PUBCOMP)
    assert pkt.fields["pid"] == 99
    assert pkt.fields["code"] == 0x92, f"PUBCOMP for unknown id: expected 0x92, got {pkt!r}"
    c.ping()


def test_02_v311_pubrel_unknown_id_still_gets_pubcomp(broker, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}p")
    c.send(ack(PUBREL, 99))
    c.expect_bytes(b"\x70\x02\x00\x63")  # [MQTT-4.3.3-?]: always answer PUBREL


@pytest.mark.parametrize("version", [4, 5])
def test_02_subscriber_side_qos2_handshake(peers: Peers, uid, broker, version):
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}s")
    assert c.subscribe(1, [(f"{uid}/x", 2)]) == [2]
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/x", b"q2", 2)
    p = c.expect(PUBLISH)
    assert p.fields["qos"] == 2 and p.fields["payload"] == b"q2" and not p.fields["dup"]
    pid = p.fields["pid"]
    assert pid != 0
    c.send(ack(PUBREC, pid))
    rel = c.expect(PUBREL)
    assert rel.raw[:4] == bytes([0x62, rel.raw[1], pid >> 8, pid & 0xFF]), rel
    if version == 4:
        assert rel.raw == bytes([0x62, 0x02, pid >> 8, pid & 0xFF])
    c.send(ack(PUBCOMP, pid))
    c.ping()  # nothing else pending: no re-sent PUBLISH or PUBREL before the PINGRESP


def test_02_subscriber_side_qos1_puback(peers: Peers, uid, broker):
    c = RawClient.to(broker)
    c.connect(f"{uid}s")
    c.subscribe(1, [(f"{uid}/x", 1)])
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/x", b"q1", 1)
    p = c.expect(PUBLISH)
    assert (p.fields["qos"], p.fields["payload"], p.fields["retain"]) == (1, b"q1", False)
    c.send(ack(PUBACK, p.fields["pid"]))
    c.ping()


@pytest.mark.parametrize("qos", [1, 2])
def test_02_order_kept_per_publisher(peers: Peers, uid, qos):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/o", qos)
    pub = peers.paho(version=5)
    for i in range(100):
        pub.publish(f"{uid}/o", str(i).encode(), qos, wait=False)
    got = sub.expect(100, timeout=15)
    assert [int(m.payload) for m in got] == list(range(100))


def test_02_qos0_burst_all_delivered_in_order(peers: Peers, uid):
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/o", 0)
    pub = peers.paho(version=4)
    for i in range(200):
        pub.publish(f"{uid}/o", str(i).encode(), 0, wait=False)
    sub.barrier(via=pub, timeout=15)
    got = sub.expect(200, timeout=1)
    assert [int(m.payload) for m in got] == list(range(200))


def test_02_large_and_empty_payloads(peers: Peers, uid):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/big", 1)
    pub = peers.paho(version=5)
    big = bytes(range(256)) * 1024  # 256 KiB, every byte value
    pub.publish(f"{uid}/big", big, 1)
    pub.publish(f"{uid}/big", b"", 1)
    got = sub.expect(2)
    assert got[0].payload == big
    assert got[1].payload == b""


@pytest.mark.parametrize(
    ("filter_", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+/c", "a//c", True),
        ("a/#", "a", True),  # '#' includes the parent level [MQTT-4.7.1-2]
        ("a/#", "a/b/c/d", True),
        ("+/+", "a/b", True),
        ("+", "a/b", False),
        ("a/+/+", "a/b/", True),
        ("a/b/#", "a/bc", False),
    ],
)
def test_02_wildcard_matching(peers: Peers, uid, filter_, topic, matches):
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/{filter_}", 1)
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/{topic}", b"m", 1)
    sub.barrier(via=pub)
    got = [m.topic for m in sub.pending()]
    assert got == ([f"{uid}/{topic}"] if matches else []), (
        f"filter {filter_!r} vs topic {topic!r}: expected match={matches}, got {got}"
    )


@pytest.mark.parametrize("version", [4, 5])
def test_02_overlapping_subscriptions_delivered_once_at_max_qos(peers: Peers, uid, version):
    sub = peers.paho(version=version)
    assert sub.subscribe([f"{uid}/a/#"], 2) == [2]
    assert sub.subscribe([f"{uid}/a/+"], 1) == [1]
    assert sub.subscribe([f"{uid}/+/b"], 0) == [0]
    pub = peers.paho(version=version)
    pub.publish(f"{uid}/a/b", b"overlap", 2)
    m = sub.expect_one()
    assert m.qos == 2, f"overlapping subscriptions: expected one copy at QoS 2, got {m}"
    sub.barrier(via=pub)
    sub.assert_nothing("(overlapping subscriptions must yield a single copy)")


def test_02_unsubscribe_stops_delivery(peers: Peers, uid):
    sub = peers.paho(version=5)
    sub.subscribe([f"{uid}/a", f"{uid}/b"], 1)
    assert sub.unsubscribe(f"{uid}/a") == [0]
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/a", b"gone", 1)
    pub.publish(f"{uid}/b", b"kept", 1)
    assert sub.expect_one().payload == b"kept"
    sub.barrier(via=pub)
    sub.assert_nothing()


def test_02_v311_unsubscribe_exact_unsuback(broker, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}u")
    assert c.subscribe(0x0102, [(f"{uid}/a", 1)]) == [1]
    c.send(unsubscribe(0x0A0B, [f"{uid}/a", f"{uid}/never"]))
    c.expect_bytes(b"\xb0\x02\x0a\x0b")


def test_02_v5_unsubscribe_unknown_filter_reason_0x11(peers: Peers, uid):
    sub = peers.paho(version=5)
    assert sub.unsubscribe(f"{uid}/never") == [0x11]  # No subscription existed


def test_02_resubscribe_replaces_qos_without_duplicates(peers: Peers, uid):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 0)
    assert sub.subscribe(f"{uid}/r", 2) == [2]
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"x", 2)
    assert sub.expect_one().qos == 2
    sub.barrier(via=pub)
    sub.assert_nothing("(a re-subscription must replace, not add)")


def test_02_v311_publish_to_own_subscription_is_received(peers: Peers, uid):
    c = peers.paho(version=4)
    c.subscribe(f"{uid}/self", 1)
    c.publish(f"{uid}/self", b"echo", 1)
    assert c.expect_one().payload == b"echo"


def test_02_puback_for_qos1_with_no_subscribers(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}p")
    c.send(publish(f"{uid}/nobody", b"x", qos=1, pid=5, version=5))
    pkt = c.expect(PUBACK)
    assert pkt.fields["pid"] == 5
    # 0x10 No matching subscribers is allowed; success is too.
    assert pkt.fields["code"] in (0x00, 0x10), pkt
    c.send(publish(f"{uid}/nobody", b"x", qos=2, pid=6, version=5))
    pkt = c.expect(PUBREC)
    assert pkt.fields["pid"] == 6 and pkt.fields["code"] in (0x00, 0x10), pkt
