"""The ``amqp-persistent`` scenario: persistent publish -> durable queue -> consumer.

One publisher process and one consumer process, each on a blocking socket driven by
Warren's own sans-I/O AMQP 0-9-1 codec (client role), so any AMQP broker can be
measured (Warren, RabbitMQ). The publisher puts its channel in confirm mode and
writes pre-encoded ``basic.publish`` frames (delivery_mode 2, to a durable queue
through the default exchange) while fewer than ``window`` messages are unconfirmed;
only the 8-byte send time (CLOCK_MONOTONIC ns) at the start of each body is patched
in. The consumer uses manual acknowledgements (one ``multiple`` ack per read) and a
prefetch limit, and takes publish -> consume latency from the body's stamp.

Timing: the controller picks a common start time; both workers publish/consume from
there for ``warmup + duration`` seconds. Rates, latencies, broker CPU (``/proc``)
and generator CPU (``getrusage``) cover the ``duration`` interval after the warm-up.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import queue
import resource
import secrets
import select
import socket
import struct
import time
from array import array
from dataclasses import asdict, dataclass
from typing import Any, Final

from warren.codecs.amqp import (
    AMQPConnection,
    BasicAck,
    BasicConsume,
    BasicDeliver,
    BasicNack,
    BasicProperties,
    BasicPublish,
    BasicQos,
    ChannelOpen,
    ConfirmSelect,
    ConnectionClose,
    ConnectionOpen,
    ConnectionStart,
    ConnectionStartOk,
    ConnectionTune,
    ConnectionTuneOk,
    ProtocolHeader,
    QueueDeclare,
    QueueDelete,
    Role,
)

from .procstat import BrokerProcess

__all__ = ["AmqpSpec", "run_amqp_persistent"]

_STAMP: Final = struct.Struct(">Q")
_SETUP_TIMEOUT: Final = 30.0
_DRAIN_IDLE: Final = 5.0  # the consumer gives up after this long without a message
_RING: Final = 1024


class AmqpBenchError(Exception):
    """The run could not be carried out."""


@dataclass(frozen=True, slots=True)
class AmqpSpec:
    """Persistent publishes with confirms to a durable queue, one consumer."""

    name: str = "amqp-persistent"
    payload: int = 64
    window: int = 256  # most unconfirmed publishes
    batch: int = 32  # most publishes per write
    prefetch: int = 512  # consumer basic.qos prefetch-count
    duration: float = 5.0
    warmup: float = 1.0

    def params(self) -> dict[str, Any]:
        return asdict(self)


class _Client:
    """A blocking AMQP client connection on the sans-I/O codec."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=_SETUP_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.codec = AMQPConnection(Role.CLIENT)
        self.events: list[Any] = []

    def send(self, event: Any) -> None:
        self.sock.sendall(self.codec.send(event))

    def expect(self, kind: type) -> Any:
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, ConnectionClose):
                    raise AmqpBenchError(f"broker closed: {event.reply_code} {event.reply_text}")
                if isinstance(event, kind):
                    return event
            data = self.sock.recv(65536)
            if not data:
                raise AmqpBenchError(f"connection closed while waiting for {kind.__name__}")
            self.events.extend(self.codec.receive(data))

    def open(self, queue_name: str) -> None:
        self.send(ProtocolHeader())
        self.expect(ConnectionStart)
        self.send(ConnectionStartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"))
        tune = self.expect(ConnectionTune)
        self.send(ConnectionTuneOk(tune.channel_max, tune.frame_max, 0))
        self.send(ConnectionOpen("/"))
        self._wait_name("ConnectionOpenOk")
        self.send(ChannelOpen(channel=1))
        self._wait_name("ChannelOpenOk")
        self.send(QueueDeclare(channel=1, queue=queue_name, durable=True))
        self._wait_name("QueueDeclareOk")

    def _wait_name(self, name: str) -> Any:
        from warren.codecs import amqp

        return self.expect(getattr(amqp, name))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _publisher(
    host: str,
    port: int,
    queue_name: str,
    spec: AmqpSpec,
    start: Any,
    ready: Any,
    reports: Any,
) -> None:
    try:
        client = _Client(host, port)
        client.open(queue_name)
        client.send(ConfirmSelect(channel=1))
        client._wait_name("ConfirmSelectOk")
        props = BasicProperties(delivery_mode=2)
        frame = client.codec.send(
            BasicPublish(
                channel=1, routing_key=queue_name, properties=props, body=b"\xa5" * spec.payload
            )
        )
        size = len(frame)
        offset = size - 1 - spec.payload  # the body is the last frame's payload
        ring = bytearray(frame * _RING)
        view = memoryview(ring)
        ready.value = 1
        while start.value == 0:
            time.sleep(0.001)
        t_start = start.value / 1e9
        m0 = t_start + spec.warmup
        m1 = m0 + spec.duration
        _sleep_until(t_start)
        sock = client.sock
        sock.settimeout(None)
        codec = client.codec
        send_ns = array("q")  # send time of publish seq i + 1
        confirmed = 0
        nacked = 0
        confirm_lat: list[int] = []
        published = 0
        cpu0 = cpu1 = 0.0
        in_measure = False
        pos = 0
        while True:
            now = time.monotonic()
            if not in_measure and now >= m0:
                in_measure = True
                cpu0 = _cpu()
                pub_m0, conf_m0 = published, confirmed
            if now >= m1:
                break
            room = spec.window - (published - confirmed)
            if room > 0:
                count = min(room, spec.batch, _RING - pos)
                now_ns = time.monotonic_ns()
                for i in range(pos, pos + count):
                    _STAMP.pack_into(ring, i * size + offset, now_ns)
                sock.sendall(view[pos * size : (pos + count) * size])
                pos = (pos + count) % _RING
                send_ns.extend([now_ns] * count)
                published += count
            timeout = 0.0 if room > spec.batch else 0.05
            readable, _, _ = select.select([sock], [], [], timeout)
            if readable:
                data = sock.recv(65536)
                if not data:
                    raise AmqpBenchError("broker closed the publisher connection")
                now_ns = time.monotonic_ns()
                for event in codec.receive(data):
                    if isinstance(event, (BasicAck, BasicNack)):
                        upto = event.delivery_tag
                        first = confirmed + 1 if event.multiple else upto
                        for seq in range(first, upto + 1):
                            if m0 * 1e9 <= send_ns[seq - 1] < m1 * 1e9:
                                confirm_lat.append(now_ns - send_ns[seq - 1])
                        n = upto - confirmed if event.multiple else 1
                        if isinstance(event, BasicNack):
                            nacked += n
                        confirmed = max(confirmed, upto)
                    elif isinstance(event, ConnectionClose):
                        raise AmqpBenchError(f"broker closed: {event.reply_text}")
        cpu1 = _cpu()
        pub_m1, conf_m1 = published, confirmed
        # Collect the outstanding confirms.
        deadline = time.monotonic() + 30.0
        while confirmed < published and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                for event in codec.receive(data):
                    if isinstance(event, (BasicAck, BasicNack)):
                        upto = event.delivery_tag
                        n = upto - confirmed if event.multiple else 1
                        if isinstance(event, BasicNack):
                            nacked += n
                        confirmed = max(confirmed, upto)
        sock.close()
        reports.put(
            {
                "role": "publisher",
                "published": published,
                "confirmed": confirmed,
                "nacked": nacked,
                "published_measured": pub_m1 - pub_m0,
                "confirmed_measured": conf_m1 - conf_m0,
                "confirm_latencies_ns": confirm_lat,
                "cpu_s": cpu1 - cpu0,
            }
        )
    except BaseException as exc:
        ready.value = -1
        reports.put({"role": "publisher", "error": f"{type(exc).__name__}: {exc}"})


def _consumer(
    host: str,
    port: int,
    queue_name: str,
    spec: AmqpSpec,
    start: Any,
    ready: Any,
    total: Any,
    reports: Any,
) -> None:
    try:
        client = _Client(host, port)
        client.open(queue_name)
        client.send(BasicQos(channel=1, prefetch_count=spec.prefetch))
        client._wait_name("BasicQosOk")
        client.send(BasicConsume(channel=1, queue=queue_name, consumer_tag="bench"))
        client._wait_name("BasicConsumeOk")
        ready.value = 1
        while start.value == 0:
            time.sleep(0.001)
        t_start = start.value / 1e9
        m0 = t_start + spec.warmup
        m1 = m0 + spec.duration
        m0_ns, m1_ns = int(m0 * 1e9), int(m1 * 1e9)
        sock = client.sock
        sock.settimeout(0.05)
        codec = client.codec
        received = 0
        measured = 0
        latencies: list[int] = []
        last_tag = 0
        acked_tag = 0
        cpu0 = cpu1 = None
        last_progress = time.monotonic()
        pending = list(client.events)
        client.events.clear()
        while True:
            now = time.monotonic()
            if cpu0 is None and now >= m0:
                cpu0 = _cpu()
            if cpu1 is None and now >= m1:
                cpu1 = _cpu()
            if total.value >= 0 and received >= total.value:
                break
            if now - last_progress > _DRAIN_IDLE and now > m1:
                break
            events = pending
            pending = []
            try:
                data = sock.recv(262144)
            except TimeoutError:
                data = None
            if data == b"":
                raise AmqpBenchError("broker closed the consumer connection")
            if data:
                events.extend(codec.receive(data))
            now_ns = time.monotonic_ns()
            for event in events:
                if isinstance(event, BasicDeliver):
                    received += 1
                    last_tag = event.delivery_tag
                    if m0_ns <= now_ns < m1_ns:
                        measured += 1
                    stamp = _STAMP.unpack_from(event.body)[0]
                    if m0_ns <= stamp < m1_ns:
                        latencies.append(now_ns - stamp)
                elif isinstance(event, ConnectionClose):
                    raise AmqpBenchError(f"broker closed: {event.reply_text}")
            if last_tag > acked_tag:
                sock.sendall(codec.send(BasicAck(channel=1, delivery_tag=last_tag, multiple=True)))
                acked_tag = last_tag
                last_progress = time.monotonic()
        if cpu1 is None:
            cpu1 = _cpu()
        try:
            sock.settimeout(5.0)
            sock.sendall(codec.send(QueueDelete(channel=1, queue=queue_name, nowait=True)))
        except OSError:
            pass
        sock.close()
        reports.put(
            {
                "role": "consumer",
                "received": received,
                "received_measured": measured,
                "latencies_ns": latencies,
                "cpu_s": cpu1 - (cpu0 or cpu1),
            }
        )
    except BaseException as exc:
        ready.value = -1
        reports.put({"role": "consumer", "error": f"{type(exc).__name__}: {exc}"})


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index] / 1e6


def run_amqp_persistent(
    spec: AmqpSpec, host: str, port: int, broker_pid: int | None = None
) -> dict[str, Any]:
    """Run the scenario against the AMQP broker at ``host:port``; a JSON-able result."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.RawValue(ctypes.c_int64, 0)
    total = ctx.RawValue(ctypes.c_int64, -1)
    pub_ready = ctx.RawValue(ctypes.c_int, 0)
    con_ready = ctx.RawValue(ctypes.c_int, 0)
    reports: Any = ctx.Queue()
    queue_name = f"bench-{secrets.token_hex(4)}"
    consumer = ctx.Process(
        target=_consumer,
        args=(host, port, queue_name, spec, start, con_ready, total, reports),
        daemon=True,
    )
    publisher = ctx.Process(
        target=_publisher,
        args=(host, port, queue_name, spec, start, pub_ready, reports),
        daemon=True,
    )
    broker = BrokerProcess(broker_pid) if broker_pid else None
    collected: dict[str, dict[str, Any]] = {}

    def take(timeout: float) -> None:
        try:
            report = reports.get(timeout=timeout)
        except queue.Empty:
            return
        if report.get("error"):
            raise AmqpBenchError(f"{report['role']}: {report['error']}")
        collected[report["role"]] = report

    try:
        consumer.start()
        publisher.start()
        deadline = time.monotonic() + _SETUP_TIMEOUT
        while not (pub_ready.value == 1 and con_ready.value == 1):
            take(0.01)
            if time.monotonic() > deadline:
                raise AmqpBenchError("workers did not connect in time (is the broker up?)")
        t_start = time.monotonic() + 0.2
        start.value = int(t_start * 1e9)
        m0 = t_start + spec.warmup
        m1 = m0 + spec.duration
        _sleep_until(m0)
        cpu0 = broker.cpu_seconds() if broker else 0.0
        _sleep_until(m1)
        cpu1 = broker.cpu_seconds() if broker else 0.0
        rss = broker.rss_kib() if broker else None
        deadline = time.monotonic() + 60.0
        while "publisher" not in collected:
            take(0.1)
            if time.monotonic() > deadline:
                raise AmqpBenchError("the publisher did not report")
        total.value = collected["publisher"]["published"]
        deadline = time.monotonic() + 60.0
        while "consumer" not in collected:
            take(0.1)
            if time.monotonic() > deadline:
                raise AmqpBenchError("the consumer did not report")
    finally:
        for proc in (publisher, consumer):
            proc.join(5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
    pub, con = collected["publisher"], collected["consumer"]
    duration = spec.duration
    broker_cpu = cpu1 - cpu0 if broker else None
    delivered_rate = con["received_measured"] / duration
    lost = pub["confirmed"] - pub["nacked"] - con["received"]
    notes = []
    if pub["nacked"]:
        notes.append(f"{pub['nacked']} publishes nacked")
    if pub["confirmed"] != pub["published"]:
        notes.append(f"{pub['published'] - pub['confirmed']} publishes never confirmed")
    if lost > 0:
        notes.append(f"{lost} confirmed messages not consumed")
    lat, clat = con["latencies_ns"], pub["confirm_latencies_ns"]
    return {
        "scenario": spec.name,
        "host": host,
        "port": port,
        "params": spec.params(),
        "duration_s": duration,
        "messages": {
            "published": pub["published"],
            "confirmed": pub["confirmed"],
            "nacked": pub["nacked"],
            "consumed": con["received"],
            "lost": max(0, lost),
        },
        "published_per_s": pub["published_measured"] / duration,
        "confirmed_per_s": pub["confirmed_measured"] / duration,
        "delivered_per_s": delivered_rate,
        "latency_ms": {
            "samples": len(lat),
            "p50": _percentile(lat, 50),
            "p99": _percentile(lat, 99),
            "max": max(lat) / 1e6 if lat else None,
        },
        "confirm_latency_ms": {
            "samples": len(clat),
            "p50": _percentile(clat, 50),
            "p99": _percentile(clat, 99),
        },
        "broker": None
        if broker_cpu is None
        else {
            "pid": broker_pid,
            "cpu_s": broker_cpu,
            "cpu_percent": 100.0 * broker_cpu / duration,
            "rss_kib": rss,
            "msgs_per_cpu_s": con["received_measured"] / broker_cpu if broker_cpu else None,
        },
        "generator": {
            "publisher_cpu_percent": 100.0 * pub["cpu_s"] / duration,
            "consumer_cpu_percent": 100.0 * con["cpu_s"] / duration,
        },
        "notes": notes,
    }
