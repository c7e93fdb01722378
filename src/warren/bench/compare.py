"""Warren against Debian's mosquitto: the same scenarios, interleaved, medians and ratios.

Every run gets a fresh broker on an ephemeral loopback port, started here: Warren as
``python -m warren.cli.main serve`` with a configuration of one MQTT listener (its
ready file gives the port and pid), mosquitto
with a two-line configuration (``listener PORT 127.0.0.1``, ``allow_anonymous
true``); both otherwise with their defaults, one process each. Repetition ``r`` of
scenario ``i`` runs the brokers in the order Warren, mosquitto when ``r + i`` is
even and the other way round otherwise, so drift on the machine hits both alike.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.table import Table

from warren import __version__

from .procstat import read_ready_file
from .results import BenchResult
from .scenarios import (
    PRESETS,
    BenchError,
    ConnectionsSpec,
    PubSubSpec,
    Target,
    raise_open_files_limit,
    run_connections,
    run_pubsub,
)

__all__ = ["BROKERS", "Comparison", "RunningBroker", "scenario_names", "start_broker"]

BROKERS: Final = ("warren", "mosquitto")
_START_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 10.0
# Only the listener under test: every other listener is defaulted off by a listener list.
_WARREN_CONFIG: Final = '[[listener]]\nprotocol = "mqtt"\nhost = "127.0.0.1"\nport = 0\n'
_BUSY_MACHINE: Final = 25.0  # % of a core used by others that earns a warning

Spec = PubSubSpec | ConnectionsSpec


def _scenarios(duration: float, warmup: float, connections: int) -> dict[str, Spec]:
    fanin, fanout = PRESETS["fanin"], PRESETS["fanout"]

    def timed(spec: PubSubSpec, name: str) -> PubSubSpec:
        return dataclasses.replace(spec, name=name, duration=duration, warmup=warmup)

    return {
        "fanin64": dataclasses.replace(timed(fanin, "fanin64"), payload=64),
        "fanin1k": dataclasses.replace(timed(fanin, "fanin1k"), payload=1024),
        "fanout10": dataclasses.replace(timed(fanout, "fanout10"), subscribers=10),
        "fanout50": dataclasses.replace(timed(fanout, "fanout50"), subscribers=50),
        "qos1": timed(PRESETS["qos1"], "qos1"),
        "latency": timed(PRESETS["latency"], "latency"),
        "connections": ConnectionsSpec(count=connections, hold=min(3.0, duration)),
    }


def scenario_names() -> list[str]:
    """The scenarios ``compare`` knows, in the order it runs them."""
    return list(_scenarios(1.0, 0.0, 1))


# --- the brokers -----------------------------------------------------------------------


@dataclass(slots=True)
class RunningBroker:
    """A broker process started by :func:`start_broker`."""

    kind: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _start_warren(workdir: Path) -> RunningBroker:
    ready = workdir / "ready.json"
    log_path = workdir / "warren.log"
    config = workdir / "warren.toml"
    config.write_text(_WARREN_CONFIG, encoding="utf-8")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "warren.cli.main", "serve", "--config", str(config),
                "--ready-file", str(ready), "--data-dir", str(workdir / "data"),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"warren did not start:\n{_log_tail(log_path)}")
        time.sleep(0.02)
    info = read_ready_file(ready)
    return RunningBroker("warren", info.host, info.port, proc, log_path)


def _start_mosquitto(binary: str, workdir: Path) -> RunningBroker:
    if shutil.which(binary) is None:
        raise BenchError(f"mosquitto not found at {binary} (apt-get install mosquitto)")
    port = _free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n", encoding="ascii")
    log_path = workdir / "mosquitto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"mosquitto did not start:\n{_log_tail(log_path)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            break
        except OSError:
            time.sleep(0.02)
    return RunningBroker("mosquitto", "127.0.0.1", port, proc, log_path)


@contextmanager
def start_broker(kind: str, mosquitto: str = "/usr/sbin/mosquitto") -> Iterator[RunningBroker]:
    """A fresh ``warren`` or ``mosquitto`` on an ephemeral loopback port, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        workdir = Path(tmp)
        broker = _start_warren(workdir) if kind == "warren" else _start_mosquitto(
            mosquitto, workdir
        )
        try:
            yield broker
        finally:
            broker.stop()


# --- what is compared ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One line of the comparison table."""

    label: str
    unit: str
    higher_is_better: bool | None  # None: context, not a score
    value: Callable[[BenchResult], float | None]
    digits: int = 0


def _lat(name: str) -> Callable[[BenchResult], float | None]:
    def value(result: BenchResult) -> float | None:
        lat = result.latency_us
        return None if lat is None else float(getattr(lat, name))

    return value


def _broker_cpu(result: BenchResult) -> float | None:
    return result.broker.cpu_percent if result.broker else None


def _lost(result: BenchResult) -> float | None:
    return float(result.messages.lost) if result.messages else None


_THROUGHPUT: Final = (
    Metric("delivered msg/s", "", True, lambda r: r.delivered_per_s),
    Metric("msgs per broker CPU second", "", True, lambda r: r.msgs_per_broker_cpu_s),
    Metric("broker CPU", "% of a core", None, _broker_cpu),
    Metric("lost (closed loop)", "", False, _lost),
)
_LATENCY: Final = (
    Metric("latency p50", "us", False, _lat("p50")),
    Metric("latency p99", "us", False, _lat("p99")),
    Metric("latency p99.9", "us", False, _lat("p99_9")),
    Metric("latency max", "us", False, _lat("max")),
    Metric("broker CPU", "% of a core", None, _broker_cpu),
)
_CONNECTIONS: Final = (
    Metric("connects/s", "", True,
           lambda r: r.connections.connects_per_s if r.connections else None),
    Metric("RSS per 1,000 idle connections", "MiB", False,
           lambda r: r.connections.rss_mib_per_1000 if r.connections else None, 2),
)


def _metrics(name: str) -> tuple[Metric, ...]:
    if name == "connections":
        return _CONNECTIONS
    if name == "latency":
        return _LATENCY
    return _THROUGHPUT


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(warren: float | None, mosquitto: float | None) -> str:
    if warren is None or mosquitto is None:
        return "-"
    if mosquitto == 0:
        return "-" if warren == 0 else "inf"
    return f"{warren / mosquitto:.2f}x"


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    metric: Metric
    warren: float | None
    mosquitto: float | None


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine_description(mosquitto: str) -> dict[str, str]:
    """nproc, CPU model, kernel, Python, mosquitto, Warren and uvloop versions."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mosquitto_version = _first_line([mosquitto, "-h"])
    found = re.search(r"version (\S+)", mosquitto_version)
    try:
        uvloop_version = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        uvloop_version = "not installed"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": found.group(1) if found else mosquitto_version,
        "warren": __version__,
        "uvloop": uvloop_version,
        "memory": _mem_total(),
    }


def _mem_total() -> str:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


@dataclass
class Comparison:
    """A comparison run: configure, :meth:`run`, then print or write the results."""

    names: list[str]
    duration: float = 5.0
    warmup: float = 1.0
    reps: int = 3
    connection_count: int = 5000
    mosquitto: str = "/usr/sbin/mosquitto"
    command: str = "warren bench compare"
    results: dict[str, dict[str, list[BenchResult]]] = field(default_factory=dict)
    started: str = ""
    wall_s: float = 0.0

    def run(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Run every scenario ``reps`` times on both brokers, interleaved."""
        specs = _scenarios(self.duration, self.warmup, self.connection_count)
        # The brokers started below inherit the limit: both ends of every connection.
        raise_open_files_limit(self.connection_count + 1024)
        self.started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        begin = time.monotonic()
        for rep in range(self.reps):
            for index, name in enumerate(self.names):
                order = BROKERS if (rep + index) % 2 == 0 else tuple(reversed(BROKERS))
                for kind in order:
                    spec = specs[name]
                    with start_broker(kind, self.mosquitto) as broker:
                        target = Target(broker.host, broker.port, broker.pid)
                        if isinstance(spec, ConnectionsSpec):
                            result = run_connections(spec, target)
                        else:
                            result = run_pubsub(spec, target)
                    self.results.setdefault(name, {}).setdefault(kind, []).append(result)
                    progress(f"[{rep + 1}/{self.reps}] {name:<12} {kind:<10} "
                             + _summary(name, result))
        self.wall_s = time.monotonic() - begin

    def rows(self) -> list[Row]:
        """Medians per scenario and metric."""
        rows = []
        for name in self.names:
            runs = self.results.get(name, {})
            for metric in _metrics(name):
                rows.append(
                    Row(
                        name,
                        metric,
                        _median([metric.value(r) for r in runs.get("warren", [])]),
                        _median([metric.value(r) for r in runs.get("mosquitto", [])]),
                    )
                )
        return rows

    def print_table(self, console: Console | None = None) -> None:
        """The medians and ratios as a rich table."""
        table = Table(
            title=f"Warren vs mosquitto, medians of {self.reps} runs", header_style="bold"
        )
        for column in ("scenario", "metric", "Warren", "mosquitto", "Warren/mosquitto"):
            left = column in ("scenario", "metric")
            table.add_column(column, justify="left" if left else "right")
        for row in self.rows():
            metric = row.metric
            label = metric.label + (f" ({metric.unit})" if metric.unit else "")
            table.add_row(
                row.scenario, label, _fmt(row.warren, metric.digits),
                _fmt(row.mosquitto, metric.digits), _ratio(row.warren, row.mosquitto),
            )
        (console or Console()).print(table)

    def json(self) -> str:
        """Every run's full result."""
        runs = [
            {"scenario": name, "broker": kind, "rep": rep, "result": result.to_json()}
            for name, by_broker in self.results.items()
            for kind, results in by_broker.items()
            for rep, result in enumerate(results)
        ]
        return json.dumps(
            {"machine": machine_description(self.mosquitto), "command": self.command,
             "runs": runs},
            indent=2,
        )

    def _caveat(self) -> list[str]:
        """A warning paragraph when other processes loaded the machine during the runs."""
        other = _median(
            [
                r.other_cpu_percent
                for by_broker in self.results.values()
                for runs in by_broker.values()
                for r in runs
            ]
        )
        if other is None or other < _BUSY_MACHINE:
            return []
        return [
            f"**The machine was shared:** other processes used a median {other:.0f}% of a "
            "core during the measured intervals (last column of the table at the end). "
            "Throughput and latency are then limited by the scheduler as much as by the "
            "brokers, and vary from run to run; messages per broker CPU second is the more "
            "robust figure. Run again on a quiet machine before quoting absolute numbers.",
            "",
        ]

    def markdown(self) -> str:
        """docs/benchmarks.md: command, machine, medians and ratios, generator CPU."""
        machine = machine_description(self.mosquitto)
        out = [
            "# Benchmarks: Warren vs mosquitto",
            "",
            "Written by `warren bench compare`; do not edit by hand, run it again:",
            "",
            "```",
            self.command,
            "```",
            "",
            f"Run on {self.started}, {self.wall_s / 60:.1f} minutes, {self.reps} repetitions "
            f"of every scenario on both brokers, interleaved; {self.duration:g} s measured "
            f"per run after a {self.warmup:g} s warm-up. Medians below.",
            "",
            "## Machine",
            "",
            f"- `nproc`: {machine['nproc']}; CPU: {machine['cpu']}; memory {machine['memory']}",
            f"- Linux {machine['kernel']}, Python {machine['python']}, uvloop "
            f"{machine['uvloop']}",
            f"- Warren {machine['warren']} (defaults, listeners reduced to one: "
            '`[[listener]] protocol = "mqtt"` on 127.0.0.1), '
            f"mosquitto {machine['mosquitto']} (Debian; `listener PORT 127.0.0.1`, "
            "`allow_anonymous true`, defaults otherwise); one process each",
            "",
            "## Results",
            "",
            *self._caveat(),
            "| scenario | metric | Warren | mosquitto | Warren/mosquitto |",
            "|---|---|---:|---:|---:|",
        ]
        for row in self.rows():
            metric = row.metric
            better = {True: ", higher is better", False: ", lower is better", None: ""}[
                metric.higher_is_better
            ]
            unit = f" ({metric.unit})" if metric.unit else ""
            out.append(
                f"| {row.scenario} | {metric.label}{unit}{better} | "
                f"{_fmt(row.warren, metric.digits)} | {_fmt(row.mosquitto, metric.digits)} | "
                f"{_ratio(row.warren, row.mosquitto)} |"
            )
        out += [
            "",
            "## The generator was not the limit",
            "",
            "CPU of the load generator's processes over the measured interval (median of "
            "the runs), in percent of one core: the busiest single process and all of them "
            "together; and the CPU used by other processes on the machine meanwhile.",
            "",
            "| scenario | broker | busiest generator process | all generator processes "
            "| other processes |",
            "|---|---|---:|---:|---:|",
        ]
        for name in self.names:
            for kind in BROKERS:
                runs = self.results.get(name, {}).get(kind, [])
                out.append(
                    f"| {name} | {kind} | "
                    f"{_pct(_median([r.generator_max_cpu_percent for r in runs]))} | "
                    f"{_pct(_median([r.generator_total_cpu_percent for r in runs]))} | "
                    f"{_pct(_median([r.other_cpu_percent for r in runs]))} |"
                )
        out += ["", "## Scenarios", ""]
        specs = _scenarios(self.duration, self.warmup, self.connection_count)
        for name in self.names:
            out.append(f"- **{name}**: {_describe(specs[name])}")
        out += [
            "",
            "## How it is measured",
            "",
            "- Publishers and subscribers are separate processes (multiprocessing, spawn) on "
            "raw non-blocking sockets. PUBLISH frames are pre-encoded with Warren's codec and "
            "written in batches; subscribers count packets by their fixed header, checking "
            "runs of equal-sized frames in bulk. MQTT 3.1.1, clean sessions.",
            "- Closed loop: a publisher waits while it is more than the window ahead of the "
            "slowest subscriber (shared-memory counters), so no broker has to drop; "
            "`lost` counts what a subscriber never received.",
            "- *delivered msg/s* counts deliveries (one per subscriber that got the message) "
            "over the measured interval. *msgs per broker CPU second* divides them by the "
            "broker's utime + stime from `/proc/PID/stat` over the same interval; it is the "
            "fairer number on a shared 2-core machine, where the generator and the broker "
            "compete for the same cores.",
            "- Latency: the publisher writes CLOCK_MONOTONIC into the payload just before "
            "the write, the subscriber subtracts it from the time it parsed the frame.",
            "- Connections: RSS is `VmRSS` of `/proc/PID/status` before connecting and 1 s "
            "after the last CONNACK; connections stay idle with keep-alive 60 s.",
            "",
            "## Every run",
            "",
            "| scenario | broker | rep | delivered msg/s | msgs/broker CPU s | broker CPU % "
            "| p99 us | conn/s | MiB/1,000 conn | lost | generator max % | other load % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in self.names:
            for kind in BROKERS:
                for rep, r in enumerate(self.results.get(name, {}).get(kind, [])):
                    c = r.connections
                    out.append(
                        f"| {name} | {kind} | {rep + 1} | {_fmt(r.delivered_per_s)} | "
                        f"{_fmt(r.msgs_per_broker_cpu_s)} | {_fmt(_broker_cpu(r))} | "
                        f"{_fmt(_lat('p99')(r))} | {_fmt(c.connects_per_s if c else None)} | "
                        f"{_fmt(c.rss_mib_per_1000 if c else None, 2)} | {_fmt(_lost(r))} | "
                        f"{_fmt(r.generator_max_cpu_percent)} | {_fmt(r.other_cpu_percent)} |"
                    )
        return "\n".join(out) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}%"


def _describe(spec: Spec) -> str:
    if isinstance(spec, ConnectionsSpec):
        return (
            f"{spec.count:,} idle connections (keep-alive {spec.keep_alive} s), "
            f"{spec.concurrency} being opened at a time, held {spec.hold:g} s"
        )
    text = (
        f"{spec.publishers} publisher(s) -> {spec.subscribers} subscriber(s), "
        f"{spec.payload} B payload, QoS {spec.qos} publish / QoS {spec.sub_qos} subscription"
    )
    text += ", wildcard subscription" if spec.wildcard else ", exact-topic subscription"
    if spec.rate:
        text += f", {spec.rate:,.0f} msg/s"
    else:
        text += f", closed loop with a window of {spec.window:,} messages"
    if spec.qos:
        text += f", at most {spec.inflight} unacknowledged PUBLISH per publisher"
    return text


def _summary(name: str, result: BenchResult) -> str:
    if result.connections is not None:
        c = result.connections
        return (f"{c.connects_per_s:,.0f} conn/s, "
                f"{_fmt(c.rss_mib_per_1000, 2)} MiB per 1,000")
    text = (f"{_fmt(result.delivered_per_s)} msg/s, "
            f"{_fmt(result.msgs_per_broker_cpu_s)} per broker CPU s, "
            f"gen max {result.generator_max_cpu_percent:.0f}%")
    if result.latency_us is not None:
        text += f", p99 {result.latency_us.p99:,.0f} us"
    if result.messages and result.messages.lost:
        text += f", lost {result.messages.lost:,}"
    return text
