"""Example 4: order fan-out. One "order placed" event, consumed by five services
that speak different protocols:

    inventory       native, threaded API          shop/orders/placed/>
    payment         native, asyncio API           shop/orders/placed/>
    shipping        MQTT 5 over TCP (paho)        shop/orders/placed/#
    loyalty         MQTT 3.1.1 over WebSocket     shop/orders/+/+
    customer-data   native over WebSocket         shop/orders/*/>   (TCP without --native-ws)

The order service publishes each order once, natively, with a correlation id and
user properties; MQTT 5 consumers see them as Correlation Data and User Properties,
MQTT 3.1.1 gets the payload only.

    python examples/order_fanout.py --start-broker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections import defaultdict
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from _broker import Addresses, add_broker_options, broker_addresses

from warren.messaging import (
    AsyncMessagingService,
    InboundMessage,
    MessagingService,
    Topic,
    TopicSubscription,
)

received: dict[str, list[str]] = defaultdict(list)
arrived = threading.Condition()


def record(service: str, order_id: str, detail: str) -> None:
    with arrived:
        received[service].append(order_id)
        print(f"{service:>13} got order {order_id} {detail}", flush=True)
        arrived.notify_all()


def wait_for_all(services: list[str], orders: int, timeout: float) -> bool:
    with arrived:
        return arrived.wait_for(
            lambda: all(len(received[s]) == orders for s in services), timeout
        )


def native_service(address: str, name: str, pattern: str) -> MessagingService:
    svc = MessagingService.builder().from_properties(
        {"solace.messaging.transport.host": address}).build(f"{name}-service")
    svc.connect()
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(pattern)]).build()
    receiver.start()

    def handle(message: InboundMessage) -> None:
        order = json.loads(message.get_payload_as_string() or "{}")
        record(name, order["id"], f"(native, correlation id {message.get_correlation_id()})")

    receiver.receive_async(handle)
    return svc


def mqtt_service(where: Addresses, name: str, pattern: str, *, version: int,
                 websocket: bool) -> mqtt.Client:
    subscribed = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-service",
        protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
        transport="websockets" if websocket else "tcp",
    )

    def on_message(c, userdata, message):  # type: ignore[no-untyped-def]
        order = json.loads(message.payload)
        props = getattr(message, "properties", None)
        cd = getattr(props, "CorrelationData", None)
        how = f"MQTT {'5' if version == 5 else '3.1.1'}{' over WebSocket' if websocket else ''}"
        record(name, order["id"], f"({how}{', correlation data ' + cd.decode() if cd else ''})")

    client.on_connect = lambda c, *a: c.subscribe(pattern)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    if websocket:
        url = urlsplit(where.mqtt_ws)
        client.ws_set_options(path=url.path or "/mqtt")
        client.connect(url.hostname or "localhost", url.port or 80)
    else:
        client.connect(where.mqtt_host, where.mqtt_port)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit(f"{name}: could not subscribe")
    return client


async def payment_service(address: str, ready: asyncio.Event, orders: int) -> None:
    async with AsyncMessagingService.builder().from_properties(
        {"solace.messaging.transport.host": address}
    ).build("payment-service") as svc:
        receiver = await svc.create_direct_message_receiver_builder() \
            .with_subscriptions([TopicSubscription.of("shop/orders/placed/>")]).build().start()
        ready.set()
        async for message in receiver:
            order = json.loads(message.get_payload_as_string() or "{}")
            record("payment", order["id"], f"(native asyncio, charging {order['total']:.2f})")
            if len(received["payment"]) == orders:
                break


async def run(args: argparse.Namespace) -> None:
    with broker_addresses(args) as where:
        services = ["inventory", "payment", "shipping", "loyalty", "customer-data"]
        inventory = native_service(where.native, "inventory", "shop/orders/placed/>")
        customer = native_service(where.native_ws or where.native, "customer-data",
                                  "shop/orders/*/>")
        shipping = mqtt_service(where, "shipping", "shop/orders/placed/#", version=5,
                                websocket=False)
        loyalty = mqtt_service(where, "loyalty", "shop/orders/+/+", version=4, websocket=True)
        ready = asyncio.Event()
        payment = asyncio.create_task(payment_service(where.native, ready, args.orders))
        await ready.wait()
        try:
            orders = MessagingService.builder().from_properties(
                {"solace.messaging.transport.host": where.native}).build("order-service")
            orders.connect()
            publisher = orders.create_direct_message_publisher_builder().build()
            publisher.start()
            for n in range(1, args.orders + 1):
                order = {"id": f"A-{n:04d}", "items": n, "total": 19.99 * n}
                message = orders.message_builder() \
                    .with_http_content_header("application/json") \
                    .with_correlation_id(order["id"]) \
                    .with_property("event-type", "order-placed") \
                    .build(json.dumps(order))
                publisher.publish(message, Topic.of(f"shop/orders/placed/{order['id']}"))
                print(f"order-service placed {order['id']}", flush=True)
            await asyncio.wait_for(payment, 10)
            # The other consumers run on their own threads.
            await asyncio.to_thread(wait_for_all, services, args.orders, 10)
            publisher.terminate()
            orders.disconnect()
        finally:
            inventory.disconnect()
            customer.disconnect()
            for client in (shipping, loyalty):
                client.disconnect()
                client.loop_stop()
        for s in services:
            print(f"{s}: {len(received[s])} of {args.orders} orders", flush=True)
        if any(len(received[s]) != args.orders for s in services):
            raise SystemExit("some service missed orders")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_broker_options(parser)
    parser.add_argument("--orders", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
