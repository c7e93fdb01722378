"""Fixtures for the management API tests: an httpx client of the shared broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pika
import pytest
from admin_support import WAIT, admin_url, amqp_port

if TYPE_CHECKING:
    from conftest import Broker

@pytest.fixture
def api(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_url(broker) + "/api/v1", timeout=WAIT) as client:
        yield client


@pytest.fixture
def amqp(broker: Broker) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A pika channel with publisher confirms (a publish returns once routed)."""
    connection = pika.BlockingConnection(pika.ConnectionParameters(
        host=broker.host, port=amqp_port(broker), socket_timeout=WAIT,
        blocked_connection_timeout=WAIT,
    ))
    channel = connection.channel()
    channel.confirm_delivery()
    yield channel
    if connection.is_open:
        connection.close()
