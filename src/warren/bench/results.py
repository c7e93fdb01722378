"""What one benchmark run measured; :meth:`BenchResult.to_json` is the ``--json`` shape.

Rates are taken over the measured interval only (after the warm-up, before STOP);
message totals and loss over the whole run, after the subscribers have drained.
``delivered`` counts deliveries (one per matching subscriber), which is the broker's
work in fan-out; ``msgs_per_broker_cpu_s`` is deliveries per broker CPU second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BenchResult",
    "BrokerUsage",
    "ConnectionFigures",
    "GeneratorProcess",
    "LatencySummary",
    "MessageCounts",
]


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """Whole-run totals. ``expected`` is what every subscriber should have received."""

    published: int
    expected_per_subscriber: int
    delivered: int
    lost: int
    per_subscriber: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BrokerUsage:
    """The broker process over the measured interval (from ``/proc/PID``)."""

    pid: int
    cpu_s: float
    cpu_percent: float
    rss_kib_before: int
    rss_kib_after: int


@dataclass(frozen=True, slots=True)
class GeneratorProcess:
    """One load-generator process's CPU over its own view of the measured interval."""

    role: str
    process: int
    connections: int
    cpu_s: float
    cpu_user_s: float
    cpu_sys_s: float
    wall_s: float

    @property
    def cpu_percent(self) -> float:
        """CPU time as a percentage of one core."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Publish-to-delivery latency in microseconds (send time carried in the payload)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float

    @classmethod
    def from_ns(cls, samples: Sequence[int]) -> LatencySummary | None:
        if not samples:
            return None
        ordered = sorted(samples)
        n = len(ordered)

        def rank(q: float) -> float:
            # nearest rank: the smallest sample with at least q of all samples <= it
            index = min(n - 1, max(0, math.ceil(q * n) - 1))
            return ordered[index] / 1000.0

        return cls(
            count=n,
            mean=sum(ordered) / n / 1000.0,
            p50=rank(0.50),
            p90=rank(0.90),
            p99=rank(0.99),
            p99_9=rank(0.999),
            max=ordered[-1] / 1000.0,
        )


@dataclass(frozen=True, slots=True)
class ConnectionFigures:
    """The ``connections`` scenario: how fast idle connections open, what they cost."""

    requested: int
    connected: int
    failed: int
    connect_s: float
    connects_per_s: float
    broker_connect_cpu_s: float | None
    broker_idle_cpu_percent: float | None
    rss_kib_before: int | None
    rss_kib_after: int | None
    rss_mib_per_1000: float | None


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One run of one scenario against one broker."""

    scenario: str
    host: str
    port: int
    params: dict[str, Any]
    duration_s: float
    messages: MessageCounts | None
    published_per_s: float | None
    delivered_per_s: float | None
    broker: BrokerUsage | None
    generator: tuple[GeneratorProcess, ...]
    latency_us: LatencySummary | None = None
    connections: ConnectionFigures | None = None
    other_cpu_percent: float | None = None  # CPU used by neither broker nor generator
    notes: tuple[str, ...] = field(default=())

    @property
    def msgs_per_broker_cpu_s(self) -> float | None:
        """Deliveries per broker CPU second over the measured interval."""
        if self.broker is None or self.delivered_per_s is None or self.broker.cpu_s <= 0:
            return None
        return self.delivered_per_s * self.duration_s / self.broker.cpu_s

    @property
    def generator_max_cpu_percent(self) -> float:
        """The busiest generator process, in percent of one core."""
        return max((p.cpu_percent for p in self.generator), default=0.0)

    @property
    def generator_total_cpu_percent(self) -> float:
        """All generator processes together, in percent of one core."""
        return sum(p.cpu_percent for p in self.generator)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the ``--json`` output."""
        data: dict[str, Any] = {
            "scenario": self.scenario,
            "target": {"host": self.host, "port": self.port},
            "params": self.params,
            "duration_s": self.duration_s,
            "messages": dataclasses.asdict(self.messages) if self.messages else None,
            "published_per_s": self.published_per_s,
            "delivered_per_s": self.delivered_per_s,
            "msgs_per_broker_cpu_s": self.msgs_per_broker_cpu_s,
            "broker": dataclasses.asdict(self.broker) if self.broker else None,
            "generator": {
                "max_cpu_percent": self.generator_max_cpu_percent,
                "total_cpu_percent": self.generator_total_cpu_percent,
                "processes": [
                    dataclasses.asdict(p) | {"cpu_percent": p.cpu_percent}
                    for p in self.generator
                ],
            },
            "latency_us": dataclasses.asdict(self.latency_us) if self.latency_us else None,
            "connections": dataclasses.asdict(self.connections) if self.connections else None,
            "other_cpu_percent": self.other_cpu_percent,
            "notes": list(self.notes),
        }
        if data["messages"] is not None:
            data["messages"]["per_subscriber"] = list(self.messages.per_subscriber)  # type: ignore[union-attr]
        return data
