"""Native persistent publish waits for the store: the ACK of a message that landed
in a durable queue goes out only after its commit, answers keep PUBLISH order, and
a refused write is NACKed (SERVER_BUSY), never ACKed. Messages nothing keeps are
answered at once, without a store round trip.

In-process and deterministic: NativeConnection on a recording transport, a store
whose commits the test releases by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.store.gated import GatedStore

from warren.adapters.native import NativeConnection, NativeSettings
from warren.codecs.native import (
    Ack,
    Bind,
    Connect,
    Connected,
    ErrorCode,
    Event,
    Message,
    Nack,
    Publish,
    Result,
    Role,
)
from warren.codecs.native import NativeConnection as Codec
from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn
from warren.store import StorageError
from warren.store.journal import Journal
from warren.store.records import Enqueue


class Transport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    def __init__(self, vpn: Vpn, name: str) -> None:
        self.codec = Codec(Role.CLIENT)
        self.transport = Transport()
        self.conn = NativeConnection({"default": vpn}, "default", NativeSettings())
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.send(Connect(client_name=name, capabilities=("guaranteed",)))

    def send(self, event: Event) -> None:
        self.conn.data_received(self.codec.send(event))

    def received(self) -> list[Event]:
        data = bytes(self.transport.data)
        self.transport.data.clear()
        return list(self.codec.receive(data))


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)  # yield to the loop (flushes, completions), no waiting


async def setup() -> tuple[GatedStore, Client]:
    vpn = Vpn("default", BrokerStats())
    store = GatedStore()
    vpn.attach_journal(Journal(store, asyncio.get_running_loop()))
    sub = Client(vpn, "sub")
    sub.send(Bind(1, 1, "kept", durable=True, create=True, topics=("t/>",)))
    pub = Client(vpn, "pub")
    await turns()
    store.release()
    await turns()
    assert [type(e) for e in sub.received()] == [Connected, Result]
    assert [type(e) for e in pub.received()] == [Connected]
    store.submitted.clear()
    return store, pub


def test_ack_waits_for_the_commit_and_keeps_publish_order() -> None:
    async def scenario() -> None:
        store, pub = await setup()
        pub.send(Publish((Message("t/a", b"1"),), first_id=1))
        pub.send(Publish((Message("other", b"2"),), first_id=2))  # nothing keeps it
        await turns()
        assert pub.received() == []  # nothing acknowledged before the commit ...
        assert [type(m) for m in store.submitted] == [Enqueue]
        store.release()
        await turns()
        # ... then both, in PUBLISH order.
        assert pub.received() == [Ack(((1, 1),)), Ack(((2, 2),))]

    asyncio.run(scenario())


def test_a_batch_is_acked_after_its_commit() -> None:
    async def scenario() -> None:
        store, pub = await setup()
        pub.send(Publish((Message("t/a", b"1"), Message("other", b"2"),
                          Message("t/b", b"3")), first_id=10))
        await turns()
        assert pub.received() == []
        store.release()
        await turns()
        assert pub.received() == [Ack(((10, 12),))]

    asyncio.run(scenario())


def test_nothing_to_keep_is_acked_without_the_store() -> None:
    async def scenario() -> None:
        store, pub = await setup()
        pub.send(Publish((Message("other", b"1"),), first_id=3))
        await turns()
        assert store.submitted == [] and store.held == []
        assert pub.received() == [Ack(((3, 3),))]

    asyncio.run(scenario())


def test_refused_write_is_nacked_never_acked() -> None:
    async def scenario() -> None:
        store, pub = await setup()
        pub.send(Publish((Message("t/a", b"1"), Message("other", b"2")), first_id=1))
        await turns()
        assert pub.received() == []
        store.release(StorageError("disk full"))
        await turns()
        [nack, ack] = pub.received()
        assert isinstance(nack, Nack) and nack.ranges == ((1, 1),)
        assert nack.code == ErrorCode.SERVER_BUSY
        assert "could not store" in nack.text and "disk full" in nack.text
        assert ack == Ack(((2, 2),))  # it needed no storage
        assert not pub.transport.closed

    asyncio.run(scenario())
