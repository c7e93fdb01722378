"""Benchmark results for people (a rich table) and for programs (``--json``)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from .results import BenchResult

__all__ = ["dumps", "print_result", "result_table"]


def dumps(results: BenchResult | list[BenchResult]) -> str:
    """The ``--json`` output: one object, or a list for several runs."""
    data: Any = (
        [r.to_json() for r in results] if isinstance(results, list) else results.to_json()
    )
    return json.dumps(data, indent=2)


def _num(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def result_table(result: BenchResult) -> Table:
    """One run as a two-column table: what was measured, and the value."""
    params = result.params
    title = f"warren bench {result.scenario} -> {result.host}:{result.port}"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if result.connections is None:
        shape = (
            f"{params['publishers']} pub -> {params['subscribers']} sub, "
            f"{params['payload']} B, QoS {params['qos']}/{params['sub_qos']}, "
            f"MQTT {params['mqtt_version']}, "
            + (f"closed loop (window {params['window']})" if params["closed_loop"]
               else "open loop")
            + (f", {params['rate']:g} msg/s" if params["rate"] else "")
        )
        table.add_row("scenario", shape)
        table.add_row("measured for", _num(result.duration_s, 2, " s"))
        table.add_row("published msgs/s", _num(result.published_per_s))
        table.add_row("delivered msgs/s", _num(result.delivered_per_s))
        if result.messages is not None:
            m = result.messages
            table.add_row(
                "published / delivered / lost (whole run)",
                f"{m.published:,} / {m.delivered:,} / {m.lost:,}",
            )
    if result.broker is not None:
        b = result.broker
        table.add_row("broker CPU", f"{b.cpu_s:.2f} s ({b.cpu_percent:.0f}% of a core)")
        table.add_row("msgs per broker CPU second", _num(result.msgs_per_broker_cpu_s))
        table.add_row("broker RSS", f"{b.rss_kib_before / 1024:.1f} -> "
                                    f"{b.rss_kib_after / 1024:.1f} MiB")
    if result.latency_us is not None:
        lat = result.latency_us
        table.add_row(
            "latency p50 / p99 / p99.9 / max",
            f"{lat.p50:,.0f} / {lat.p99:,.0f} / {lat.p99_9:,.0f} / {lat.max:,.0f} us",
        )
        table.add_row("latency samples", f"{lat.count:,}")
    if result.connections is not None:
        c = result.connections
        table.add_row("connections", f"{c.connected:,} of {c.requested:,} ({c.failed} failed)")
        table.add_row("connect rate", _num(c.connects_per_s, 0, " conn/s"))
        if c.rss_kib_before is not None and c.rss_kib_after is not None:
            table.add_row(
                "broker RSS",
                f"{c.rss_kib_before / 1024:.1f} -> {c.rss_kib_after / 1024:.1f} MiB",
            )
        table.add_row("broker RSS per 1,000 connections", _num(c.rss_mib_per_1000, 2, " MiB"))
        table.add_row("broker CPU to connect", _num(c.broker_connect_cpu_s, 2, " s"))
        table.add_row("broker CPU while idle", _num(c.broker_idle_cpu_percent, 1, "%"))
    for proc in result.generator:
        table.add_row(
            f"generator {proc.role} #{proc.process} ({proc.connections} conn)",
            f"{proc.cpu_s:.2f} s CPU ({proc.cpu_percent:.0f}% of a core; "
            f"sys {proc.cpu_sys_s:.2f} s)",
        )
    if result.generator:
        table.add_row(
            "generator CPU max / total",
            f"{result.generator_max_cpu_percent:.0f}% / "
            f"{result.generator_total_cpu_percent:.0f}% of a core",
        )
    if result.other_cpu_percent is not None:
        table.add_row(
            "other processes on the machine", f"{result.other_cpu_percent:.0f}% of a core"
        )
    for note in result.notes:
        table.add_row("[yellow]note[/yellow]", note)
    return table


def print_result(result: BenchResult, console: Console | None = None) -> None:
    """Print :func:`result_table` to the terminal."""
    (console or Console()).print(result_table(result))
