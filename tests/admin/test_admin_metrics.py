"""/metrics in Prometheus text format, parsed with prometheus_client's own parser."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from admin_support import admin_url
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from conftest import Broker


def _samples(broker: Broker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(admin_url(broker) + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_counters_and_queue_gauges(broker: Broker, api: httpx.Client,
                                           amqp: BlockingChannel, uid: str) -> None:
    before = _samples(broker)
    for name in ("warren_publish_received_total", "warren_bytes_received_total",
                 "warren_dropped_total", "warren_uptime_seconds",
                 "warren_clients_connected"):
        assert (name, ()) in before, name
    assert ("warren_sessions", (("vpn", "default"),)) in before

    assert api.post("/vpns/default/queues",
                    json={"name": uid, "subscriptions": [f"{uid}/#"]}).status_code == 201
    amqp.basic_publish("amq.topic", f"{uid}.a", b"12345")
    amqp.basic_publish("amq.topic", f"{uid}.b", b"678")
    after = _samples(broker)
    labels = (("queue", uid), ("vpn", "default"))
    assert after[("warren_queue_messages", labels)] == 2
    assert after[("warren_queue_bytes", labels)] == 8
    assert after[("warren_queue_consumers", labels)] == 0
    assert after[("warren_publish_received_total", ())] >= (
        before[("warren_publish_received_total", ())] + 2)
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200
    assert ("warren_queue_messages", labels) not in _samples(broker)
