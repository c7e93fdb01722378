"""Example 3: a stock-price ticker. One publisher per symbol, subscribers with
wildcards, over the asyncio API (and one MQTT dashboard).

Prices go to stocks/<exchange>/<symbol> as JSON. Subscribers:

    all of NASDAQ        native   stocks/nasdaq/>
    AAPL everywhere      native   stocks/*/AAPL
    symbols with M...    native   stocks/*/M*        (a prefix wildcard)
    dashboard            MQTT 5   stocks/#

    python examples/stock_ticker.py --start-broker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
from collections import Counter

import paho.mqtt.client as mqtt
from _broker import add_broker_options, broker_addresses

from warren.messaging import AsyncMessagingService, Topic, TopicSubscription

LISTINGS = {
    "nasdaq": ["AAPL", "MSFT", "NVDA"],
    "nyse": ["IBM", "KO", "MA"],
    "xetra": ["SAP", "AAPL"],
}
SUBSCRIBERS = {
    "all of NASDAQ": "stocks/nasdaq/>",
    "AAPL everywhere": "stocks/*/AAPL",
    "symbols with M": "stocks/*/M*",
}


def matches(pattern: str, exchange: str, symbol: str) -> bool:
    _, ex, sym = pattern.split("/")
    return (ex in (">", "*", exchange)) and (
        sym in (">", "*", symbol) or (sym.endswith("*") and symbol.startswith(sym[:-1]))
    )


async def publish_prices(service: AsyncMessagingService, exchange: str, symbol: str,
                         rounds: int, interval: float) -> None:
    """One publisher per symbol: a random walk of prices."""
    publisher = await service.create_direct_message_publisher_builder().build().start()
    walk = random.Random(f"{exchange}/{symbol}")
    price = walk.uniform(20, 500)
    builder = service.message_builder().with_http_content_header("application/json")
    for n in range(rounds):
        if n:
            await asyncio.sleep(interval)
        price *= 1 + walk.uniform(-0.01, 0.01)
        quote = {"symbol": symbol, "exchange": exchange, "price": round(price, 2), "seq": n}
        publisher.publish(builder.build(json.dumps(quote)), Topic.of(f"stocks/{exchange}/{symbol}"))
    await publisher.terminate()


async def watch(service: AsyncMessagingService, name: str, pattern: str, expected: int,
                ready: asyncio.Event, counts: Counter[str]) -> None:
    receiver = await service.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(pattern)]).build().start()
    ready.set()
    async for message in receiver:
        quote = json.loads(message.get_payload_as_string() or "{}")
        print(f"[{name:>16}] {message.get_destination_name():<20} {quote['price']:>9.2f}",
              flush=True)
        counts[name] += 1
        if counts[name] == expected:
            break
    await receiver.terminate()


async def run(args: argparse.Namespace) -> None:
    with broker_addresses(args) as where:
        props = {"solace.messaging.transport.host": where.native}
        listings = [(ex, sym) for ex, syms in LISTINGS.items() for sym in syms]
        counts: Counter[str] = Counter()
        # The MQTT dashboard sees every quote.
        dashboard_done = threading.Event()
        subscribed = threading.Event()
        dashboard = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_message(client, userdata, message):  # type: ignore[no-untyped-def]
            counts["MQTT dashboard"] += 1
            if counts["MQTT dashboard"] == len(listings) * args.rounds:
                dashboard_done.set()

        dashboard.on_connect = lambda c, *a: c.subscribe("stocks/#")
        dashboard.on_subscribe = lambda *a: subscribed.set()
        dashboard.on_message = on_message
        dashboard.connect(where.mqtt_host, where.mqtt_port)
        dashboard.loop_start()
        try:
            async with AsyncMessagingService.builder().from_properties(props).build() as service:
                watchers = []
                for name, pattern in SUBSCRIBERS.items():
                    expected = args.rounds * sum(matches(pattern, ex, sym) for ex, sym in listings)
                    ready = asyncio.Event()
                    watchers.append(asyncio.create_task(
                        watch(service, name, pattern, expected, ready, counts)))
                    await ready.wait()
                if not await asyncio.to_thread(subscribed.wait, 10):
                    raise SystemExit("the MQTT dashboard could not subscribe")
                await asyncio.gather(*(
                    publish_prices(service, ex, sym, args.rounds, args.interval)
                    for ex, sym in listings
                ))
                await asyncio.wait_for(asyncio.gather(*watchers), 10)
            if not await asyncio.to_thread(dashboard_done.wait, 10):
                raise SystemExit("the MQTT dashboard missed quotes")
        finally:
            dashboard.disconnect()
            dashboard.loop_stop()
        for name, count in sorted(counts.items()):
            print(f"{name}: {count} quotes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_broker_options(parser)
    parser.add_argument("--rounds", type=int, default=10, help="prices per symbol")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between prices")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
