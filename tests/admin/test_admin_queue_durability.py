"""A queue created at run time keeps its topic subscriptions and its exclusive access
across a restart (graceful and kill -9), whichever way it was created: the
management API here, the native protocol in tests/messaging."""

from __future__ import annotations

from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest
from admin_support import WAIT, admin_url, amqp_port


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_api_queue_subscriptions_and_access_survive_a_restart(
    make_broker: Any, uid: str, crash: bool
) -> None:
    b = make_broker()
    with httpx.Client(base_url=admin_url(b) + "/api/v1", timeout=WAIT) as api:
        created = api.post("/vpns/default/queues", json={
            "name": uid, "exclusive": True, "subscriptions": [f"{uid}/a/#", f"{uid}/b"],
        })
        assert created.status_code == 201, created.text
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=b.host, port=amqp_port(b), socket_timeout=WAIT))
    channel = conn.channel()
    channel.confirm_delivery()
    # Through the subscription (amq.topic is the topic space): confirmed once stored,
    # so after the subscription journalled before it.
    channel.basic_publish("amq.topic", f"{uid}.a.x", b"before",
                          pika.BasicProperties(delivery_mode=2))
    conn.close()

    b2 = make_broker.launcher.restart(b, crash=crash)
    with httpx.Client(base_url=admin_url(b2) + "/api/v1", timeout=WAIT) as api:
        shown = api.get(f"/vpns/default/queues/{uid}").json()
        assert shown["subscriptions"] == [f"{uid}/a/#", f"{uid}/b"]
        assert shown["exclusive"] is True and shown["messages"] == 1

        # The restored subscription routes: a QoS 1 publish is PUBACKed once queued.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{uid}p",
                             protocol=mqtt.MQTTv311)
        client.connect(b2.host, b2.mqtt_port)
        client.loop_start()
        try:
            client.publish(f"{uid}/b", b"after", qos=1).wait_for_publish(WAIT)
        finally:
            client.loop_stop()
            client.disconnect()
        assert api.get(f"/vpns/default/queues/{uid}").json()["messages"] == 2

    # Exclusive access is enforced after the restart too: one consumer at a time.
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=b2.host, port=amqp_port(b2), socket_timeout=WAIT))
    try:
        first = conn.channel()
        first.basic_consume(uid, lambda *_: None)
        second = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            second.basic_consume(uid, lambda *_: None)
        assert refused.value.reply_code == 403
        assert "exclusive use" in refused.value.reply_text
    finally:
        conn.close()
