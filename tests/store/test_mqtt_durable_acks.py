"""MQTT acknowledgements wait for the store: PUBACK/PUBREC of a message owed to a
persistent session (or retained) only after its commit; a refusal is never
acknowledged as success. QoS 0 and non-persistent traffic never reach the store.

In-process and deterministic: MQTTConnection on a recording transport, a store
whose commits the test releases by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.store.gated import GatedStore

from warren.adapters.mqtt import MQTTConnection, MqttSettings
from warren.codecs.mqtt import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    PubAck,
    Publish,
    PubRec,
    Role,
    SubAck,
    Subscribe,
    SubscriptionRequest,
)
from warren.codecs.mqtt import MQTTConnection as Codec
from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn
from warren.store import PutSessionDelivery, SetRetained, StorageError
from warren.store.journal import Journal


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    def __init__(self, vpn: Vpn, version: int) -> None:
        self.codec = Codec(Role.CLIENT)
        self.transport = Transport()
        self.conn = MQTTConnection(vpn, MqttSettings())
        self.conn.connection_made(self.transport)
        self.version = version

    def send(self, packet: Any) -> None:
        self.conn.data_received(self.codec.send(packet))

    def received(self) -> list[Any]:
        data = bytes(self.transport.data)
        self.transport.data.clear()
        return list(self.codec.receive(data))


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)  # yield to the loop (flushes, completions), no waiting


async def setup(version: int) -> tuple[GatedStore, Client]:
    vpn = Vpn("default", BrokerStats())
    store = GatedStore()
    vpn.attach_journal(Journal(store, asyncio.get_running_loop()))
    sub = Client(vpn, 4)
    sub.send(Connect("sub", 4, clean_start=False))
    sub.send(Subscribe(1, (SubscriptionRequest("t/#", 1),)))
    sub.send(Disconnect())
    pub = Client(vpn, version)
    props = Properties(session_expiry_interval=0) if version == 5 else Properties()
    pub.send(Connect("pub", version, clean_start=True, properties=props))
    await turns()
    store.release()
    await turns()
    pub.received()
    store.submitted.clear()
    return store, pub


def test_puback_waits_for_the_commit_and_keeps_publish_order() -> None:
    async def scenario() -> None:
        store, pub = await setup(5)
        pub.send(Publish("t/a", b"1", 1, packet_id=1))
        pub.send(Publish("other", b"2", 1, packet_id=2))  # no persistent subscriber
        await turns()
        assert pub.received() == []  # nothing acknowledged before the commit ...
        assert [type(m) for m in store.submitted] == [PutSessionDelivery]
        store.release()
        await turns()
        # ... then both, in PUBLISH order [MQTT-4.6.0-2].
        assert [(type(p), p.packet_id, p.reason_code) for p in pub.received()] == [
            (PubAck, 1, 0), (PubAck, 2, 0)
        ]

    asyncio.run(scenario())


def test_pubrec_and_retained_wait_for_the_commit() -> None:
    async def scenario() -> None:
        store, pub = await setup(5)
        pub.send(Publish("t/b", b"q2", 2, packet_id=7))
        pub.send(Publish("r", b"kept", 1, retain=True, packet_id=8))
        await turns()
        assert pub.received() == []
        assert SetRetained in {type(m) for m in store.submitted}
        store.release()
        await turns()
        assert [(type(p), p.packet_id) for p in pub.received()] == [(PubRec, 7), (PubAck, 8)]

    asyncio.run(scenario())


def test_qos0_and_non_persistent_traffic_never_reach_the_store() -> None:
    async def scenario() -> None:
        store, pub = await setup(5)
        pub.send(Publish("t/a", b"0", 0))
        pub.send(Publish("other", b"1", 1, packet_id=3))
        await turns()
        assert store.submitted == [] and store.held == []
        assert [(type(p), p.packet_id) for p in pub.received()] == [(PubAck, 3)]

    asyncio.run(scenario())


def test_refused_write_is_puback_0x80_in_5_and_a_close_in_3_1_1() -> None:
    async def scenario(version: int) -> list[Any]:
        store, pub = await setup(version)
        pub.send(Publish("t/a", b"1", 1, packet_id=1))
        await turns()
        store.release(StorageError("disk full"))
        await turns()
        packets = pub.received()
        if version == 4:
            assert pub.transport.closed
        return packets

    v5 = asyncio.run(scenario(5))
    assert [(type(p), p.packet_id, p.reason_code) for p in v5] == [(PubAck, 1, 0x80)]
    v4 = asyncio.run(scenario(4))
    assert not any(isinstance(p, PubAck) for p in v4)


def test_connack_is_not_delayed() -> None:
    async def scenario() -> None:
        vpn = Vpn("default", BrokerStats())
        store = GatedStore()
        vpn.attach_journal(Journal(store, asyncio.get_running_loop()))
        c = Client(vpn, 4)
        c.send(Connect("x", 4, clean_start=False))
        c.send(Subscribe(1, (SubscriptionRequest("a", 1),)))
        await turns()
        # Journalled (session, subscription), answered without waiting for the commit.
        assert store.held
        assert [type(p) for p in c.received()] == [ConnAck, SubAck]

    asyncio.run(scenario())
