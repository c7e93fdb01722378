"""10 - ACL profiles: refused SUBSCRIBE / PUBLISH codes, users, rule order, file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_peers import Peers
from mqtt_wire import PUBACK, PUBREC, RawClient, publish

INLINE_RULES = """
[vpn.default]
acl_default = "allow"
acl_file = "{acl_file}"

[[vpn.default.acl]]
action = "deny"
operation = "subscribe"
topic = "secret/#"
user = "*"

[[vpn.default.acl]]
action = "deny"
operation = "publish"
topic = "readonly/#"
user = "*"

[[vpn.default.acl]]
action = "allow"
operation = "publish"
topic = "owned/alice/#"
user = "alice"

[[vpn.default.acl]]
action = "deny"
operation = "publish"
topic = "owned/#"
user = "*"

[[vpn.default.acl]]
action = "deny"
operation = "all"
topic = "members/#"
user = "$anonymous"

[[vpn.default.acl]]
action = "allow"
operation = "subscribe"
topic = "order/first"
user = "*"
"""

FILE_RULES = """
[[acl]]
action = "deny"
operation = "subscribe"
topic = "order/#"
user = "*"

[[acl]]
action = "deny"
operation = "subscribe"
topic = "fromfile/#"
user = "*"
"""


@pytest.fixture(scope="module")
def acl_broker(broker_launcher, tmp_path_factory) -> Iterator[object]:  # type: ignore[no-untyped-def]
    acl_file = Path(tmp_path_factory.mktemp("acl")) / "acl.toml"
    acl_file.write_text(FILE_RULES)
    b = broker_launcher.start(INLINE_RULES.format(acl_file=acl_file))
    yield b
    broker_launcher.stop(b)


@pytest.fixture
def acl_peers(acl_broker, uid) -> Iterator[Peers]:  # type: ignore[no-untyped-def]
    p = Peers(acl_broker, uid)
    yield p
    p.close_all()


def test_10_v311_refused_subscribe_suback_0x80(acl_broker, uid):
    c = RawClient.to(acl_broker)
    c.connect(f"{uid}s")
    c.send(
        b"\x82"
        + bytes([2 + 2 + len(f"secret/{uid}") + 1])
        + b"\x00\x05"
        + len(f"secret/{uid}").to_bytes(2, "big")
        + f"secret/{uid}".encode()
        + b"\x01"
    )
    c.expect_bytes(b"\x90\x03\x00\x05\x80")


def test_10_v5_refused_subscribe_suback_0x87(acl_broker, uid):
    c = RawClient.to(acl_broker, version=5)
    c.connect(f"{uid}s")
    codes = c.subscribe(5, [(f"secret/{uid}", 1)])
    assert codes == [0x87], f"expected 0x87 Not authorized, got {[hex(x) for x in codes]}"


@pytest.mark.parametrize("version", [4, 5])
def test_10_mixed_subscribe_per_filter_codes(acl_peers: Peers, uid, version):
    s = acl_peers.paho(version=version)
    codes = s.subscribe([f"open/{uid}", f"secret/{uid}", f"fromfile/{uid}"], 1)
    refused = 0x87 if version == 5 else 0x80
    assert codes == [1, refused, refused], [hex(c) for c in codes]


def test_10_narrower_filter_inside_denied_one_refused(acl_peers: Peers, uid):
    s = acl_peers.paho(version=5)
    assert s.subscribe(f"secret/{uid}/+", 1) == [0x87]
    assert s.subscribe("secret/#", 1) == [0x87]


def test_10_refused_subscription_receives_nothing(acl_peers: Peers, uid):
    s = acl_peers.paho(version=5)
    s.subscribe(f"secret/{uid}", 1)
    pub = acl_peers.paho(version=5)
    pub.publish(f"secret/{uid}", b"hidden", 1)
    s.barrier(via=pub)
    s.assert_nothing("(message delivered on a refused subscription)")


def test_10_v5_refused_publish_puback_0x87_and_not_delivered(acl_peers: Peers, uid, acl_broker):
    watcher = acl_peers.paho(version=5)
    watcher.subscribe(f"readonly/{uid}", 1)
    c = RawClient.to(acl_broker, version=5)
    c.connect(f"{uid}p")
    c.send(publish(f"readonly/{uid}", b"no", qos=1, pid=3, version=5))
    pkt = c.expect(PUBACK)
    assert (pkt.fields["pid"], pkt.fields["code"]) == (3, 0x87), pkt
    c.send(publish(f"readonly/{uid}", b"no", qos=2, pid=4, version=5))
    pkt = c.expect(PUBREC)
    assert (pkt.fields["pid"], pkt.fields["code"]) == (4, 0x87), pkt
    c.send(publish(f"readonly/{uid}", b"no", qos=0, version=5))
    c.ping()  # QoS 0 refused silently; the connection stays
    pub = acl_peers.paho(version=5)
    pub.publish(f"open/{uid}", b"barrier", 1)
    watcher.barrier(via=pub)
    watcher.assert_nothing("(refused PUBLISH was delivered)")


def test_10_v311_refused_publish_plain_puback_and_not_delivered(acl_peers: Peers, uid, acl_broker):
    watcher = acl_peers.paho(version=4)
    watcher.subscribe(f"readonly/{uid}", 1)
    c = RawClient.to(acl_broker)
    c.connect(f"{uid}p")
    c.send(publish(f"readonly/{uid}", b"no", qos=1, pid=3))
    c.expect_bytes(b"\x40\x02\x00\x03")  # 3.1.1 has no refusal code: plain PUBACK
    c.send(publish(f"readonly/{uid}", b"no", qos=2, pid=4))
    c.expect_bytes(b"\x50\x02\x00\x04")
    c.send(b"\x62\x02\x00\x04")
    c.expect_bytes(b"\x70\x02\x00\x04")
    watcher.barrier()
    watcher.assert_nothing("(refused PUBLISH was delivered)")


def test_10_paho_v5_sees_publish_refusal(acl_peers: Peers, uid):
    p = acl_peers.paho(version=5)
    assert p.publish(f"readonly/{uid}", b"x", 1) == 0x87
    assert p.publish(f"open/{uid}", b"x", 1) in (0x00, 0x10)


def test_10_user_specific_allow_before_general_deny(acl_peers: Peers, uid):
    watcher = acl_peers.paho(version=5)
    watcher.subscribe("owned/#", 1)
    alice = acl_peers.paho(version=5, username="alice", password="pw")
    bob = acl_peers.paho(version=5, username="bob", password="pw")
    assert alice.publish(f"owned/alice/{uid}", b"mine", 1) in (0x00, 0x10)
    assert bob.publish(f"owned/alice/{uid}", b"not mine", 1) == 0x87
    assert alice.publish(f"owned/bob/{uid}", b"not mine", 1) == 0x87
    assert watcher.expect_one().payload == b"mine"
    watcher.barrier(via=alice)
    watcher.barrier(via=bob)
    watcher.assert_nothing()


def test_10_anonymous_rule(acl_peers: Peers, uid):
    anon = acl_peers.paho(version=5)
    named = acl_peers.paho(version=5, username="carol", password="x")
    assert anon.subscribe(f"members/{uid}", 1) == [0x87]
    assert anon.publish(f"members/{uid}", b"x", 1) == 0x87
    assert named.subscribe(f"members/{uid}", 1) == [1]
    assert named.publish(f"members/{uid}", b"x", 1) in (0x00, 0x10)
    assert named.expect_one().payload == b"x"


def test_10_inline_rules_before_file_rules_first_match_wins(acl_peers: Peers):
    s = acl_peers.paho(version=5)
    # inline "allow subscribe order/first" is checked before the file's "deny order/#"
    assert s.subscribe("order/first", 1) == [1]
    assert s.subscribe("order/second", 1) == [0x87]


def test_10_wildcard_subscription_does_not_leak_denied_topics(acl_peers: Peers, uid):
    # A client refused "secret/#" must not read it through a broader filter:
    # either the broad SUBSCRIBE is refused or secret messages are not delivered
    # through it (mosquitto checks read access per delivered message).
    s = acl_peers.paho(version=5)
    codes = s.subscribe(f"+/{uid}", 1)
    pub = acl_peers.paho(version=5)
    pub.publish(f"secret/{uid}", b"hidden", 1)
    pub.publish(f"open/{uid}", b"visible", 1)
    s.barrier(via=pub)
    got = [m.payload for m in s.pending()]
    assert b"hidden" not in got, f"'secret/#' denied, yet read through '+/{uid}' ({codes}): {got}"


def test_10_acl_default_deny(make_broker, uid):
    b = make_broker("""
[vpn.default]
acl_default = "deny"

[[vpn.default.acl]]
action = "allow"
operation = "all"
topic = "public/#"
user = "*"
""")
    peers = Peers(b, uid)
    try:
        c = peers.paho(version=5)
        assert c.subscribe(f"public/{uid}", 1) == [1]
        assert c.subscribe(f"private/{uid}", 1) == [0x87]
        assert c.publish(f"private/{uid}", b"x", 1) == 0x87
        assert c.publish(f"public/{uid}", b"y", 1) in (0x00, 0x10)
        assert c.expect_one().payload == b"y"
        v4 = peers.paho(version=4)
        assert v4.subscribe(f"private/{uid}", 1) == [0x80]
    finally:
        peers.close_all()
