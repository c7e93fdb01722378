"""Prometheus metrics, sampled from the broker's counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn

__all__ = ["BrokerCollector", "metrics_response"]

_COUNTERS = (
    ("messages_received", "Packets of any kind read from clients."),
    ("messages_sent", "Packets of any kind written to clients."),
    ("publish_received", "Application messages received."),
    ("publish_sent", "Application messages delivered."),
    ("dropped", "Messages dropped by queue limits, slow consumers or size limits."),
    ("bytes_received", "Bytes read from clients."),
    ("bytes_sent", "Bytes written to clients."),
    ("connections_refused", "Connections refused (authentication, limits)."),
    ("protocol_errors", "Connections closed for a protocol error."),
)


class BrokerCollector(Collector):
    """Reads BrokerStats and every VPN's sessions and queues on each scrape."""

    def __init__(self, stats: BrokerStats, vpns: Mapping[str, Vpn]) -> None:
        self.stats = stats
        self.vpns = vpns

    def collect(self) -> Iterable[Metric]:
        s = self.stats
        for name, doc in _COUNTERS:
            yield CounterMetricFamily(f"warren_{name}", doc, value=getattr(s, name))
        yield GaugeMetricFamily("warren_uptime_seconds", "Seconds since start.", value=s.uptime())
        yield GaugeMetricFamily("warren_clients_connected", "Connected clients.",
                                value=s.clients_connected)
        yield GaugeMetricFamily("warren_clients_maximum", "Most clients connected at once.",
                                value=s.clients_maximum)
        sessions = GaugeMetricFamily("warren_sessions", "Sessions known (connected or not).",
                                     labels=["vpn"])
        subscriptions = GaugeMetricFamily("warren_subscriptions", "Topic subscriptions.",
                                          labels=["vpn"])
        retained = GaugeMetricFamily("warren_retained_messages", "Retained messages.",
                                     labels=["vpn"])
        q_messages = GaugeMetricFamily("warren_queue_messages", "Ready messages in a queue.",
                                       labels=["vpn", "queue"])
        q_bytes = GaugeMetricFamily("warren_queue_bytes", "Ready payload bytes in a queue.",
                                    labels=["vpn", "queue"])
        q_unacked = GaugeMetricFamily("warren_queue_unacked",
                                      "Messages delivered, awaiting acknowledgement.",
                                      labels=["vpn", "queue"])
        q_consumers = GaugeMetricFamily("warren_queue_consumers", "Consumers of a queue.",
                                        labels=["vpn", "queue"])
        q_dead_lettered = CounterMetricFamily(
            "warren_queue_dead_lettered", "Messages a queue handed to its dead-letter target.",
            labels=["vpn", "queue"])
        q_dropped = CounterMetricFamily(
            "warren_queue_dropped", "Dead messages a queue dropped (no dead-letter target).",
            labels=["vpn", "queue"])
        q_exceeded = CounterMetricFamily(
            "warren_queue_redelivery_exceeded",
            "Messages that reached a queue's max redelivery (dead-lettered or dropped).",
            labels=["vpn", "queue"])
        for name, vpn in sorted(self.vpns.items()):
            sessions.add_metric([name], len(vpn.sessions))
            subscriptions.add_metric([name], vpn.router.subscription_count)
            retained.add_metric([name], len(vpn.router.retained))
            for qname, q in sorted(vpn.queues.queues.items()):
                q_messages.add_metric([name, qname], q.ready_count)
                q_bytes.add_metric([name, qname], q.ready_bytes)
                q_unacked.add_metric([name, qname], q.unacked_count)
                q_consumers.add_metric([name, qname], len(q.consumers))
                q_dead_lettered.add_metric([name, qname], q.dead_lettered)
                q_dropped.add_metric([name, qname], q.dropped)
                q_exceeded.add_metric([name, qname], q.redelivery_exceeded)
        yield from (sessions, subscriptions, retained, q_messages, q_bytes, q_unacked,
                    q_consumers, q_dead_lettered, q_dropped, q_exceeded)


def metrics_response(stats: BrokerStats, vpns: Mapping[str, Vpn]) -> tuple[bytes, str]:
    """The text exposition (body, content type) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(stats, vpns))
    return generate_latest(registry), CONTENT_TYPE_LATEST
