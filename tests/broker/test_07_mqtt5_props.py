"""07 - MQTT 5 features: properties passthrough, subscription ids, no-local,
topic aliases, flow control (receive maximum), message expiry, packet size."""

from __future__ import annotations

import time

import pytest
from mqtt_peers import Peers
from mqtt_wire import (
    PUBACK,
    PUBLISH,
    PUBREC,
    RawClient,
    ack,
    publish,
    sub_options,
    subscribe,
)

FULL_PROPS = {
    "ContentType": "application/cbor",
    "ResponseTopic": "reply/here",
    "CorrelationData": b"\x00\x01\x02\xff",
    "UserProperty": [("k", "v1"), ("k", "v2"), ("other", ""), ("ünï", "cødé")],
    "PayloadFormatIndicator": 1,  # UTF-8: the payloads below are valid UTF-8
}


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_07_properties_passed_through_paho(peers: Peers, uid, qos):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/p", 2)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/p", "tëxt".encode(), qos, properties=FULL_PROPS)
    m = sub.expect_one()
    for key, value in FULL_PROPS.items():
        # User properties: order and duplicates kept [MQTT-3.3.2-18].
        assert m.props.get(key) == value, f"{key}: sent {value!r}, got {m.props.get(key)!r}"
    assert "MessageExpiryInterval" not in m.props, "expiry invented by the broker"


def test_07_properties_cross_client_mqttjs_ws_to_paho_tcp(peers: Peers, uid):
    sub = peers.paho(version=5, transport="tcp")
    sub.subscribe(f"{uid}/p", 1)
    js = peers.js(version=5, transport="ws")
    js.publish(
        f"{uid}/p",
        b"{}",
        1,
        properties={
            "contentType": "application/json",
            "responseTopic": f"{uid}/r",
            "correlationData": b"\x01\x02",
            "userProperties": {"a": "1", "b": ["2", "3"]},
            "payloadFormatIndicator": True,
        },
    )
    m = sub.expect_one()
    assert m.props.get("ContentType") == "application/json"
    assert m.props.get("ResponseTopic") == f"{uid}/r"
    assert m.props.get("CorrelationData") == b"\x01\x02"
    assert m.props.get("PayloadFormatIndicator") == 1
    assert sorted(m.props.get("UserProperty", [])) == [("a", "1"), ("b", "2"), ("b", "3")]


def test_07_v311_subscriber_gets_payload_without_properties(peers: Peers, uid):
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/p", 1)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/p", b"plain", 1, properties=FULL_PROPS)
    m = sub.expect_one()
    assert (m.payload, m.qos, m.props) == (b"plain", 1, {})


def test_07_request_response_round_trip(peers: Peers, uid):
    requester = peers.paho(version=5)
    requester.subscribe(f"{uid}/reply", 1)
    responder = peers.paho(version=5)
    responder.subscribe(f"{uid}/req", 1)
    requester.publish(
        f"{uid}/req",
        b"ping?",
        1,
        properties={"ResponseTopic": f"{uid}/reply", "CorrelationData": b"42"},
    )
    req = responder.expect_one()
    responder.publish(
        req.props["ResponseTopic"],
        b"pong!",
        1,
        properties={"CorrelationData": req.props["CorrelationData"]},
    )
    rep = requester.expect_one()
    assert (rep.topic, rep.payload, rep.props.get("CorrelationData")) == (
        f"{uid}/reply",
        b"pong!",
        b"42",
    )


def test_07_subscription_identifiers(peers: Peers, uid):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/a/+", 1, properties={"SubscriptionIdentifier": 7})
    sub.subscribe(f"{uid}/a/b", 1, properties={"SubscriptionIdentifier": 268435455})
    sub.subscribe(f"{uid}/#", 1)  # no identifier
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/a/b", b"both", 1)
    pub.publish(f"{uid}/a/c", b"one", 1)
    pub.publish(f"{uid}/z", b"none", 1)
    both, one, none = sub.expect(3)
    # One copy carrying every matching subscription's identifier (3.3.4).
    assert sorted(both.props.get("SubscriptionIdentifier", [])) == [7, 268435455], both
    assert one.props.get("SubscriptionIdentifier") == [7], one
    assert "SubscriptionIdentifier" not in none.props, none


def test_07_subscription_identifier_on_retained_and_replaced(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"kept", 1, retain=True)
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 1, properties={"SubscriptionIdentifier": 5})
    assert sub.expect_one().props.get("SubscriptionIdentifier") == [5]
    # Re-subscribing without an identifier removes it.
    sub.subscribe(f"{uid}/r", 1, rh=2)
    pub.publish(f"{uid}/r", b"live", 1)
    m = sub.expect_one()
    assert "SubscriptionIdentifier" not in m.props, m


def test_07_subscription_identifier_zero_is_protocol_error(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}s")
    c.send(subscribe(1, [(f"{uid}/x", 1)], version=5, properties={"SubscriptionIdentifier": 0}))
    c.expect_disconnect_and_close({0x81, 0x82})


def test_07_no_local(peers: Peers, uid):
    me = peers.paho(version=5)
    me.subscribe(f"{uid}/chat", 1, no_local=True)
    other = peers.paho(version=5)
    other.subscribe(f"{uid}/chat", 1, no_local=True)
    me.publish(f"{uid}/chat", b"from me", 1)
    assert other.expect_one().payload == b"from me"
    other.publish(f"{uid}/chat", b"from other", 1)
    assert me.expect_one().payload == b"from other"
    me.barrier()
    me.assert_nothing("(no-local subscription got its own message)")
    other.barrier()
    other.assert_nothing("(no-local subscription got its own message)")


def test_07_client_topic_alias(broker, peers: Peers, uid):
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/#", 1)
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}a")
    c.send(
        publish(f"{uid}/long/topic", b"1", qos=1, pid=1, version=5, properties={"TopicAlias": 3})
    )
    c.expect(PUBACK)
    c.send(publish("", b"2", qos=1, pid=2, version=5, properties={"TopicAlias": 3}))
    c.expect(PUBACK)
    # Re-map alias 3 to a new topic.
    c.send(publish(f"{uid}/other", b"3", qos=1, pid=3, version=5, properties={"TopicAlias": 3}))
    c.expect(PUBACK)
    c.send(publish("", b"4", qos=1, pid=4, version=5, properties={"TopicAlias": 3}))
    c.expect(PUBACK)
    got = [(m.topic, m.payload) for m in sub.expect(4)]
    assert got == [
        (f"{uid}/long/topic", b"1"),
        (f"{uid}/long/topic", b"2"),
        (f"{uid}/other", b"3"),
        (f"{uid}/other", b"4"),
    ]
    assert all("TopicAlias" not in m.props for m in sub.pending())


@pytest.mark.parametrize("which", ["zero", "above maximum"])
def test_07_topic_alias_out_of_range_is_0x94(broker, uid, which):
    c = RawClient.to(broker, version=5)
    maximum = c.connect(f"{uid}a").fields["props"].get("TopicAliasMaximum", 0)
    alias = 0 if which == "zero" else maximum + 1
    c.send(publish(f"{uid}/t", b"x", version=5, properties={"TopicAlias": alias}))
    # Above the maximum: 0x94 Topic Alias invalid [MQTT-3.3.2-9]. Zero is not
    # permitted [MQTT-3.3.2-8]; 0x94 fits best, malformed/protocol error are allowed.
    c.expect_disconnect_and_close({0x94} if alias else {0x94, 0x81, 0x82})


def test_07_unknown_topic_alias_is_protocol_error(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}a")
    c.send(publish("", b"x", version=5, properties={"TopicAlias": 5}))
    c.expect_disconnect_and_close({0x82, 0x94})


def test_07_topic_aliases_are_per_connection(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}a", properties={"SessionExpiryInterval": 60})
    c.send(publish(f"{uid}/t", b"x", qos=1, pid=1, version=5, properties={"TopicAlias": 1}))
    c.expect(PUBACK)
    c.close()
    again = RawClient.to(broker, version=5)
    again.connect(f"{uid}a", clean=False, properties={"SessionExpiryInterval": 60})
    again.send(publish("", b"y", version=5, properties={"TopicAlias": 1}))
    again.expect_disconnect_and_close({0x82, 0x94})


def test_07_server_topic_aliases_resolved_by_mqttjs(peers: Peers, uid):
    # The server MAY use aliases towards a client that allows them; whatever it
    # does, MQTT.js (which resolves aliases) must see full topic names.
    js = peers.js(version=5, options={"topicAliasMaximum": 4})
    js.subscribe(f"{uid}/#", 1)
    pub = peers.paho(version=5)
    for i in range(4):
        pub.publish(f"{uid}/same/topic", str(i).encode(), 1)
        pub.publish(f"{uid}/other", str(i).encode(), 1)
    got = js.expect(8)
    assert [m.topic for m in got] == [f"{uid}/same/topic", f"{uid}/other"] * 4


def test_07_server_topic_alias_rules_on_the_wire(peers: Peers, uid, broker):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}r", properties={"TopicAliasMaximum": 2})
    c.subscribe(1, [(f"{uid}/#", 0)])
    pub = peers.paho(version=5)
    topics = [f"{uid}/a", f"{uid}/b", f"{uid}/c", f"{uid}/a", f"{uid}/b"]
    for t in topics:
        pub.publish(t, b"x", 0)
    aliases: dict[int, str] = {}
    for expected in topics:
        p = c.expect(PUBLISH)
        alias = p.fields["props"].get("TopicAlias")
        if alias is None:
            assert p.fields["topic"] == expected
            continue
        assert 1 <= alias <= 2, f"alias {alias} beyond the client's maximum 2: {p!r}"
        if p.fields["topic"]:
            aliases[alias] = p.fields["topic"]
        assert aliases.get(alias) == expected, f"alias {alias} used before being set: {p!r}"


def test_07_no_server_aliases_when_client_allows_none(peers: Peers, uid, broker):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}r")  # Topic Alias Maximum absent = 0 [MQTT-3.1.2-26]
    c.subscribe(1, [(f"{uid}/t", 0)])
    pub = peers.paho(version=5)
    for _ in range(3):
        pub.publish(f"{uid}/t", b"x", 0)
    for _ in range(3):
        p = c.expect(PUBLISH)
        assert "TopicAlias" not in p.fields["props"] and p.fields["topic"] == f"{uid}/t", p


def test_07_client_receive_maximum_respected(peers: Peers, uid, broker):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}r", properties={"ReceiveMaximum": 2})
    c.subscribe(1, [(f"{uid}/t", 1)])
    pub = peers.paho(version=5)
    for i in range(5):
        pub.publish(f"{uid}/t", str(i).encode(), 1)  # each routed before its PUBACK
    first = [c.expect(PUBLISH), c.expect(PUBLISH)]
    # [MQTT-3.3.4-9]: no more than 2 unacknowledged QoS>0 PUBLISHes. A PINGRESP
    # queued after them proves no third PUBLISH was written before it.
    c.send(b"\xc0\x00")
    nxt = c.recv(what="PINGRESP")
    assert nxt.raw == b"\xd0\x00", f"third PUBLISH sent with 2 unacknowledged: {nxt!r}"
    c.send(ack(PUBACK, first[0].fields["pid"]))
    third = c.expect(PUBLISH)
    c.send(b"\xc0\x00")
    nxt = c.recv(what="PINGRESP")
    assert nxt.raw == b"\xd0\x00", f"receive maximum exceeded after one PUBACK: {nxt!r}"
    rest = [third]
    for p in [first[1], third]:
        c.send(ack(PUBACK, p.fields["pid"]))
    rest += [c.expect(PUBLISH), c.expect(PUBLISH)]
    payloads = [p.fields["payload"] for p in first + rest]
    assert payloads == [b"0", b"1", b"2", b"3", b"4"], payloads


def test_07_server_receive_maximum_exceeded_disconnect_0x93(make_broker, uid):
    b = make_broker("[mqtt]\nreceive_maximum = 2\n")
    c = RawClient.to(b, version=5)
    props = c.connect(f"{uid}r").fields["props"]
    assert props.get("ReceiveMaximum") == 2, props
    for pid in (1, 2, 3):  # QoS 2, never released: all three stay in flight
        c.send(publish(f"{uid}/t", b"x", qos=2, pid=pid, version=5))
    c.expect(PUBREC)
    c.expect(PUBREC)
    c.expect_disconnect_and_close({0x93})  # Receive Maximum exceeded


def test_07_message_expiry(peers: Peers, uid):
    sid = f"{uid}s"
    props = {"SessionExpiryInterval": 60}
    sub = peers.paho(version=5, client_id=sid, properties=props)
    sub.subscribe(f"{uid}/e", 1)
    # Live: the property is forwarded, never larger than sent.
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/e", b"live", 1, properties={"MessageExpiryInterval": 60})
    live = sub.expect_one()
    assert 0 < live.props.get("MessageExpiryInterval", 0) <= 60, live
    sub.disconnect()
    pub.publish(f"{uid}/e", b"short", 1, properties={"MessageExpiryInterval": 1})
    pub.publish(f"{uid}/e", b"long", 1, properties={"MessageExpiryInterval": 30})
    pub.publish(f"{uid}/e", b"forever", 1)
    time.sleep(2.2)  # the feature under test is wall time: let 1 s expire
    back = peers.paho(version=5, client_id=sid, clean=False, properties=props)
    got = back.expect(2)
    assert [m.payload for m in got] == [b"long", b"forever"], got
    # [MQTT-3.3.2-6]: the forwarded interval is reduced by the time spent waiting.
    assert got[0].props.get("MessageExpiryInterval", 99) <= 28, got[0]
    assert "MessageExpiryInterval" not in got[1].props, got[1]
    back.barrier(via=pub)
    back.assert_nothing("(an expired message was delivered)")


def test_07_retained_message_expires(peers: Peers, uid):
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/r", b"brief", 1, retain=True, properties={"MessageExpiryInterval": 1})
    time.sleep(2.2)  # wall time is the feature under test
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/r", 1)
    sub.barrier(via=pub)
    sub.assert_nothing("(an expired retained message was delivered)")


def test_07_client_maximum_packet_size_respected(peers: Peers, uid):
    sub = peers.paho(version=5, properties={"MaximumPacketSize": 64})
    sub.subscribe(f"{uid}/m", 1)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/m", b"." * 200, 1)  # too big for the subscriber: dropped
    pub.publish(f"{uid}/m", b"small", 1)
    assert sub.expect_one().payload == b"small"
    assert sub.connected, "the broker must drop the oversized message, not the client"


def test_07_subscribe_options_on_wire_granted(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}o")
    opts = [sub_options(2, no_local=True, rap=True, rh=2), sub_options(1, rh=1)]
    codes = c.subscribe(1, [(f"{uid}/a", opts[0]), (f"{uid}/b", opts[1])])
    assert codes == [2, 1], codes


def test_07_reserved_subscribe_option_bits_are_malformed(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}o")
    c.send(subscribe(1, [(f"{uid}/a", 0xC1)], version=5))  # bits 6-7 reserved
    c.expect_disconnect_and_close({0x81})


def test_07_retain_handling_3_is_malformed(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}o")
    c.send(subscribe(1, [(f"{uid}/a", 0x31)], version=5))
    c.expect_disconnect_and_close({0x81, 0x82})


def test_07_request_problem_information_zero_still_connects(broker, uid):
    c = RawClient.to(broker, version=5)
    ack_ = c.connect(
        f"{uid}o",
        properties={
            "RequestProblemInformation": 0,
            "RequestResponseInformation": 1,
            "UserProperty": [("hello", "world")],
        },
    )
    assert ack_.fields["code"] == 0


def test_07_qos2_publish_with_pubrec_error_code_releases_id(broker, peers: Peers, uid):
    # A subscriber answering PUBREC >= 0x80 ends the QoS 2 flow (no PUBREL).
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}s")
    c.subscribe(1, [(f"{uid}/t", 2)])
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/t", b"refused", 2)
    p = c.expect(PUBLISH)
    c.send(ack(PUBREC, p.fields["pid"], reason=0x80))
    c.ping()  # no PUBREL may follow a failed PUBREC [MQTT-4.3.3-?]
