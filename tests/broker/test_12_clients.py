"""12 - Every real client to every other: paho (3.1.1/5, TCP/WS), aiomqtt,
MQTT.js (4/5, TCP/WS), mosquitto_pub/mosquitto_sub (3.1.1/5)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import aiomqtt
import pytest
from mqtt_peers import Inbox, Msg, Peers, mosq_pub

PAYLOAD = bytes([0, 1, 2, 0xFE, 0xFF]) + "ünïcødé ✓".encode() + b"\r\n\t end"


class AioSub(Inbox):
    """aiomqtt subscriber in its own event loop thread."""

    def __init__(self, broker, client_id: str, topic: str, version) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.client_id = client_id
        self.name = f"aiomqtt:{client_id}"
        self._ready = threading.Event()
        self._error: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._main(broker, topic, version),),
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(5):
            raise AssertionError(f"{self.name}: not subscribed: {self._error}")
        if self._error:
            raise self._error[0]

    async def _main(self, broker, topic, version) -> None:  # type: ignore[no-untyped-def]
        self._stop = asyncio.Event()
        try:
            async with aiomqtt.Client(
                broker.host, broker.mqtt_port, identifier=self.client_id, protocol=version
            ) as c:
                await c.subscribe(topic, qos=2)
                self._ready.set()

                async def pump() -> None:
                    async for m in c.messages:
                        self._deliver(Msg(str(m.topic), bytes(m.payload), m.qos, m.retain))

                task = asyncio.create_task(pump())
                await self._stop.wait()
                task.cancel()
        except BaseException as exc:
            self._error.append(exc)
            self._ready.set()

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def aio_publish(broker, client_id: str, topic: str, version) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with aiomqtt.Client(
            broker.host, broker.mqtt_port, identifier=client_id, protocol=version
        ) as c:
            await c.publish(topic, PAYLOAD, qos=1)

    asyncio.run(main())


SUBSCRIBERS: dict[str, Callable[[Peers, str], Inbox]] = {
    "paho-311-tcp": lambda p, t: _sub(p.paho(version=4), t),
    "paho-5-ws": lambda p, t: _sub(p.paho(version=5, transport="ws"), t),
    "mqttjs-4-ws": lambda p, t: _sub(p.js(version=4, transport="ws"), t),
    "mqttjs-5-tcp": lambda p, t: _sub(p.js(version=5, transport="tcp"), t),
    "mosquitto_sub-5": lambda p, t: p.mosq_sub([t], version=5),
    "mosquitto_sub-311": lambda p, t: p.mosq_sub([t], version=4),
    "aiomqtt-5": lambda p, t: _track(
        p, AioSub(p.broker, p.next_id(), t, aiomqtt.ProtocolVersion.V5)
    ),
}


def _sub(peer, topic: str):  # type: ignore[no-untyped-def]
    peer.subscribe(topic, 2)
    return peer


def _track(peers: Peers, inbox: Inbox) -> Inbox:
    peers._all.append(inbox)
    return inbox


PUBLISHERS: dict[str, Callable[[Peers, str], None]] = {
    "paho-311-ws": lambda p, t: p.paho(version=4, transport="ws").publish(t, PAYLOAD, 1),
    "paho-5-tcp": lambda p, t: p.paho(version=5).publish(t, PAYLOAD, 1),
    "mqttjs-4-tcp": lambda p, t: p.js(version=4).publish(t, PAYLOAD, 1),
    "mqttjs-5-ws": lambda p, t: p.js(version=5, transport="ws").publish(t, PAYLOAD, 1),
    "mosquitto_pub-5": lambda p, t: mosq_pub(p.broker, t, PAYLOAD, version=5),
    "mosquitto_pub-311": lambda p, t: mosq_pub(p.broker, t, PAYLOAD, version=4),
    "aiomqtt-311": lambda p, t: aio_publish(p.broker, p.next_id(), t, aiomqtt.ProtocolVersion.V311),
}


@pytest.mark.parametrize("publisher", list(PUBLISHERS))
def test_12_publisher_reaches_every_client(peers: Peers, uid, publisher):
    topic = f"{uid}/matrix"
    subs = {name: make(peers, topic) for name, make in SUBSCRIBERS.items()}
    PUBLISHERS[publisher](peers, topic)
    failures = []
    for name, sub in subs.items():
        try:
            m = sub.expect_one()
            if (m.topic, m.payload, m.qos) != (topic, PAYLOAD, 1):
                failures.append(f"{name}: got {m}")
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, f"{publisher} -> " + "\n".join(failures)
