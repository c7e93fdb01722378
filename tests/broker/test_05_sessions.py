"""05 - Sessions: clean/persistent, offline queueing, redelivery, expiry, limits."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest
from mqtt_peers import Peers
from mqtt_wire import PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient, ack, publish


def test_05_v311_persistent_session_queues_qos1_and_qos2(peers: Peers, uid):
    sid = f"{uid}p"
    sub = peers.paho(version=4, client_id=sid, clean=False)
    assert sub.subscribe(f"{uid}/q", 2) == [2]
    sub.disconnect()
    pub = peers.paho(version=4)
    for qos in (1, 2, 1, 2):
        pub.publish(f"{uid}/q", f"offline-{qos}".encode(), qos)
    pub.publish(f"{uid}/q", b"offline-0", 0)
    back = peers.paho(version=4, client_id=sid, clean=False, connect=False)
    ack_ = back.connect()
    assert ack_.session_present, "CONNACK session present must be 1 for a resumed session"
    got = back.expect(4)
    # Order is only guaranteed per topic and QoS (3.1.1 4.6).
    assert [m.payload for m in got if m.qos == 1] == [b"offline-1", b"offline-1"], got
    assert [m.payload for m in got if m.qos == 2] == [b"offline-2", b"offline-2"], got
    # QoS 0 while offline MAY be queued or dropped (the Paho suite allows both).
    back.barrier(via=pub)
    extra = back.pending()
    assert [m.payload for m in extra] in ([], [b"offline-0"]), extra


def test_05_v311_clean_session_discards_state(peers: Peers, uid):
    sid = f"{uid}p"
    first = peers.paho(version=4, client_id=sid, clean=False)
    first.subscribe(f"{uid}/q", 1)
    first.disconnect()
    clean = peers.paho(version=4, client_id=sid, clean=True, connect=False)
    assert clean.connect().session_present is False
    clean.disconnect()
    # The clean session also deleted the stored one: no subscription remains.
    again = peers.paho(version=4, client_id=sid, clean=False, connect=False)
    assert again.connect().session_present is False
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/q", b"x", 1)
    again.barrier(via=pub)
    again.assert_nothing("(subscription survived a clean session)")


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_05_v5_session_expiry_keeps_session_and_queue(peers: Peers, uid, transport):
    sid = f"{uid}p"
    props = {"SessionExpiryInterval": 300}
    sub = peers.paho(version=5, client_id=sid, transport=transport, properties=props)
    sub.subscribe(f"{uid}/q", 1)
    sub.disconnect()
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/q", b"while away", 1, properties={"UserProperty": [("k", "v")]})
    back = peers.paho(
        version=5, client_id=sid, transport=transport, clean=False, properties=props, connect=False
    )
    assert back.connect().session_present
    m = back.expect_one()
    assert (m.payload, m.props.get("UserProperty")) == (b"while away", [("k", "v")])


def test_05_v5_session_expiry_zero_ends_session_at_disconnect(peers: Peers, uid):
    sid = f"{uid}p"
    sub = peers.paho(version=5, client_id=sid)
    sub.subscribe(f"{uid}/q", 1)
    sub.disconnect()
    back = peers.paho(version=5, client_id=sid, clean=False, connect=False)
    assert back.connect().session_present is False


def test_05_v5_session_expires_after_interval(peers: Peers, uid):
    sid = f"{uid}p"
    sub = peers.paho(version=5, client_id=sid, properties={"SessionExpiryInterval": 1})
    sub.subscribe(f"{uid}/q", 1)
    sub.disconnect()
    # The feature under test is wall time: let the 1 s expiry pass.
    time.sleep(2.2)
    back = peers.paho(version=5, client_id=sid, clean=False, connect=False)
    assert back.connect().session_present is False, "session outlived its expiry interval"


def test_05_v5_disconnect_can_change_session_expiry(peers: Peers, uid):
    sid = f"{uid}p"
    sub = peers.paho(version=5, client_id=sid, properties={"SessionExpiryInterval": 60})
    sub.subscribe(f"{uid}/q", 1)
    sub.disconnect(properties={"SessionExpiryInterval": 0})
    back = peers.paho(version=5, client_id=sid, clean=False, connect=False)
    assert back.connect().session_present is False, "DISCONNECT set expiry 0: session must end"


def test_05_v5_clean_start_discards_session(peers: Peers, uid):
    sid = f"{uid}p"
    props = {"SessionExpiryInterval": 60}
    sub = peers.paho(version=5, client_id=sid, properties=props)
    sub.subscribe(f"{uid}/q", 1)
    sub.disconnect()
    fresh = peers.paho(version=5, client_id=sid, clean=True, properties=props, connect=False)
    assert fresh.connect().session_present is False
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/q", b"x", 1)
    fresh.barrier(via=pub)
    fresh.assert_nothing("(clean start kept the old subscription)")


def test_05_takeover_with_persistent_session_keeps_subscriptions(peers: Peers, uid):
    sid = f"{uid}p"
    props = {"SessionExpiryInterval": 60}
    first = peers.paho(version=5, client_id=sid, properties=props)
    first.subscribe(f"{uid}/q", 1)
    second = peers.paho(version=5, client_id=sid, clean=False, properties=props, connect=False)
    assert second.connect().session_present
    first.wait_disconnected()
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/q", b"to the new connection", 1)
    assert second.expect_one().payload == b"to the new connection"
    first.assert_nothing()


def test_05_v311_unacked_qos1_redelivered_with_dup_same_id(peers: Peers, uid, broker):
    sid = f"{uid}s"
    c = RawClient.to(broker)
    c.connect(sid, clean=False)
    c.subscribe(1, [(f"{uid}/q", 1)])
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/q", b"ack me", 1)
    first = c.expect(PUBLISH)
    c.close()  # no PUBACK
    again = RawClient.to(broker)
    ack_ = again.connect(sid, clean=False)
    assert ack_.fields["session_present"]
    re = again.expect(PUBLISH)
    # [MQTT-4.4.0-1]: re-sent with the original packet id, DUP set.
    assert re.fields["pid"] == first.fields["pid"], (first, re)
    assert re.fields["dup"] is True, f"redelivery without DUP: {re!r}"
    assert re.raw[0] == 0x3A and re.raw[1:] == first.raw[1:], (first, re)
    again.send(ack(4, re.fields["pid"]))
    again.ping()  # and nothing else is pending


def test_05_v311_qos2_pubrel_resent_not_publish(peers: Peers, uid, broker):
    sid = f"{uid}s"
    c = RawClient.to(broker)
    c.connect(sid, clean=False)
    c.subscribe(1, [(f"{uid}/q", 2)])
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/q", b"exactly once", 2)
    p = c.expect(PUBLISH)
    pid = p.fields["pid"]
    c.send(ack(PUBREC, pid))
    c.expect(PUBREL)
    c.close()  # no PUBCOMP
    again = RawClient.to(broker)
    again.connect(sid, clean=False)
    # The message was received (PUBREC): only the PUBREL may be re-sent.
    again.expect_bytes(bytes([0x62, 0x02, pid >> 8, pid & 0xFF]))
    again.send(ack(PUBCOMP, pid))
    again.ping()  # no second copy of the PUBLISH


def test_05_v311_publisher_qos2_completes_after_reconnect(peers: Peers, uid, broker):
    sub = peers.paho(version=4)
    sub.subscribe(f"{uid}/q", 2)
    sid = f"{uid}p"
    c = RawClient.to(broker)
    c.connect(sid, clean=False)
    c.send(publish(f"{uid}/q", b"once", qos=2, pid=42))
    c.expect_bytes(b"\x50\x02\x00\x2a")
    c.close()  # before PUBREL
    again = RawClient.to(broker)
    assert again.connect(sid, clean=False).fields["session_present"]
    again.send(ack(PUBREL, 42))
    again.expect_bytes(b"\x70\x02\x00\x2a")
    assert sub.expect_one().payload == b"once"
    sub.barrier()
    sub.assert_nothing("(QoS 2 message delivered more than once)")


def test_05_v5_redelivery_after_reconnect_paho_suite_style(peers: Peers, uid, broker):
    sid = f"{uid}s"
    c = RawClient.to(broker, version=5)
    c.connect(sid, properties={"SessionExpiryInterval": 99999})
    c.subscribe(1, [(f"{uid}/q/#", 2)])
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/q/a", b"one", 1)
    pub.publish(f"{uid}/q/b", b"two", 2)
    got = [c.expect(PUBLISH), c.expect(PUBLISH)]
    c.close()
    again = RawClient.to(broker, version=5)
    again.connect(sid, clean=False, properties={"SessionExpiryInterval": 99999})
    re = [again.expect(PUBLISH), again.expect(PUBLISH)]
    assert [p.fields["payload"] for p in re] == [b"one", b"two"]
    assert all(p.fields["dup"] for p in re), re
    assert [p.fields["pid"] for p in re] == [p.fields["pid"] for p in got]


def test_05_offline_queue_limit(make_broker, uid):
    b = make_broker("[mqtt]\nmax_queued_messages = 5\n")
    peers = Peers(b, uid)
    try:
        sid = f"{uid}p"
        sub = peers.paho(version=4, client_id=sid, clean=False)
        sub.subscribe(f"{uid}/q", 1)
        sub.disconnect()
        pub = peers.paho(version=4)
        for i in range(12):
            pub.publish(f"{uid}/q", str(i).encode(), 1)
        back = peers.paho(version=4, client_id=sid, clean=False)
        back.barrier(via=pub)
        got = [int(m.payload) for m in back.pending()]
        assert len(got) == 5, f"max_queued_messages = 5, got {len(got)} queued: {got}"
        assert got == sorted(got), f"queued messages out of order: {got}"
    finally:
        peers.close_all()


def test_05_aiomqtt_persistent_session(broker, uid):
    async def scenario() -> list[bytes]:
        sid = f"{uid}a"
        async with aiomqtt.Client(
            broker.host, broker.mqtt_port, identifier=sid, clean_session=False
        ) as c:
            await c.subscribe(f"{uid}/q", qos=1)
        async with aiomqtt.Client(broker.host, broker.mqtt_port, identifier=f"{uid}b") as p:
            for i in range(3):
                await p.publish(f"{uid}/q", f"m{i}".encode(), qos=1)
        got = []
        async with aiomqtt.Client(
            broker.host, broker.mqtt_port, identifier=sid, clean_session=False
        ) as c:
            async with asyncio.timeout(5):
                async for message in c.messages:
                    got.append(bytes(message.payload))
                    if len(got) == 3:
                        return got
        return got

    assert asyncio.run(scenario()) == [b"m0", b"m1", b"m2"]


def test_05_mqttjs_v5_persistent_session_over_ws(peers: Peers, uid):
    sid = f"{uid}j"
    opts = {"properties": {"sessionExpiryInterval": 120}}
    js = peers.js(version=5, transport="ws", client_id=sid, options=opts)
    js.subscribe(f"{uid}/q", 2)
    js.disconnect()
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/q", b"queued for js", 2)
    back = peers.js(
        version=5, transport="ws", client_id=sid, clean=False, options=opts, connect=False
    )
    ev = back.connect()
    assert ev["sessionPresent"] is True
    m = back.expect_one()
    assert (m.payload, m.qos) == (b"queued for js", 2)
