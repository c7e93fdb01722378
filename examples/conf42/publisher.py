"""Example 2: a native publisher sending "hello from conf42 N" to
conf42/warren/python/N every second until Ctrl-C (VPN public, user conf42).

    warren serve --config examples/conf42/warren.toml        # terminal 1
    node tests/js/native_conf42_subscriber.mjs               # terminal 2 (MQTT.js)
    python examples/conf42/serve_page.py                     # terminal 3 (browser page)
    python examples/conf42/publisher.py                      # terminal 4

or everything in one: python examples/conf42/publisher.py --start-broker
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/_broker.py

from _broker import add_broker_options, broker_addresses

from warren.messaging import MessagingService, RetryStrategy, Topic

CONFIG = Path(__file__).resolve().parent / "warren.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_broker_options(parser)
    parser.add_argument("--count", type=int, default=None, help="stop after N messages")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between messages")
    args = parser.parse_args()
    with broker_addresses(args, CONFIG) as where:
        service = MessagingService.builder().from_properties({
            "solace.messaging.transport.host": where.native,
            "solace.messaging.service.vpn-name": "public",
            "solace.messaging.authentication.basic.username": "conf42",
            "solace.messaging.authentication.basic.password": "public",
        }).with_reconnection_retry_strategy(RetryStrategy.forever_retry(1000)).build()
        service.connect()
        publisher = service.create_direct_message_publisher_builder().build()
        publisher.start()
        builder = service.message_builder().with_property("source", "warren-python")
        n = 0
        try:
            while args.count is None or n < args.count:
                if n:
                    time.sleep(args.interval)
                n += 1
                text = f"hello from conf42 {n}"
                publisher.publish(builder.build(text), Topic.of(f"conf42/warren/python/{n}"))
                print(f"published {text}", flush=True)
        except KeyboardInterrupt:
            print("stopping")
        finally:
            publisher.terminate(1000)
            service.disconnect()


if __name__ == "__main__":
    main()
