"""11 - $SYS topics and other '$' topics versus leading wildcards."""

from __future__ import annotations

import pytest
from mqtt_peers import Peers


@pytest.fixture
def sys_peers(make_broker, uid):  # type: ignore[no-untyped-def]
    b = make_broker("[server]\nsys_interval = 1\n")
    p = Peers(b, uid)
    yield p
    p.close_all()


def test_11_sys_topics_published(sys_peers: Peers):
    s = sys_peers.paho(version=5)
    s.subscribe("$SYS/#", 0)
    got = s.expect(3, timeout=6)
    assert all(m.topic.startswith("$SYS/broker/") for m in got), got


def test_11_sys_not_matched_by_leading_wildcards(sys_peers: Peers, uid):
    sys_sub = sys_peers.paho(version=5)
    sys_sub.subscribe("$SYS/#", 0)
    hash_sub = sys_peers.paho(version=4)
    hash_sub.subscribe(["#", "+/broker/#", "+/+/+"], 0)
    # Wait for two $SYS update rounds after the wildcard subscriptions exist.
    sys_sub.expect(1, timeout=6)
    sys_sub.expect(1, timeout=6)
    sys_sub.expect(1, timeout=6)
    pub = sys_peers.paho(version=5)
    pub.publish(f"{uid}/x", b"normal", 1)
    hash_sub.barrier(via=pub)
    leaked = [m.topic for m in hash_sub.pending() if m.topic.startswith("$")]
    assert not leaked, f"[MQTT-4.7.2-1] '#'/'+' matched $-topics: {leaked[:5]}"
    assert any(m.topic == f"{uid}/x" for m in hash_sub.pending()), "'#' missed a normal topic"


def test_11_dollar_topics_from_clients(peers: Peers, uid):
    # Clients publishing to '$' topics: a broker may refuse it (4.7.2: such topics
    # are for the server); if it accepts, '$x/+' matches and '#' / '+/x' do not.
    wild = peers.paho(version=5)
    wild.subscribe(["#", "+/x"], 1)
    exact = peers.paho(version=5)
    exact.subscribe(f"${uid}/+", 1)
    pub = peers.paho(version=5)
    code = pub.publish(f"${uid}/x", b"dollar", 1)
    assert code in (0x00, 0x10, 0x87, 0x90), f"PUBACK {code:#x}"
    if code < 0x80:
        assert exact.expect_one().topic == f"${uid}/x"
    wild.barrier(via=pub)
    leaked = [m for m in wild.pending() if m.topic == f"${uid}/x"]
    assert not leaked, f"a leading wildcard matched a '$' topic: {leaked}"
    exact.barrier(via=pub)
    exact.assert_nothing()
