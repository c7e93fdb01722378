"""06 - Shared subscriptions `$share/group/filter`."""

from __future__ import annotations

import pytest
from mqtt_peers import Peers
from mqtt_wire import DISCONNECT, SUBACK, RawClient, sub_options, subscribe


def test_06_round_robin_each_message_once(peers: Peers, uid):
    a = peers.paho(version=5)
    b = peers.paho(version=5)
    for s in (a, b):
        assert s.subscribe(f"$share/g/{uid}/t/+", 1) == [1]
    pub = peers.paho(version=5)
    for i in range(10):
        pub.publish(f"{uid}/t/x", str(i).encode(), 1)
    a.barrier(via=pub)
    b.barrier(via=pub)
    got_a = [int(m.payload) for m in a.pending()]
    got_b = [int(m.payload) for m in b.pending()]
    assert sorted(got_a + got_b) == list(range(10)), f"a={got_a} b={got_b}: each exactly once"
    assert len(got_a) == len(got_b) == 5, f"round robin over two members: a={got_a} b={got_b}"


def test_06_groups_are_independent_and_plain_subscribers_get_all(peers: Peers, uid):
    g1 = [peers.paho(version=5) for _ in range(2)]
    g2 = peers.paho(version=5)
    plain = peers.paho(version=5)
    for s in g1:
        s.subscribe(f"$share/one/{uid}/t", 1)
    g2.subscribe(f"$share/two/{uid}/t", 1)
    plain.subscribe(f"{uid}/t", 1)
    pub = peers.paho(version=5)
    for i in range(6):
        pub.publish(f"{uid}/t", str(i).encode(), 1)
    for s in [*g1, g2, plain]:
        s.barrier(via=pub)
    assert sorted(int(m.payload) for s in g1 for m in s.pending()) == list(range(6))
    assert [int(m.payload) for m in g2.pending()] == list(range(6))
    assert [int(m.payload) for m in plain.pending()] == list(range(6))


def test_06_same_session_shared_and_plain_get_two_copies(peers: Peers, uid):
    # A shared and a non-shared subscription of one session are different
    # subscriptions: the message goes to both (MQTT 5 4.8.2).
    s = peers.paho(version=5)
    s.subscribe(f"$share/g/{uid}/t", 1)
    s.subscribe(f"{uid}/t", 1)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/t", b"x", 1)
    assert len(s.expect(2)) == 2


def test_06_member_leaving_the_group(peers: Peers, uid):
    a = peers.paho(version=5)
    b = peers.paho(version=5)
    for s in (a, b):
        s.subscribe(f"$share/g/{uid}/t", 1)
    b.unsubscribe(f"$share/g/{uid}/t")
    pub = peers.paho(version=5)
    for i in range(4):
        pub.publish(f"{uid}/t", str(i).encode(), 1)
    assert [int(m.payload) for m in a.expect(4)] == [0, 1, 2, 3]
    b.barrier(via=pub)
    b.assert_nothing("(unsubscribed member of a share group)")


def test_06_disconnected_member_does_not_swallow_messages(peers: Peers, uid):
    a = peers.paho(version=5)
    b = peers.paho(version=5)
    for s in (a, b):
        s.subscribe(f"$share/g/{uid}/t", 1)
    b.disconnect()  # session expiry 0: its subscription is gone
    pub = peers.paho(version=5)
    for i in range(4):
        pub.publish(f"{uid}/t", str(i).encode(), 1)
    assert [int(m.payload) for m in a.expect(4)] == [0, 1, 2, 3]


def test_06_shared_qos_is_min(peers: Peers, uid):
    a = peers.paho(version=5)
    a.subscribe(f"$share/g/{uid}/t", 1)
    pub = peers.paho(version=5)
    pub.publish(f"{uid}/t", b"x", 2)
    assert a.expect_one().qos == 1


def test_06_mixed_clients_and_transports_share(peers: Peers, uid):
    js = peers.js(version=5, transport="ws")
    js.subscribe(f"$share/g/{uid}/t", 1)
    paho = peers.paho(version=5, transport="tcp")
    paho.subscribe(f"$share/g/{uid}/t", 1)
    pub = peers.paho(version=4)
    for i in range(8):
        pub.publish(f"{uid}/t", str(i).encode(), 1)
    js.barrier(via=pub)
    paho.barrier(via=pub)
    got_js = [int(m.payload) for m in js.pending()]
    got_paho = [int(m.payload) for m in paho.pending()]
    assert sorted(got_js + got_paho) == list(range(8)), (got_js, got_paho)
    assert got_js and got_paho, f"one member got everything: js={got_js} paho={got_paho}"


def test_06_no_local_on_shared_subscription_is_protocol_error(broker, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}n")
    c.send(subscribe(1, [(f"$share/g/{uid}/t", sub_options(1, no_local=True))], version=5))
    # [MQTT-3.8.3-4]: It is a Protocol Error to set No Local on a shared subscription.
    c.expect_disconnect_and_close({0x82})


@pytest.mark.parametrize("bad", ["$share/g", "$share/g+x/t", "$share//t", "$share/g#/t"])
def test_06_invalid_share_names_refused(broker, uid, bad):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}n")
    c.send(subscribe(1, [(bad, 1)], version=5))
    pkt = c.recv(what="SUBACK or DISCONNECT")
    # 4.8.2: a share name is non-empty, without wildcards, and followed by "/"
    # and a filter. Refused in the SUBACK (>= 0x80), or the connection is closed
    # as malformed / protocol error.
    if pkt.type == SUBACK:
        assert pkt.fields["codes"][0] >= 0x80, f"{bad!r} accepted: {pkt!r}"
        c.ping()
    else:
        assert pkt.type == DISCONNECT and pkt.fields["code"] in (0x81, 0x82, 0x8F), pkt
        c.expect_closed()
