"""Other real clients: pika's asyncio adapter, aio-pika, kombu (Celery's transport)."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import kombu
import pika
from amqp_support import WAIT
from pika.adapters.asyncio_connection import AsyncioConnection


def test_pika_asyncio_adapter_publish_consume_confirm(broker: Any, amqp_port: int,
                                                      uid: str) -> None:
    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[bytes]] = loop.create_future()
        received: list[bytes] = []
        confirmed: list[int] = []

        def fail(why: object) -> None:
            if not done.done():
                done.set_exception(AssertionError(f"pika asyncio: {why}"))

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            received.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(received) == 3 and not done.done():
                done.set_result(received)

        def on_declared(frame: Any, channel: Any) -> None:
            queue = frame.method.queue
            channel.basic_consume(queue, on_message)
            for i in range(3):
                channel.basic_publish("", queue, b"async %d" % i)

        def on_channel(channel: Any) -> None:
            channel.confirm_delivery(lambda frame: confirmed.append(frame.method.delivery_tag))
            channel.queue_declare(f"{uid}.async", exclusive=True,
                                  callback=lambda frame: on_declared(frame, channel))

        conn = AsyncioConnection(
            pika.ConnectionParameters(broker.host, amqp_port),
            on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
            on_open_error_callback=lambda c, e: fail(e),
            custom_ioloop=loop,
        )
        try:
            return await asyncio.wait_for(done, WAIT)
        finally:
            conn.close()

    assert asyncio.run(scenario()) == [b"async 0", b"async 1", b"async 2"]


def test_aio_pika_round_trip(broker: Any, amqp_port: int, uid: str) -> None:
    async def scenario() -> tuple[list[bytes], Any]:
        url = f"amqp://guest:guest@{broker.host}:{amqp_port}/"
        connection = await aio_pika.connect_robust(url, timeout=WAIT)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=10)
            exchange = await channel.declare_exchange(f"{uid}.events", aio_pika.ExchangeType.TOPIC,
                                                      auto_delete=True)
            queue = await channel.declare_queue(f"{uid}.aio", exclusive=True)
            await queue.bind(exchange, "user.*")
            for name in ("user.created", "user.deleted", "order.created"):
                await exchange.publish(
                    aio_pika.Message(name.encode(), headers={"kind": name},
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )
            bodies: list[bytes] = []
            last: Any = None
            async with queue.iterator(timeout=WAIT) as messages:
                async for message in messages:
                    async with message.process():
                        bodies.append(message.body)
                        last = message
                    if len(bodies) == 2:
                        break
            empty = await queue.get(fail=False, timeout=WAIT)
            assert empty is None
            return bodies, last

    bodies, last = asyncio.run(scenario())
    assert bodies == [b"user.created", b"user.deleted"]
    assert last.headers == {"kind": "user.deleted"}
    assert last.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


def test_aio_pika_to_mqtt(broker: Any, amqp_port: int, peers: Any, uid: str) -> None:
    mqtt = peers.paho()
    mqtt.subscribe(f"{uid}/aio/#", qos=1)

    async def publish() -> None:
        connection = await aio_pika.connect(f"amqp://{broker.host}:{amqp_port}/", timeout=WAIT)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange("amq.topic")
            await exchange.publish(aio_pika.Message(b"from aio-pika"), routing_key=f"{uid}.aio.x")

    asyncio.run(publish())
    assert mqtt.expect_one(topic=f"{uid}/aio/x").payload == b"from aio-pika"


def test_kombu_celery_style_producer_consumer(broker: Any, amqp_port: int, uid: str) -> None:
    """A Celery-shaped task flow: a direct exchange, a durable queue, JSON bodies, acks."""
    exchange = kombu.Exchange(f"{uid}.tasks", type="direct", durable=True)
    queue = kombu.Queue(f"{uid}.celery", exchange, routing_key="celery", durable=True)
    url = f"amqp://guest:guest@{broker.host}:{amqp_port}//"
    with kombu.Connection(url, connect_timeout=WAIT) as conn:
        with conn.Producer(serializer="json") as producer:
            for n in range(3):
                producer.publish(
                    {"task": "add", "args": [n, n]}, exchange=exchange, routing_key="celery",
                    declare=[queue], headers={"id": f"task-{n}"}, retry=False,
                )
        results: list[int] = []

        def on_task(body: dict[str, Any], message: kombu.Message) -> None:
            results.append(sum(body["args"]))
            message.ack()

        with conn.Consumer(queue, callbacks=[on_task], prefetch_count=1):
            while len(results) < 3:
                conn.drain_events(timeout=WAIT)
        assert results == [0, 2, 4]
        with conn.channel() as channel:
            name, count, _ = channel.queue_declare(queue.name, passive=True)
            assert (name, count) == (queue.name, 0)
            channel.queue_delete(queue.name)
            channel.exchange_delete(exchange.name)
