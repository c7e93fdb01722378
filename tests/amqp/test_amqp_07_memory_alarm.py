"""The memory alarm: connection.blocked / connection.unblocked (RabbitMQ's extension).

A broker with tiny watermarks ([amqp] high/low_watermark_bytes): queued payload bytes
above the high watermark block every connection that publishes (connection.blocked,
then the broker stops reading it); at or below the low watermark they are unblocked
and read again. Connections that only consume are never blocked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest
from amqp_support import WAIT, amqp_port_of

from warren.config import load_config
from warren.errors import ConfigError

ALARM_TOML = """
[amqp]
high_watermark_bytes = 1000
low_watermark_bytes = 500
"""


def _open(broker: Any) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host, port=amqp_port_of(broker), socket_timeout=WAIT,
            stack_timeout=WAIT, blocked_connection_timeout=WAIT,
        )
    )


def _pump_until(conn: pika.BlockingConnection, done: Callable[[], bool], what: str) -> None:
    """Process ``conn``'s I/O until ``done()`` (bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}", pytrace=False)
        conn.process_data_events(time_limit=0.1)


def test_publisher_blocked_above_high_unblocked_at_low_watermark(
    make_broker: Callable[..., Any], uid: str
) -> None:
    broker = make_broker(ALARM_TOML)
    publisher, consumer = _open(broker), _open(broker)
    events: list[tuple[str, str]] = []
    consumer_events: list[str] = []
    publisher.add_on_connection_blocked_callback(
        lambda _conn, frame: events.append(("blocked", frame.method.reason))
    )
    publisher.add_on_connection_unblocked_callback(
        lambda _conn, _frame: events.append(("unblocked", ""))
    )
    consumer.add_on_connection_blocked_callback(lambda *_: consumer_events.append("blocked"))
    try:
        pub = publisher.channel()
        queue = pub.queue_declare(f"{uid}.held").method.queue
        for i in range(3):  # 1200 bytes queued > 1000
            pub.basic_publish("", queue, bytes([i]) * 400)
        _pump_until(publisher, lambda: bool(events), "connection.blocked")
        assert events == [("blocked", "low on memory")]

        # Blocked: the broker no longer reads this connection; this publish waits
        # in the socket until the alarm clears.
        pub.basic_publish("", queue, b"late")
        sub = consumer.channel()
        assert sub.queue_declare(queue, passive=True).method.message_count == 3

        # The consumer drains (it is never blocked: it does not publish): 1200 -> 400
        # bytes, at or below the low watermark, clears the alarm.
        for i in range(2):
            method, _, body = sub.basic_get(queue, auto_ack=True)
            assert method is not None and body == bytes([i]) * 400
        _pump_until(publisher, lambda: len(events) == 2, "connection.unblocked")
        assert events[1] == ("unblocked", "")

        # Read again: "late" is routed before the publisher's next method's reply.
        assert pub.queue_declare(queue, passive=True).method.message_count == 2
        method, _, body = sub.basic_get(queue, auto_ack=True)
        assert body == bytes([2]) * 400
        method, _, body = sub.basic_get(queue, auto_ack=True)
        assert body == b"late"
        consumer.process_data_events(time_limit=0)
        assert consumer_events == []
    finally:
        for conn in (publisher, consumer):
            if conn.is_open:
                conn.close()


def test_publisher_blocked_again_when_alarm_returns(
    make_broker: Callable[..., Any], uid: str
) -> None:
    """Each alarm blocks each publisher once; a publisher keeps working in between."""
    broker = make_broker(ALARM_TOML)
    publisher = _open(broker)
    events: list[str] = []
    publisher.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
    publisher.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
    try:
        channel = publisher.channel()
        queue = channel.queue_declare(f"{uid}.q").method.queue
        for round_ in range(2):
            channel.basic_publish("", queue, b"x" * 1001)
            blocked, unblocked = 2 * round_ + 1, 2 * round_ + 2
            _pump_until(publisher, lambda n=blocked: len(events) == n, "blocked")
            # Purging from another connection clears the alarm.
            other = _open(broker)
            assert other.channel().queue_purge(queue).method.message_count == 1
            other.close()
            _pump_until(publisher, lambda n=unblocked: len(events) == n, "unblocked")
        assert events == ["blocked", "unblocked", "blocked", "unblocked"]
    finally:
        if publisher.is_open:
            publisher.close()


def test_amqp_config_watermarks(tmp_path: Path) -> None:
    assert load_config(None).amqp.low_watermark == 256 * 1024 * 1024
    path = tmp_path / "warren.toml"
    path.write_text("[amqp]\nhigh_watermark_bytes = 1000\n")
    assert load_config(path).amqp.low_watermark == 500
    path.write_text("[amqp]\nhigh_watermark_bytes = 10\nlow_watermark_bytes = 20\n")
    with pytest.raises(ConfigError, match="low_watermark_bytes"):
        load_config(path)
    path.write_text("[amqp]\nhigh_watermark = 10\n")
    with pytest.raises(ConfigError, match=r"amqp\.high_watermark: unknown key"):
        load_config(path)
