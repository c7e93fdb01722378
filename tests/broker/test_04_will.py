"""04 - Will messages: abrupt close, clean DISCONNECT, keep-alive, delay, takeover."""

from __future__ import annotations

import time

import pytest
from mqtt_peers import Peers
from mqtt_wire import RawClient, connect, disconnect


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("version", [4, 5])
def test_04_will_published_on_abrupt_close(peers: Peers, uid, version, transport):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 2)
    dying = peers.paho(
        version=version,
        transport=transport,
        will={"topic": f"{uid}/will", "payload": b"gone", "qos": 1},
    )
    dying.drop()
    m = watcher.expect_one()
    assert (m.topic, m.payload, m.qos, m.retain) == (f"{uid}/will", b"gone", 1, False), m


@pytest.mark.parametrize("version", [4, 5])
def test_04_no_will_after_clean_disconnect(peers: Peers, uid, broker, version):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/#", 1)
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}d", will={"topic": f"{uid}/will", "payload": b"no!", "qos": 1})
    c.send(disconnect(0) if version == 5 else b"\xe0\x00")
    assert c.expect_closed() == b""
    # Positive control on the same path: an abrupt close does publish its will.
    control = RawClient.to(broker, version=version)
    control.connect(f"{uid}e", will={"topic": f"{uid}/control", "payload": b"yes", "qos": 1})
    control.close()
    m = watcher.expect_one()
    assert m.topic == f"{uid}/control", f"the cleanly disconnected client's will was sent: {m}"
    watcher.barrier()
    watcher.assert_nothing("(will after a normal DISCONNECT)")


def test_04_v5_disconnect_with_will_message_0x04(peers: Peers, uid, broker):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 1)
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}d", will={"topic": f"{uid}/will", "payload": b"asked for", "qos": 1})
    c.send(disconnect(0x04))  # Disconnect with Will Message
    c.expect_closed()
    assert watcher.expect_one().payload == b"asked for"


def test_04_will_on_keep_alive_timeout(peers: Peers, uid, broker):
    watcher = peers.paho(version=4)
    watcher.subscribe(f"{uid}/will", 1)
    c = RawClient.to(broker)
    c.connect(f"{uid}k", keepalive=1, will={"topic": f"{uid}/will", "payload": b"silent"})
    start = time.monotonic()
    m = watcher.expect_one(timeout=8)
    assert m.payload == b"silent"
    assert time.monotonic() - start >= 1.0, "will sent before the keep-alive expired"


def test_04_retained_will(peers: Peers, uid):
    dying = peers.paho(
        version=4, will={"topic": f"{uid}/status", "payload": b"offline", "qos": 1, "retain": True}
    )
    watcher = peers.paho(version=4)
    watcher.subscribe(f"{uid}/status", 1)
    dying.drop()
    live = watcher.expect_one()
    assert live.payload == b"offline"
    late = peers.paho(version=4)
    late.subscribe(f"{uid}/status", 1)
    m = late.expect_one()
    assert (m.payload, m.retain) == (b"offline", True)


def test_04_v5_will_properties_passed_through(peers: Peers, uid):
    props = {
        "ContentType": "application/json",
        "ResponseTopic": f"{uid}/who",
        "CorrelationData": b"\xff\x00c",
        "UserProperty": [("a", "2"), ("c", "3")],
        "PayloadFormatIndicator": 1,
    }
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 2)
    dying = peers.paho(
        version=5,
        will={"topic": f"{uid}/will", "payload": b'{"x":1}', "qos": 2, "properties": props},
    )
    dying.drop()
    m = watcher.expect_one()
    assert m.qos == 2
    for key, value in props.items():
        assert m.props.get(key) == value, f"{key}: sent {value!r}, got {m.props.get(key)!r}"


def test_04_v5_will_delay(peers: Peers, uid, broker):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 1)
    c = RawClient.to(broker, version=5)
    c.connect(
        f"{uid}d",
        properties={"SessionExpiryInterval": 60},
        will={"topic": f"{uid}/will", "payload": b"late", "properties": {"WillDelayInterval": 2}},
    )
    c.close()
    start = time.monotonic()
    m = watcher.expect_one(timeout=8)
    elapsed = time.monotonic() - start
    assert m.payload == b"late"
    assert 1.5 <= elapsed <= 6, f"will delay 2 s: will arrived after {elapsed:.2f}s"


def test_04_v5_will_delay_cancelled_by_reconnect(peers: Peers, uid, broker):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/#", 1)
    will = {"topic": f"{uid}/will", "payload": b"must not", "properties": {"WillDelayInterval": 1}}
    control_will = {
        "topic": f"{uid}/control",
        "payload": b"clock",
        "properties": {"WillDelayInterval": 1},
    }
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}d", properties={"SessionExpiryInterval": 60}, will=will)
    c.close()
    # Reconnect (session resumed) before the delay: the will is not sent [MQTT-3.1.3-9].
    again = RawClient.to(broker, version=5)
    ack = again.connect(f"{uid}d", clean=False, properties={"SessionExpiryInterval": 60})
    assert ack.fields["session_present"], ack
    # A control client with the same will delay, dropped after the first one:
    # once its will is in, the first one's would have been too.
    control = RawClient.to(broker, version=5)
    control.connect(f"{uid}e", properties={"SessionExpiryInterval": 60}, will=control_will)
    control.close()
    m = watcher.expect_one(timeout=6)
    assert m.topic == f"{uid}/control", f"will sent although the client came back: {m}"
    watcher.assert_nothing("(will of a client that reconnected within its will delay)")


def test_04_v5_session_end_before_will_delay_publishes_will(peers: Peers, uid, broker):
    # Will delay 30 s, session expiry 1 s: the will goes when the session ends.
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 1)
    c = RawClient.to(broker, version=5)
    c.connect(
        f"{uid}d",
        properties={"SessionExpiryInterval": 1},
        will={
            "topic": f"{uid}/will",
            "payload": b"expired",
            "properties": {"WillDelayInterval": 30},
        },
    )
    c.close()
    start = time.monotonic()
    assert watcher.expect_one(timeout=6).payload == b"expired"
    assert time.monotonic() - start <= 5


def test_04_v5_session_expiry_zero_publishes_will_at_once(peers: Peers, uid, broker):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 1)
    c = RawClient.to(broker, version=5)
    c.connect(
        f"{uid}d",
        will={"topic": f"{uid}/will", "payload": b"now", "properties": {"WillDelayInterval": 30}},
    )
    c.close()
    start = time.monotonic()
    assert watcher.expect_one(timeout=5).payload == b"now"
    assert time.monotonic() - start < 2.5


def test_04_v5_takeover_publishes_old_will(peers: Peers, uid, broker):
    watcher = peers.paho(version=5)
    watcher.subscribe(f"{uid}/will", 1)
    old = RawClient.to(broker, version=5)
    old.connect(f"{uid}same", will={"topic": f"{uid}/will", "payload": b"taken over"})
    new = RawClient.to(broker, version=5)
    new.connect(f"{uid}same")
    # MQTT 5 3.1.2.5: the will is published when the connection is closed for any
    # reason other than a normal DISCONNECT, which includes a takeover.
    assert watcher.expect_one().payload == b"taken over"


def test_04_mqttjs_will_over_websocket(peers: Peers, uid):
    watcher = peers.js(version=4, transport="tcp")
    watcher.subscribe(f"{uid}/will", 1)
    dying = peers.js(
        version=5,
        transport="ws",
        options={
            "will": {
                "topic": f"{uid}/will",
                "payload": b"js",
                "qos": 1,
                "properties": {"userProperties": {"k": "v"}},
            },
        },
    )
    dying.drop()
    m = watcher.expect_one()
    assert (m.topic, m.payload) == (f"{uid}/will", b"js")


def test_04_will_topic_with_wildcard_refused(broker, uid):
    c = RawClient.to(broker)
    c.send(connect(f"{uid}w", version=4, will={"topic": "a/#", "payload": b"x"}))
    data = c.expect_closed()
    # Closed straight away, or after a refusing CONNACK; never accepted [MQTT-3.1.3-?]:
    # the will topic is a topic name, wildcards are not allowed in it.
    assert not data.startswith(b"\x20\x02\x00\x00"), (
        f"CONNECT with will topic 'a/#' was accepted: {data.hex(' ')}"
    )
