"""The benchmark scenarios and the controller that runs them.

A publish/subscribe run (:class:`PubSubSpec`) goes: start the subscriber processes
and wait until every subscription is acknowledged; start the publisher processes and
wait until they are connected; publish for ``warmup`` seconds (RUN), then for
``duration`` seconds (MEASURE: rates, broker CPU and generator CPU are taken over
this interval only); STOP the publishers, let the subscribers drain, count loss.

Named presets (:data:`PRESETS`): ``fanin`` (P publishers, one subscriber on a
wildcard), ``fanout`` (one publisher, S subscribers), ``qos1`` (QoS 1 both ways with
a bounded in-flight window), ``latency`` (fixed rate, send time in the payload).
``connections`` (:class:`ConnectionsSpec`) opens C idle connections and measures the
connect rate and the broker's resident memory per 1,000 connections.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.context
import os
import queue
import resource
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any, Final

from .procstat import BrokerProcess, machine_busy_seconds
from .results import (
    BenchResult,
    BrokerUsage,
    ConnectionFigures,
    GeneratorProcess,
    LatencySummary,
    MessageCounts,
)
from .workers import (
    Board,
    Endpoint,
    IdlePlan,
    Phase,
    PublisherPlan,
    Report,
    SubscriberPlan,
    idle_main,
    publisher_main,
    subscriber_main,
)

__all__ = [
    "PRESETS",
    "BenchError",
    "ConnectionsSpec",
    "PubSubSpec",
    "Target",
    "raise_open_files_limit",
    "run_connections",
    "run_pubsub",
]

_READY_TIMEOUT: Final = 60.0  # seconds for workers to connect and subscribe
_DRAIN_IDLE: Final = 1.0  # stop waiting for the subscribers after this long without progress
_DRAIN_MAX: Final = 10.0
_JOIN_TIMEOUT: Final = 15.0


class BenchError(Exception):
    """The run could not be carried out; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """The broker under test. Without a pid there are no broker CPU or memory figures."""

    host: str = "127.0.0.1"
    port: int = 1883
    broker_pid: int | None = None


@dataclass(frozen=True, slots=True)
class PubSubSpec:
    """A publish/subscribe scenario; every subscriber receives every message."""

    name: str
    publishers: int = 1
    subscribers: int = 1
    payload: int = 64
    qos: int = 0  # publishers' QoS
    sub_qos: int = 0  # subscriptions' QoS
    wildcard: bool = True  # subscribe to bench/+ (else to the one topic, 1 publisher)
    rate: float = 0.0  # total messages/s over all publishers; 0 = as fast as allowed
    stamps: bool = False  # send time in the payload, latency percentiles
    window: int = 2000  # closed loop: most messages published ahead of the slowest sub
    open_loop: bool = False
    inflight: int = 100  # QoS 1: most unacknowledged PUBLISH per publisher connection
    batch: int = 0  # messages per write; 0 = from the window
    pub_procs: int = 0  # 0 = min(publishers, 2)
    sub_procs: int = 0  # 0 = min(subscribers, 2)
    duration: float = 5.0
    warmup: float = 1.0
    protocol_level: int = 4
    keep_alive: int = 60

    def check(self) -> None:
        """Raise :class:`BenchError` for combinations that cannot run."""
        if self.publishers < 1 or self.subscribers < 1:
            raise BenchError("need at least one publisher and one subscriber")
        if not self.wildcard and self.publishers != 1:
            raise BenchError("an exact-topic subscription needs exactly one publisher")
        if self.stamps and self.payload < 8:
            raise BenchError("latency needs a payload of at least 8 bytes (the send time)")
        if self.qos not in (0, 1) or self.sub_qos not in (0, 1):
            raise BenchError("QoS must be 0 or 1")
        if self.duration <= 0:
            raise BenchError("the duration must be positive")

    def params(self) -> dict[str, Any]:
        """The parameters as reported with the results."""
        data = dataclasses.asdict(self)
        data["mqtt_version"] = "5.0" if self.protocol_level == 5 else "3.1.1"
        data["closed_loop"] = not self.open_loop
        data["pub_procs"], data["sub_procs"] = self.processes()
        data["batch"] = self.batch_size()
        return data

    def processes(self) -> tuple[int, int]:
        pubs = self.pub_procs or min(self.publishers, 2)
        subs = self.sub_procs or min(self.subscribers, 2)
        return min(pubs, self.publishers), min(subs, self.subscribers)

    def batch_size(self) -> int:
        if self.batch:
            return self.batch
        batch = 256 if self.open_loop else max(1, min(256, self.window // (4 * self.publishers)))
        if self.qos:
            batch = min(batch, max(1, self.inflight // 2))
        return batch


@dataclass(frozen=True, slots=True)
class ConnectionsSpec:
    """``count`` idle connections with keep-alive, opened ``concurrency`` at a time."""

    count: int = 5000
    concurrency: int = 100
    hold: float = 5.0
    procs: int = 1
    protocol_level: int = 4
    keep_alive: int = 60
    name: str = "connections"

    def params(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mqtt_version"] = "5.0" if self.protocol_level == 5 else "3.1.1"
        return data


def _split(items: Sequence[int], parts: int) -> list[tuple[int, ...]]:
    """Deal ``items`` round-robin into ``parts`` non-empty tuples."""
    return [tuple(items[i::parts]) for i in range(parts) if items[i::parts]]


class _Run:
    """Worker processes, the shared board and the report queue of one run."""

    def __init__(self, publishers: int, subscribers: int, processes: int) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.board = Board(
            phase=self.ctx.RawValue(ctypes.c_int, Phase.CONNECT),
            sent=self.ctx.RawArray(ctypes.c_int64, max(1, publishers)),
            received=self.ctx.RawArray(ctypes.c_int64, max(1, subscribers)),
            ready=self.ctx.RawArray(ctypes.c_int64, max(1, processes)),
        )
        if subscribers == 0:
            # No subscriber: nothing holds a closed-loop publisher back.
            self.board.received[0] = 1 << 62
        self.reports: Queue[Report] = self.ctx.Queue()
        self.procs: list[multiprocessing.context.SpawnProcess] = []
        self.collected: list[Report] = []

    def start(self, target: Callable[..., None], plan: Any, name: str) -> None:
        proc = self.ctx.Process(
            target=target, args=(plan, self.board, self.reports), name=name, daemon=True
        )
        proc.start()
        self.procs.append(proc)

    def set_phase(self, phase: Phase) -> None:
        self.board.phase.value = phase

    def poll(self, timeout: float = 0.0) -> None:
        """Collect reports; raise :class:`BenchError` if a worker failed or died."""
        try:
            while True:
                report = self.reports.get(timeout=timeout) if timeout else self.reports.get_nowait()
                timeout = 0.0
                self.collected.append(report)
                if report.get("error"):
                    raise BenchError(
                        f"{report['role']} process {report['process']}: {report['error']}"
                    )
        except queue.Empty:
            pass
        for proc in self.procs:
            reported = any(
                r.get("process") == self._index(proc) and r.get("role") == self._role(proc)
                for r in self.collected
            )
            if proc.exitcode is not None and not reported:
                # The report may still be in the pipe: one more look before failing.
                self._drain_reports()
                reported = any(
                    r.get("process") == self._index(proc) and r.get("role") == self._role(proc)
                    for r in self.collected
                )
                if not reported:
                    raise BenchError(f"{proc.name} exited with code {proc.exitcode}")

    def _drain_reports(self) -> None:
        try:
            while True:
                self.collected.append(self.reports.get(timeout=0.2))
        except queue.Empty:
            pass

    @staticmethod
    def _role(proc: multiprocessing.context.SpawnProcess) -> str:
        return proc.name.split("-")[0]

    @staticmethod
    def _index(proc: multiprocessing.context.SpawnProcess) -> int:
        return int(proc.name.split("-")[1])

    def wait_ready(self, indexes: range, deadline: float) -> None:
        ready = self.board.ready
        while not all(ready[i] for i in indexes):
            if time.monotonic() > deadline:
                raise BenchError("workers did not connect in time (is the broker running?)")
            self.poll(0.005)

    def wait_reports(self, role: str, count: int, deadline: float) -> list[Report]:
        while True:
            reports = [r for r in self.collected if r.get("role") == role]
            if len(reports) >= count:
                return reports
            if time.monotonic() > deadline:
                raise BenchError(f"{role} processes did not report in time")
            self.poll(0.05)

    def close(self, aborted: bool) -> None:
        if aborted:
            self.set_phase(Phase.ABORT)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for proc in self.procs:
            while proc.is_alive() and time.monotonic() < deadline:
                # Keep the queue drained: a worker blocks on exit until its report is read.
                with contextlib.suppress(BenchError):
                    self.poll(0.05)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        self.reports.close()


def _generator(reports: list[Report]) -> tuple[GeneratorProcess, ...]:
    return tuple(
        GeneratorProcess(
            role=r["role"],
            process=r["process"],
            connections=r["connections"],
            cpu_s=r.get("cpu_s", 0.0),
            cpu_user_s=r.get("cpu_user_s", 0.0),
            cpu_sys_s=r.get("cpu_sys_s", 0.0),
            wall_s=r.get("wall_s", 0.0),
        )
        for r in sorted(reports, key=lambda r: (r["role"], r["process"]))
    )


def run_pubsub(spec: PubSubSpec, target: Target) -> BenchResult:
    """Run a publish/subscribe scenario against ``target`` and return what it measured."""
    spec.check()
    pub_procs, sub_procs = spec.processes()
    run = _Run(spec.publishers, spec.subscribers, pub_procs + sub_procs)
    broker = BrokerProcess(target.broker_pid) if target.broker_pid else None
    endpoint = Endpoint(target.host, target.port, spec.protocol_level, spec.keep_alive)
    prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
    topics = [f"bench/{prefix}/p{i:05d}" for i in range(spec.publishers)]
    topic_filter = f"bench/{prefix}/+" if spec.wildcard else topics[0]
    aborted = True
    try:
        for process, slots in enumerate(_split(range(spec.subscribers), sub_procs)):
            plan = SubscriberPlan(
                endpoint, process, slots, topic_filter, spec.sub_qos, spec.stamps, prefix
            )
            run.start(subscriber_main, plan, f"subscriber-{process}")
        sub_count = len(run.procs)
        deadline = time.monotonic() + _READY_TIMEOUT
        run.wait_ready(range(sub_count), deadline)
        window = 0 if spec.open_loop else spec.window
        for process, slots in enumerate(_split(range(spec.publishers), pub_procs)):
            plan_p = PublisherPlan(
                endpoint,
                sub_count + process,
                slots,
                tuple(topics[i] for i in slots),
                spec.payload,
                spec.qos,
                window,
                spec.batch_size(),
                spec.inflight,
                spec.rate / spec.publishers,
                spec.stamps,
                prefix,
            )
            run.start(publisher_main, plan_p, f"publisher-{sub_count + process}")
        run.wait_ready(range(sub_count, len(run.procs)), deadline)

        board = run.board
        run.set_phase(Phase.RUN)
        _sleep(run, spec.warmup)
        run.set_phase(Phase.MEASURE)
        t0 = time.monotonic()
        cpu0 = broker.cpu_seconds() if broker else 0.0
        rss0 = broker.rss_kib() if broker else 0
        sent0, received0 = sum(board.sent), sum(board.received)
        busy0 = machine_busy_seconds()
        _sleep(run, spec.duration)
        busy1 = machine_busy_seconds()
        sent1, received1 = sum(board.sent), sum(board.received)
        cpu1 = broker.cpu_seconds() if broker else 0.0
        rss1 = broker.rss_kib() if broker else 0
        t1 = time.monotonic()
        run.set_phase(Phase.STOP)

        pub_reports = run.wait_reports(
            "publisher", len(run.procs) - sub_count, time.monotonic() + _JOIN_TIMEOUT + 10
        )
        published = sum(r["sent"] for r in pub_reports)
        notes: list[str] = []
        if spec.qos:
            acked = sum(r["acked"] or 0 for r in pub_reports)
            if acked != published:
                notes.append(f"{published - acked} QoS 1 PUBLISH not acknowledged")
        _drain(run, published)
        run.set_phase(Phase.EXIT)
        sub_reports = run.wait_reports("subscriber", sub_count, time.monotonic() + _JOIN_TIMEOUT)
        aborted = False
    finally:
        run.close(aborted)

    per_subscriber = [0] * spec.subscribers
    latencies: list[int] = []
    for report in sub_reports:
        for slot, count in zip(report["slots"], report["received"], strict=True):
            per_subscriber[slot] = count
        latencies.extend(report["latencies_ns"])
    lost = sum(max(0, published - count) for count in per_subscriber)
    duplicates = sum(max(0, count - published) for count in per_subscriber)
    if duplicates:
        notes.append(f"{duplicates} more messages received than published")
    if lost:
        mode = "open loop" if spec.open_loop else "closed loop"
        notes.append(f"{lost} messages lost ({mode})")
    elapsed = t1 - t0
    usage = (
        BrokerUsage(target.broker_pid, cpu1 - cpu0, 100.0 * (cpu1 - cpu0) / elapsed, rss0, rss1)
        if broker and target.broker_pid
        else None
    )
    generator = _generator(pub_reports + sub_reports)
    other = None
    if broker is not None:
        other = 100.0 * (busy1 - busy0 - (cpu1 - cpu0) - sum(p.cpu_s for p in generator)) / elapsed
        if other > 25.0:
            notes.append(
                f"other processes used {other:.0f}% of a core during the measurement"
            )
    return BenchResult(
        scenario=spec.name,
        host=target.host,
        port=target.port,
        params=spec.params(),
        duration_s=elapsed,
        messages=MessageCounts(
            published=published,
            expected_per_subscriber=published,
            delivered=sum(per_subscriber),
            lost=lost,
            per_subscriber=tuple(per_subscriber),
        ),
        published_per_s=(sent1 - sent0) / elapsed,
        delivered_per_s=(received1 - received0) / elapsed,
        broker=usage,
        generator=generator,
        latency_us=LatencySummary.from_ns(latencies),
        other_cpu_percent=max(0.0, other) if other is not None else None,
        notes=tuple(notes),
    )


def _sleep(run: _Run, seconds: float) -> None:
    """Sleep while watching for failed workers."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        run.poll(min(left, 0.1))


def _drain(run: _Run, published: int) -> None:
    """Wait until every subscriber has counted ``published`` messages, or progress stops."""
    received = run.board.received
    last = -1
    last_change = start = time.monotonic()
    while True:
        counts = list(received)
        if min(counts) >= published:
            return
        now = time.monotonic()
        total = sum(counts)
        if total != last:
            last, last_change = total, now
        elif now - last_change > _DRAIN_IDLE or now - start > _DRAIN_MAX:
            return
        run.poll(0.01)


def run_connections(spec: ConnectionsSpec, target: Target) -> BenchResult:
    """Open ``spec.count`` idle connections; connect rate and broker memory per 1,000."""
    if spec.count < 1 or spec.procs < 1:
        raise BenchError("need at least one connection and one process")
    raise_open_files_limit(spec.count // spec.procs + 64)
    broker = BrokerProcess(target.broker_pid) if target.broker_pid else None
    endpoint = Endpoint(target.host, target.port, spec.protocol_level, spec.keep_alive)
    prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
    counts = [len(s) for s in _split(range(spec.count), spec.procs)]
    run = _Run(0, 0, len(counts))
    aborted = True
    try:
        for process, count in enumerate(counts):
            plan = IdlePlan(endpoint, process, count, max(1, spec.concurrency // len(counts)),
                            prefix)
            run.start(idle_main, plan, f"connections-{process}")
        # The workers wait for RUN before connecting.
        rss0 = broker.rss_kib() if broker else None
        cpu0 = broker.cpu_seconds() if broker else 0.0
        run.set_phase(Phase.RUN)
        deadline = time.monotonic() + _READY_TIMEOUT + spec.count / 100
        run.wait_ready(range(len(counts)), deadline)
        cpu1 = broker.cpu_seconds() if broker else 0.0
        _sleep(run, min(1.0, spec.hold))
        rss1 = broker.rss_kib() if broker else None
        t_hold = time.monotonic()
        _sleep(run, max(0.0, spec.hold - 1.0))
        cpu2 = broker.cpu_seconds() if broker else 0.0
        held = time.monotonic() - t_hold
        if broker is not None and rss1 is not None:
            rss1 = max(rss1, broker.rss_kib())
        run.set_phase(Phase.EXIT)
        reports = run.wait_reports("connections", len(counts), time.monotonic() + _JOIN_TIMEOUT)
        aborted = False
    finally:
        run.close(aborted)

    connected = sum(r["connected"] for r in reports)
    failed = sum(r["failed"] for r in reports)
    started = min(r["connect_started"] for r in reports)
    finished = max(r["connect_finished"] for r in reports)
    connect_s = finished - started
    notes = [f"connect failures: {'; '.join(r['failures'])}" for r in reports if r["failures"]]
    per_1000 = (
        (rss1 - rss0) / 1024 * 1000 / connected
        if rss0 is not None and rss1 is not None and connected
        else None
    )
    figures = ConnectionFigures(
        requested=spec.count,
        connected=connected,
        failed=failed,
        connect_s=connect_s,
        connects_per_s=connected / connect_s if connect_s > 0 else 0.0,
        broker_connect_cpu_s=cpu1 - cpu0 if broker else None,
        broker_idle_cpu_percent=100.0 * (cpu2 - cpu1) / held if broker and held > 0 else None,
        rss_kib_before=rss0,
        rss_kib_after=rss1,
        rss_mib_per_1000=per_1000,
    )
    return BenchResult(
        scenario=spec.name,
        host=target.host,
        port=target.port,
        params=spec.params(),
        duration_s=connect_s,
        messages=None,
        published_per_s=None,
        delivered_per_s=None,
        broker=None,
        generator=_generator(reports),
        connections=figures,
        notes=tuple(notes),
    )


def raise_open_files_limit(wanted: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (up to the hard limit).

    Processes started afterwards (workers, brokers started by ``compare``) inherit it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


PRESETS: Final[dict[str, PubSubSpec]] = {
    "fanin": PubSubSpec("fanin", publishers=4, subscribers=1, wildcard=True),
    "fanout": PubSubSpec("fanout", publishers=1, subscribers=10, wildcard=False),
    # The window stays below the 1,000 QoS 1 messages a broker typically queues per
    # subscriber (mosquitto's and Warren's max_queued_messages), so a closed loop
    # never makes a broker drop.
    "qos1": PubSubSpec(
        "qos1", publishers=1, subscribers=1, qos=1, sub_qos=1, wildcard=False, window=500
    ),
    "latency": PubSubSpec(
        "latency", publishers=1, subscribers=1, rate=5000.0, stamps=True, wildcard=False
    ),
}
