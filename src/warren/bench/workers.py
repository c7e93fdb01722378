"""Load-generator processes: publishers, subscribers and idle connections.

Each worker is a process of its own (``multiprocessing`` with *spawn*) driving one or
more connections with plain non-blocking sockets and a selector (idle connections use
asyncio). Workers and the controller share a :class:`Board` of raw shared-memory
counters, one writer per slot, no locks:

- ``phase``: the controller moves it CONNECT -> RUN -> MEASURE -> STOP -> EXIT
  (or ABORT); workers read it once per loop;
- ``sent[i]``: messages publisher connection ``i`` has committed to its socket;
- ``received[j]``: PUBLISH packets subscriber connection ``j`` has counted;
- ``ready[p]``: set by worker process ``p`` once its connections are up.

Closed loop: before a publisher commits a batch it reads ``sum(sent) -
min(received)``, the number of messages the slowest subscriber has yet to see, and
waits while adding the batch would exceed the window. Each worker measures its own
CPU time (``getrusage``) between MEASURE and STOP and sends it, with its final
counts, on the ``reports`` queue as a plain dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import resource
import selectors
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any, cast

from warren.codecs.mqtt import Connect, Disconnect, MQTTConnection, Role

from .frames import PINGREQ, PUBACK, PUBLISH, FrameRing, PacketScanner, Session, open_session

__all__ = [
    "Board",
    "Endpoint",
    "IdlePlan",
    "Phase",
    "PublisherPlan",
    "SubscriberPlan",
    "idle_main",
    "publisher_main",
    "subscriber_main",
]

Report = dict[str, Any]

_RING_FRAMES = 1024  # frames pre-encoded per publisher connection (QoS 0)
_POLL = 0.05  # longest a worker goes without looking at the phase
_WINDOW_WAIT = 0.0002  # a closed-loop publisher ahead by the window sleeps this long
_FINISH_TIMEOUT = 10.0  # after STOP: finish the batch being written, collect PUBACKs


class Phase(enum.IntEnum):
    """Where a run is; only the controller moves it forward."""

    CONNECT = 0
    RUN = 1  # publishing (warm-up)
    MEASURE = 2  # publishing, measured
    STOP = 3  # publishers finish their batch and report; subscribers keep counting
    EXIT = 4  # everyone disconnects and reports
    ABORT = 5


class WorkerAborted(Exception):
    """The controller gave up on the run."""


@dataclass(frozen=True, slots=True)
class Board:
    """Shared counters (see the module docstring); lives in shared memory."""

    phase: ctypes.c_int
    sent: ctypes.Array[ctypes.c_int64]
    received: ctypes.Array[ctypes.c_int64]
    ready: ctypes.Array[ctypes.c_int64]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect."""

    host: str
    port: int
    protocol_level: int = 4
    keep_alive: int = 60


@dataclass(frozen=True, slots=True)
class PublisherPlan:
    """One publisher process: its connections (board slots) and how they publish."""

    endpoint: Endpoint
    process: int
    slots: tuple[int, ...]
    topics: tuple[str, ...]
    payload_size: int
    qos: int
    window: int  # 0 = open loop
    batch: int  # most messages committed per write
    inflight: int  # QoS 1: most unacknowledged messages per connection
    rate: float  # messages/s per connection; 0 = as fast as allowed
    stamps: bool
    client_prefix: str


@dataclass(frozen=True, slots=True)
class SubscriberPlan:
    """One subscriber process: its connections (board slots) and their subscription."""

    endpoint: Endpoint
    process: int
    slots: tuple[int, ...]
    topic_filter: str
    qos: int
    stamps: bool
    client_prefix: str


@dataclass(frozen=True, slots=True)
class IdlePlan:
    """One process holding ``count`` idle connections."""

    endpoint: Endpoint
    process: int
    count: int
    concurrency: int
    client_prefix: str


class _CpuMeter:
    """This process's CPU time between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None
        self._stop: tuple[float, float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.monotonic(), usage.ru_utime, usage.ru_stime

    def start(self) -> None:
        if self._start is None:
            self._start = self._now()

    def stop(self) -> None:
        if self._start is not None and self._stop is None:
            self._stop = self._now()

    def figures(self) -> Report:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        figures: Report = {"cpu_total_s": usage.ru_utime + usage.ru_stime}
        if self._start is not None:
            stop = self._stop or self._now()
            figures["wall_s"] = stop[0] - self._start[0]
            figures["cpu_user_s"] = stop[1] - self._start[1]
            figures["cpu_sys_s"] = stop[2] - self._start[2]
            figures["cpu_s"] = figures["cpu_user_s"] + figures["cpu_sys_s"]
        return figures


def _run_worker(
    reports: Queue[Report],
    role: str,
    process: int,
    connections: int,
    body: Callable[[_CpuMeter], Report],
) -> None:
    meter = _CpuMeter()
    try:
        report = body(meter)
    except WorkerAborted:
        report = {"error": "aborted"}
    except BaseException as exc:  # reported to the controller, which stops the run
        report = {"error": f"{type(exc).__name__}: {exc}"}
    report.update(role=role, process=process, connections=connections, **meter.figures())
    reports.put(report)
    reports.close()
    reports.join_thread()


def _wait_for(board: Board, phase: Phase) -> None:
    while True:
        current = board.phase.value
        if current == Phase.ABORT:
            raise WorkerAborted
        if current >= phase:
            return
        time.sleep(0.002)


# --- publishers ----------------------------------------------------------------------


class _Outgoing:
    """A publisher connection: its ring of frames and the slice being written."""

    __slots__ = ("committed", "pending", "ring", "scanner", "session", "slot", "view", "writing")

    def __init__(self, session: Session, slot: int, ring: FrameRing, level: int) -> None:
        self.session = session
        self.slot = slot
        self.ring = ring
        self.view = memoryview(ring.data)
        self.committed = 0
        self.pending: memoryview | None = None
        self.writing = False  # registered for EVENT_WRITE
        self.scanner = PacketScanner(PUBACK, protocol_level=level, capacity=64 * 1024)


def publisher_main(plan: PublisherPlan, board: Board, reports: Queue[Report]) -> None:
    """Process entry point: run ``plan`` and put one report on ``reports``."""
    _run_worker(
        reports, "publisher", plan.process, len(plan.slots),
        lambda meter: _publish(plan, board, meter),
    )


def _publish(plan: PublisherPlan, board: Board, meter: _CpuMeter) -> Report:
    endpoint = plan.endpoint
    level = endpoint.protocol_level
    frames = _RING_FRAMES if plan.qos == 0 else max(_RING_FRAMES, plan.inflight + 1)
    conns: list[_Outgoing] = []
    try:
        for slot, topic in zip(plan.slots, plan.topics, strict=True):
            session = open_session(
                endpoint.host, endpoint.port, f"{plan.client_prefix}-pub{slot}",
                protocol_level=level, keep_alive=endpoint.keep_alive,
            )
            ring = FrameRing.build(topic, plan.payload_size, plan.qos, level, frames)
            conns.append(_Outgoing(session, slot, ring, level))
        board.ready[plan.process] = 1
        _wait_for(board, Phase.RUN)
        _publish_loop(plan, board, meter, conns)
        if board.phase.value == Phase.ABORT:
            raise WorkerAborted
        _finish(conns, plan.qos)
        return {
            "sent": sum(c.committed for c in conns),
            "acked": sum(c.scanner.count for c in conns) if plan.qos else None,
        }
    finally:
        for conn in conns:
            conn.session.disconnect()


def _publish_loop(
    plan: PublisherPlan, board: Board, meter: _CpuMeter, conns: list[_Outgoing]
) -> None:
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.session.sock, selectors.EVENT_READ, conn)
    phase_box, sent, received = board.phase, board.sent, board.received
    window, batch, inflight, rate = plan.window, plan.batch, plan.inflight, plan.rate
    qos, stamps = plan.qos, plan.stamps
    ping_every = plan.endpoint.keep_alive / 2 or float("inf")
    started = last_ping = time.monotonic()
    measuring = False
    while True:
        phase = phase_box.value
        if phase != Phase.RUN:
            if phase >= Phase.STOP:
                meter.stop()
                return
            if not measuring:
                meter.start()
                measuring = True
        now = time.monotonic()
        timeout = _POLL
        ping = now - last_ping >= ping_every
        if ping:
            last_ping = now
        for conn in conns:
            if conn.pending is None:
                if ping:
                    conn.pending = memoryview(PINGREQ)
                else:
                    grant = batch
                    if qos:
                        grant = min(grant, inflight - (conn.committed - conn.scanner.count))
                    if rate:
                        due = int((now - started) * rate) - conn.committed
                        if due < grant:
                            grant = due
                            if due <= 0:
                                timeout = min(
                                    timeout, (conn.committed + 1) / rate - (now - started)
                                )
                    if window and grant > 0:
                        ahead = sum(sent) - min(received)
                        if ahead + grant > window:
                            grant = window - ahead
                            if grant <= 0:
                                timeout = min(timeout, _WINDOW_WAIT)
                    if grant > 0:
                        ring = conn.ring
                        first = conn.committed % ring.count
                        grant = min(grant, ring.count - first)
                        if stamps:
                            ring.stamp(first, grant, time.monotonic_ns())
                        size = ring.frame_size
                        conn.pending = conn.view[first * size : (first + grant) * size]
                        conn.committed += grant
                        sent[conn.slot] = conn.committed
            pending = conn.pending
            if pending is not None:
                try:
                    written = conn.session.sock.send(pending)
                except BlockingIOError:
                    written = 0
                if written == len(pending):
                    conn.pending = None
                    timeout = 0.0
                    if conn.writing:
                        conn.writing = False
                        selector.modify(conn.session.sock, selectors.EVENT_READ, conn)
                else:
                    conn.pending = pending[written:]
                    if not conn.writing:
                        conn.writing = True
                        selector.modify(
                            conn.session.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn
                        )
        for key, mask in selector.select(max(timeout, 0.0)):
            if mask & selectors.EVENT_READ:
                reader: _Outgoing = key.data
                try:
                    if not reader.scanner.read_from(reader.session.sock):
                        raise ConnectionError("the broker closed a publisher connection")
                except BlockingIOError:
                    pass


def _finish(conns: list[_Outgoing], qos: int) -> None:
    """Write what was committed; for QoS 1 wait for every PUBACK (bounded)."""
    deadline = time.monotonic() + _FINISH_TIMEOUT
    for conn in conns:
        sock = conn.session.sock
        if conn.pending is not None:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(conn.pending)
            conn.pending = None
        if qos:
            while conn.scanner.count < conn.committed and time.monotonic() < deadline:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    if not conn.scanner.read_from(sock):
                        break
                except TimeoutError:
                    break
        sock.setblocking(False)


# --- subscribers ---------------------------------------------------------------------


class _Incoming:
    """A subscriber connection: its counter and the acknowledgements to write."""

    __slots__ = ("outbox", "scanner", "session", "slot", "writing")

    def __init__(self, session: Session, slot: int, scanner: PacketScanner) -> None:
        self.session = session
        self.slot = slot
        self.scanner = scanner
        self.outbox = bytearray()
        self.writing = False

    def flush(self, selector: selectors.BaseSelector) -> None:
        if self.outbox:
            try:
                written = self.session.sock.send(self.outbox)
            except BlockingIOError:
                written = 0
            del self.outbox[:written]
        want = bool(self.outbox)
        if want != self.writing:
            self.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            selector.modify(self.session.sock, events, self)


def subscriber_main(plan: SubscriberPlan, board: Board, reports: Queue[Report]) -> None:
    """Process entry point: run ``plan`` and put one report on ``reports``."""
    _run_worker(
        reports, "subscriber", plan.process, len(plan.slots),
        lambda meter: _subscribe(plan, board, meter),
    )


def _subscribe(plan: SubscriberPlan, board: Board, meter: _CpuMeter) -> Report:
    endpoint = plan.endpoint
    level = endpoint.protocol_level
    conns: list[_Incoming] = []
    try:
        for slot in plan.slots:
            session = open_session(
                endpoint.host, endpoint.port, f"{plan.client_prefix}-sub{slot}",
                protocol_level=level, keep_alive=endpoint.keep_alive,
                topic_filter=plan.topic_filter, qos=plan.qos,
            )
            scanner = PacketScanner(
                PUBLISH, protocol_level=level, stamps=plan.stamps, ack=plan.qos > 0
            )
            conns.append(_Incoming(session, slot, scanner))
        board.ready[plan.process] = 1
        _subscribe_loop(board, meter, conns, endpoint.keep_alive)
        latencies = array("q")
        for conn in conns:
            latencies.extend(conn.scanner.latencies)
        return {
            "received": [conn.scanner.count for conn in conns],
            "slots": list(plan.slots),
            "latencies_ns": latencies,
        }
    finally:
        for conn in conns:
            conn.session.disconnect()


def _subscribe_loop(
    board: Board, meter: _CpuMeter, conns: list[_Incoming], keep_alive: int
) -> None:
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.session.sock, selectors.EVENT_READ, conn)
    phase_box, received = board.phase, board.received
    ping_every = keep_alive / 2 or float("inf")
    last_ping = time.monotonic()
    measuring = stopped = False
    while True:
        phase = phase_box.value
        if phase == Phase.MEASURE and not measuring:
            measuring = True
            meter.start()
            for conn in conns:
                conn.scanner.record = True
        elif phase >= Phase.STOP and not stopped:
            stopped = True
            meter.stop()
            for conn in conns:
                conn.scanner.record = False
        if phase >= Phase.EXIT:
            if phase == Phase.ABORT:
                raise WorkerAborted
            return
        for key, mask in selector.select(_POLL):
            conn = key.data
            if mask & selectors.EVENT_READ:
                scanner = conn.scanner
                try:
                    if not scanner.read_from(conn.session.sock):
                        raise ConnectionError("the broker closed a subscriber connection")
                except BlockingIOError:
                    continue
                received[conn.slot] = scanner.count
                if scanner.acks:
                    conn.outbox += scanner.acks
                    scanner.acks.clear()
                    conn.flush(selector)
            elif mask & selectors.EVENT_WRITE:
                conn.flush(selector)
        now = time.monotonic()
        if now - last_ping >= ping_every:
            last_ping = now
            for conn in conns:
                conn.outbox += PINGREQ
                conn.flush(selector)


# --- idle connections ----------------------------------------------------------------


class _IdleClient(asyncio.Protocol):
    """Sends CONNECT, waits for a successful CONNACK, then only answers to the phase."""

    def __init__(self, connect: bytes, level: int, connack: asyncio.Future[None]) -> None:
        self._connect = connect
        self._level = level
        self._connack = connack
        self._buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._connect)

    def data_received(self, data: bytes) -> None:
        if self._connack.done():
            return  # PINGRESP
        self._buffer += data
        if len(self._buffer) >= 4 and self._buffer[0] == 0x20:
            code = self._buffer[3]
            if code < (0x80 if self._level == 5 else 0x01):
                self._connack.set_result(None)
            else:
                self._connack.set_exception(ConnectionError(f"CONNACK code 0x{code:02X}"))
        elif len(self._buffer) >= 4:
            self._connack.set_exception(ConnectionError("no CONNACK"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._connack.done():
            self._connack.set_exception(exc or ConnectionError("connection closed"))


def idle_main(plan: IdlePlan, board: Board, reports: Queue[Report]) -> None:
    """Process entry point: open ``plan.count`` idle connections, hold them until EXIT."""

    def body(meter: _CpuMeter) -> Report:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            return asyncio.run(_idle(plan, board, meter))
        return uvloop.run(_idle(plan, board, meter))

    _run_worker(reports, "connections", plan.process, plan.count, body)


def _connect_frame(client_id: str, level: int, keep_alive: int) -> bytes:
    return MQTTConnection(Role.CLIENT).send(
        Connect(client_id, protocol_level=level, keep_alive=keep_alive)
    )


async def _idle(plan: IdlePlan, board: Board, meter: _CpuMeter) -> Report:
    endpoint = plan.endpoint
    level = endpoint.protocol_level
    loop = asyncio.get_running_loop()
    clients: list[_IdleClient] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(plan.concurrency)

    async def open_one(index: int) -> None:
        connect = _connect_frame(f"{plan.client_prefix}-idle{plan.process}-{index}", level,
                                 endpoint.keep_alive)
        async with gate:
            connack: asyncio.Future[None] = loop.create_future()
            client = _IdleClient(connect, level, connack)
            try:
                await loop.create_connection(lambda: client, endpoint.host, endpoint.port)
                await asyncio.wait_for(connack, 30.0)
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                if client.transport is not None:
                    client.transport.abort()
                return
            clients.append(client)

    while board.phase.value < Phase.RUN:
        await asyncio.sleep(0.002)
    meter.start()
    started = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(plan.count)))
    finished = time.monotonic()
    meter.stop()
    board.ready[plan.process] = len(clients) + 1  # 0 = not done yet
    ping_every = endpoint.keep_alive / 2 or float("inf")
    last_ping = time.monotonic()
    while board.phase.value < Phase.EXIT:
        await asyncio.sleep(0.05)
        if time.monotonic() - last_ping >= ping_every:
            last_ping = time.monotonic()
            for client in clients:
                if client.transport is not None:
                    client.transport.write(PINGREQ)
    disconnect = _disconnect_frame(level)
    for client in clients:
        if client.transport is not None:
            with contextlib.suppress(Exception):
                client.transport.write(disconnect)
            client.transport.close()
    await asyncio.sleep(0)
    return {
        "connected": len(clients),
        "failed": len(failures),
        "failures": failures[:5],
        "connect_started": started,
        "connect_finished": finished,
    }


def _disconnect_frame(level: int) -> bytes:
    codec = MQTTConnection(Role.CLIENT)
    codec.send(Connect("bye", protocol_level=level))
    return codec.send(Disconnect())
