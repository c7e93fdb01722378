"""Broker-wide counters, published under ``$SYS/broker/...``.

Plain integer attributes: incrementing one is the cheapest thing Python can do on
the hot path, and readers (the $SYS publisher, metrics) only sample them.
"""

from __future__ import annotations

import time

__all__ = ["BrokerStats"]


class BrokerStats:
    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "clients_connected",
        "clients_maximum",
        "clients_total",
        "connections_refused",
        "dropped",
        "messages_received",
        "messages_sent",
        "protocol_errors",
        "publish_received",
        "publish_sent",
        "started",
    )

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.messages_received = 0  # packets of any kind read from clients
        self.messages_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.publish_received = 0  # application messages in
        self.publish_sent = 0  # application messages out
        self.dropped = 0  # messages dropped: queue limits, slow consumers, size limits
        self.clients_connected = 0
        self.clients_total = 0  # sessions known (connected or persistent offline)
        self.clients_maximum = 0
        self.connections_refused = 0
        self.protocol_errors = 0

    def uptime(self) -> int:
        return int(time.monotonic() - self.started)

    def client_connected(self) -> None:
        self.clients_connected += 1
        if self.clients_connected > self.clients_maximum:
            self.clients_maximum = self.clients_connected
