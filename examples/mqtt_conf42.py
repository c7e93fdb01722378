"""Example 1: an MQTT client (paho) subscribes to conf42/# and publishes ten
messages to conf42/go, printing what it receives.

    python examples/mqtt_conf42.py                  # a broker on localhost:1883
    python examples/mqtt_conf42.py --start-broker   # or one just for this run
"""

from __future__ import annotations

import argparse
import threading

import paho.mqtt.client as mqtt
from _broker import add_broker_options, broker_addresses

COUNT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_broker_options(parser)
    args = parser.parse_args()
    with broker_addresses(args) as where:
        received: list[str] = []
        subscribed, done = threading.Event(), threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
            client.subscribe("conf42/#")

        def on_subscribe(client, userdata, mid, reason_codes, properties):  # type: ignore[no-untyped-def]
            subscribed.set()

        def on_message(client, userdata, message):  # type: ignore[no-untyped-def]
            text = message.payload.decode()
            print(f"received {message.topic}: {text}", flush=True)
            if message.topic == "conf42/go":
                received.append(text)
                if len(received) == COUNT:
                    done.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message = on_message
        client.connect(where.mqtt_host, where.mqtt_port)
        client.loop_start()
        try:
            if not subscribed.wait(10):
                raise SystemExit("no SUBACK from the broker")
            for n in range(1, COUNT + 1):
                client.publish("conf42/go", f"go {n}", qos=1).wait_for_publish(10)
            if not done.wait(10):
                raise SystemExit(f"only {len(received)} of {COUNT} messages came back")
            print(f"all {COUNT} messages received", flush=True)
        finally:
            client.disconnect()
            client.loop_stop()


if __name__ == "__main__":
    main()
