"""max_redelivery over the management API: created, shown, enforced on a real AMQP
consumer (pika), counted in the queue's statistics and metrics, kept across a
restart; `warren queue create --max-redelivery` is in test_admin_cli.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pika
import pika.exceptions
import pytest
from admin_support import WAIT, admin_url, amqp_port
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from conftest import Broker


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def _queue_metrics(broker: Broker, queue: str) -> dict[str, float]:
    """The samples of /metrics labelled with ``queue`` (in VPN default), by name."""
    text = httpx.get(admin_url(broker) + "/metrics").text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels == {"vpn": "default", "queue": queue}
    }


def _nack(amqp: BlockingChannel, queue: str) -> tuple[Any, Any]:
    """basic.get the next message of ``queue`` and nack it with requeue."""
    method, props, _body = amqp.basic_get(queue)
    assert method is not None, f"{queue} is empty"
    amqp.basic_nack(method.delivery_tag, requeue=True)
    return method, props


def test_max_redelivery_with_a_dead_letter_queue(broker: Broker, api: httpx.Client,
                                                 amqp: BlockingChannel, uid: str) -> None:
    assert api.post("/vpns/default/queues", json={"name": f"{uid}.dead"}).status_code == 201
    created = api.post("/vpns/default/queues", json={
        "name": uid, "subscriptions": [f"{uid}/#"],
        "limits": {"max_redelivery": 2, "dead_letter_queue": f"{uid}.dead"},
    })
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["limits"]["max_redelivery"] == 2
    assert body["limits"]["dead_letter_queue"] == f"{uid}.dead"
    assert (body["dead_lettered"], body["dropped"], body["redelivery_exceeded"]) == (0, 0, 0)

    amqp.basic_publish("amq.topic", f"{uid}.job", b"poison")
    _nack(amqp, uid)
    _nack(amqp, uid)
    # Browsing shows how often it came back.
    [browsed] = api.get(f"/vpns/default/queues/{uid}/messages").json()["messages"]
    assert browsed["redelivered"] is True and browsed["redeliveries"] == 2
    method, props = _nack(amqp, uid)  # the third return: past the limit
    assert method.redelivered and props.headers["x-delivery-count"] == 2

    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert shown["messages"] == 0 and shown["unacked"] == 0
    assert (shown["dead_lettered"], shown["dropped"], shown["redelivery_exceeded"]) == (1, 0, 1)
    method, _props, body_bytes = amqp.basic_get(f"{uid}.dead", auto_ack=True)
    assert body_bytes == b"poison" and not method.redelivered

    samples = _queue_metrics(broker, uid)
    assert samples["warren_queue_redelivery_exceeded_total"] == 1
    assert samples["warren_queue_dead_lettered_total"] == 1
    assert samples["warren_queue_dropped_total"] == 0
    for name in (uid, f"{uid}.dead"):
        assert api.delete(f"/vpns/default/queues/{name}").status_code == 200


def test_without_a_target_dead_messages_are_dropped_and_counted(
    api: httpx.Client, amqp: BlockingChannel, uid: str
) -> None:
    assert api.post("/vpns/default/queues", json={
        "name": uid, "limits": {"max_redelivery": 0},
    }).status_code == 201
    amqp.basic_publish("", uid, b"once")
    _nack(amqp, uid)
    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert (shown["messages"], shown["dropped"], shown["redelivery_exceeded"]) == (0, 1, 1)
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200


def test_max_redelivery_through_a_dead_letter_exchange(api: httpx.Client,
                                                      amqp: BlockingChannel, uid: str) -> None:
    """The default exchange as dead-letter exchange, the dead queue as routing key."""
    assert api.post("/vpns/default/queues", json={"name": f"{uid}.dlq"}).status_code == 201
    assert api.post("/vpns/default/queues", json={"name": uid, "limits": {
        "max_redelivery": 1, "dead_letter_exchange": "",
        "dead_letter_routing_key": f"{uid}.dlq"}}).status_code == 201
    amqp.basic_publish("", uid, b"x")
    _nack(amqp, uid)
    _nack(amqp, uid)
    _method, props, body = amqp.basic_get(f"{uid}.dlq", auto_ack=True)
    assert body == b"x" and props.headers["x-death"][0]["reason"] == "delivery_limit"
    for name in (uid, f"{uid}.dlq"):
        assert api.delete(f"/vpns/default/queues/{name}").status_code == 200


def test_amqp_redeclare_compares_x_delivery_limit(api: httpx.Client, amqp: BlockingChannel,
                                                 uid: str) -> None:
    assert api.post("/vpns/default/queues", json={
        "name": uid, "limits": {"max_redelivery": 4},
    }).status_code == 201
    amqp.queue_declare(uid, durable=True, arguments={"x-delivery-limit": 4})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        amqp.queue_declare(uid, durable=True)
    assert info.value.reply_code == 406
    assert "inequivalent arg 'x-delivery-limit'" in info.value.reply_text
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200


def test_invalid_max_redelivery_and_two_targets_are_422(api: httpx.Client, uid: str) -> None:
    negative = _problem(api.post("/vpns/default/queues", json={
        "name": uid, "limits": {"max_redelivery": -1}}), 422)
    assert "body.limits.max_redelivery" in str(negative["detail"])
    both = _problem(api.post("/vpns/default/queues", json={"name": uid, "limits": {
        "dead_letter_queue": "d", "dead_letter_exchange": "x"}}), 422)
    assert "set one of them" in str(both["detail"])
    assert api.get(f"/vpns/default/queues/{uid}").status_code == 404


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_api_queue_limits_and_counts_survive_a_restart(make_broker: Any, uid: str,
                                                       crash: bool) -> None:
    b = make_broker()
    with httpx.Client(base_url=admin_url(b) + "/api/v1", timeout=WAIT) as api:
        assert api.post("/vpns/default/queues", json={"name": f"{uid}.dead"}).status_code == 201
        assert api.post("/vpns/default/queues", json={
            "name": uid, "limits": {"max_redelivery": 1, "max_length": 10,
                                    "dead_letter_queue": f"{uid}.dead"},
        }).status_code == 201
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=b.host, port=amqp_port(b), socket_timeout=WAIT))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish("", uid, b"poison", pika.BasicProperties(delivery_mode=2))
    _nack(channel, uid)  # one return: the last delivery is left
    # Confirmed once stored, so after the count journalled before it.
    channel.basic_publish("", f"{uid}.dead", b"barrier", pika.BasicProperties(delivery_mode=2))
    conn.close()

    b2 = make_broker.launcher.restart(b, crash=crash)
    with httpx.Client(base_url=admin_url(b2) + "/api/v1", timeout=WAIT) as api:
        shown = api.get(f"/vpns/default/queues/{uid}").json()
        assert shown["durable"] is True and shown["messages"] == 1
        assert {k: v for k, v in shown["limits"].items() if v is not None} == {
            "max_redelivery": 1, "max_length": 10, "dead_letter_queue": f"{uid}.dead",
            "overflow": "drop-head"}
        [browsed] = api.get(f"/vpns/default/queues/{uid}/messages").json()["messages"]
        assert browsed["redeliveries"] == 1
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            host=b2.host, port=amqp_port(b2), socket_timeout=WAIT))
        try:
            channel = conn.channel()
            method, _props = _nack(channel, uid)  # the second return: past the limit
            assert method.redelivered
            assert api.get(f"/vpns/default/queues/{uid}").json()["redelivery_exceeded"] == 1
            bodies = [channel.basic_get(f"{uid}.dead", auto_ack=True)[2] for _ in range(2)]
            assert bodies == [b"barrier", b"poison"]
        finally:
            conn.close()
