"""Queues made over the API used by a real AMQP client (pika), and the other way round."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import httpx
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

if TYPE_CHECKING:
    from conftest import Broker


def test_api_queue_receives_amqp_topic_publishes(api: httpx.Client, amqp: BlockingChannel,
                                                 uid: str) -> None:
    created = api.post("/vpns/default/queues",
                       json={"name": uid, "subscriptions": [f"{uid}/orders/#"]})
    assert created.status_code == 201, created.text
    props = pika.BasicProperties(content_type="text/plain", message_id="m1",
                                 headers={"k": "v"})
    amqp.basic_publish("amq.topic", f"{uid}.orders.new", b"first", props)
    amqp.basic_publish("amq.topic", f"{uid}.orders.old", b"\xff\x00")
    amqp.basic_publish("amq.topic", f"{uid}.other", b"not queued")
    # Also the default exchange: routing key = queue name.
    amqp.basic_publish("", uid, b"direct")

    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert shown["messages"] == 3
    assert shown["bytes"] == len(b"first") + 2 + len(b"direct")

    browsed = api.get(f"/vpns/default/queues/{uid}/messages", params={"limit": 2}).json()
    assert browsed["total"] == 3
    first, second = browsed["messages"]
    assert first["position"] == 0
    assert first["topic"] == f"{uid}/orders/new"
    assert first["payload"] == "first" and first["payload_encoding"] == "utf-8"
    assert first["content_type"] == "text/plain" and first["message_id"] == "m1"
    assert first["properties"] == {"k": "v"}
    assert second["payload_encoding"] == "base64"
    assert base64.b64decode(second["payload"]) == b"\xff\x00"
    # Browsing consumed nothing: AMQP gets all three, in order.
    got = []
    for _ in range(3):
        method, _props, body = amqp.basic_get(uid, auto_ack=True)
        assert method is not None
        got.append(body)
    assert got == [b"first", b"\xff\x00", b"direct"]
    assert api.get(f"/vpns/default/queues/{uid}").json()["messages"] == 0


def test_amqp_queue_seen_purged_and_deleted_over_api(api: httpx.Client, amqp: BlockingChannel,
                                                     uid: str) -> None:
    amqp.queue_declare(uid, durable=True, arguments={"x-max-length": 50})
    amqp.queue_bind(uid, "amq.topic", f"{uid}.#")
    for i in range(4):
        amqp.basic_publish("amq.topic", f"{uid}.n", str(i).encode())
    amqp.basic_consume(uid, lambda *a: None, auto_ack=False, consumer_tag="c1")
    # A consumer with no prefetch limit takes every message: 4 unacked.
    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert shown["consumers"] == 1
    assert shown["consumer_list"][0]["tag"] == "c1"
    assert shown["subscriptions"] == [f"{uid}.#"]
    assert shown["limits"]["max_length"] == 50
    in_use = api.delete(f"/vpns/default/queues/{uid}", params={"if_unused": "true"})
    assert in_use.status_code == 409 and "consumers" in in_use.json()["detail"]
    not_empty = api.delete(f"/vpns/default/queues/{uid}", params={"if_empty": "true"})
    assert not_empty.status_code == 409
    amqp.basic_cancel("c1")
    amqp.basic_publish("", uid, b"ready")
    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert shown["messages"] >= 1
    purged = api.delete(f"/vpns/default/queues/{uid}/messages").json()
    assert purged["purged"] == shown["messages"]
    deleted = api.delete(f"/vpns/default/queues/{uid}")
    assert deleted.status_code == 200
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        amqp.queue_declare(uid, passive=True)
    assert info.value.reply_code == 404


def test_exclusive_api_queue_admits_one_consumer(broker: Broker, api: httpx.Client,
                                                 amqp: BlockingChannel, uid: str) -> None:
    assert api.post("/vpns/default/queues",
                    json={"name": uid, "exclusive": True}).status_code == 201
    amqp.basic_consume(uid, lambda *a: None, consumer_tag="one")
    second = amqp.connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        second.basic_consume(uid, lambda *a: None, consumer_tag="two")
    assert info.value.reply_code == 403
    assert api.get(f"/vpns/default/queues/{uid}").json()["consumers"] == 1
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200


def test_amqp_redeclare_of_api_queue_is_equivalent(api: httpx.Client, amqp: BlockingChannel,
                                                   uid: str) -> None:
    assert api.post("/vpns/default/queues", json={
        "name": uid, "limits": {"max_length": 7, "overflow": "reject-publish"},
    }).status_code == 201
    ok = amqp.queue_declare(uid, durable=True,
                            arguments={"x-max-length": 7, "x-overflow": "reject-publish"})
    assert ok.method.message_count == 0
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200
