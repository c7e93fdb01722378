"""Reply inboxes: delivered with subscription id 0, closed to everyone else's
subscriptions, whatever the protocol."""

from __future__ import annotations

import pytest

from warren.codecs.native import ErrorCode, Message


def test_inbox_messages_arrive_without_subscribe(wire) -> None:  # type: ignore[no-untyped-def]
    requester = wire()
    prefix = requester.connected.inbox_prefix
    wire().publish(Message(prefix + "7", b"reply", correlation_data=b"c"))
    [(ids, m)] = requester.messages(1)
    assert ids == (0,) and m.topic == prefix + "7" and m.correlation_data == b"c"


@pytest.mark.parametrize("pattern", ["$inbox/{name}/>", "$inbox/>", "$inbox/*/1", "$in*/>",
                                     "#share/g/$inbox/>"])
def test_native_clients_cannot_subscribe_into_inboxes(wire, pattern: str) -> None:  # type: ignore[no-untyped-def]
    victim = wire()
    spy = wire()
    result = spy.subscribe(1, pattern.format(name=victim.connected.client_name))
    assert result.code == ErrorCode.NOT_AUTHORIZED


def test_leading_wildcards_do_not_reach_inboxes(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    victim = wire()
    spy = wire()
    assert spy.subscribe(1, ">").code == 0
    assert spy.subscribe(2, "*/>").code == 0
    pub = wire()
    pub.publish(Message(victim.connected.inbox_prefix + "1", b"secret"))
    pub.publish(Message(f"{uid}/visible", b"ok"))
    [(_, m)] = victim.messages(1)
    assert m.payload == b"secret"
    frames = spy.barrier()
    topics = [m.topic for f in frames for m in getattr(f, "messages", ())]
    assert f"{uid}/visible" in topics and not any(t.startswith("$inbox") for t in topics)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("pattern", ["$inbox/#", "$inbox/{name}/+", "$share/g/$inbox/#"])
def test_mqtt_clients_cannot_subscribe_into_inboxes(  # type: ignore[no-untyped-def]
    wire, peers, version: int, pattern: str
) -> None:
    victim = wire()
    mqtt = peers.paho(version=version)
    codes = mqtt.subscribe(pattern.format(name=victim.connected.client_name))
    assert codes == [0x87 if version == 5 else 0x80]


def test_mqtt_wildcards_do_not_reach_inboxes(wire, peers) -> None:  # type: ignore[no-untyped-def]
    victim = wire()
    mqtt = peers.paho()
    mqtt.subscribe("#")
    mqtt.publish(victim.connected.inbox_prefix + "1", b"to the inbox")  # allowed: a reply
    [(ids, m)] = victim.messages(1)
    assert ids == (0,) and m.payload == b"to the inbox"
    mqtt.barrier()
    assert not [m for m in mqtt.pending() if m.topic.startswith("$inbox")]
