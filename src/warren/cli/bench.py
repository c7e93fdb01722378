"""``warren bench``: an MQTT load generator that is not the bottleneck.

Publishers and subscribers run in processes of their own on raw sockets, write
pre-encoded frames in large batches and count received packets by their fixed
header; each reports its CPU time so you can see it was not the limit. Give the
broker's pid (``--broker-pid``, or ``--ready-file`` from ``warren serve``) to get
broker CPU and messages per broker CPU second from /proc.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from warren.bench.procstat import read_ready_file
from warren.bench.reporting import dumps, print_result
from warren.bench.scenarios import (
    PRESETS,
    BenchError,
    ConnectionsSpec,
    PubSubSpec,
    Target,
    run_connections,
    run_pubsub,
)

__all__ = ["bench"]

F = TypeVar("F", bound=Callable[..., Any])

_EPILOG = """\
\b
Examples:
  warren serve --ready-file /tmp/w.json &
  warren bench fanin --ready-file /tmp/w.json              4 publishers -> 1 subscriber
  warren bench fanout -S 50 --ready-file /tmp/w.json       1 publisher -> 50 subscribers
  warren bench qos1 --port 1883 --broker-pid 1234          any broker, pid for CPU figures
  warren bench latency --rate 5000 --json                  p50/p99/p99.9/max as JSON
  warren bench connections -c 10000                        connect rate, RSS per 1,000
  warren bench compare --output docs/benchmarks.md         Warren vs mosquitto
  warren bench amqp-persistent --port 5672 --broker-pid 1234  AMQP confirms, durable queue
  warren bench compare-amqp --output docs/benchmarks.md    Warren vs RabbitMQ (AMQP)
"""


def _target_options(func: F) -> F:
    options = [
        click.option("--host", help="Broker address (default 127.0.0.1)."),
        click.option(
            "--port", "-p", type=click.IntRange(1, 65535), help="Broker MQTT port (default 1883)."
        ),
        click.option(
            "--ready-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A `warren serve --ready-file` file: host, port and broker pid.",
        ),
        click.option(
            "--broker-pid",
            type=int,
            help="The broker's pid, for CPU and memory figures from /proc.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        click.option(
            "-V",
            "--mqtt-version",
            type=click.Choice(["311", "5"]),
            default="311",
            show_default=True,
            help="MQTT protocol version of every connection.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _resolve_target(
    host: str | None, port: int | None, ready_file: Path | None, broker_pid: int | None
) -> Target:
    if ready_file is not None:
        try:
            ready = read_ready_file(ready_file)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--ready-file") from exc
        return Target(host or ready.host, port or ready.port, broker_pid or ready.pid)
    return Target(host or "127.0.0.1", port or 1883, broker_pid)


def _add_pubsub_command(preset: str, summary: str) -> click.Command:
    """Register a scenario command: the preset's defaults, every knob as an option."""
    spec = PRESETS[preset]

    def command(**kwargs: Any) -> None:
        target = _resolve_target(
            kwargs.pop("host"),
            kwargs.pop("port"),
            kwargs.pop("ready_file"),
            kwargs.pop("broker_pid"),
        )
        as_json = kwargs.pop("as_json")
        level = 5 if kwargs.pop("mqtt_version") == "5" else 4
        wildcard = spec.wildcard or kwargs["publishers"] > 1
        run_spec = PubSubSpec(name=preset, wildcard=wildcard, protocol_level=level, **kwargs)
        _emit(lambda: run_pubsub(run_spec, target), as_json)

    command.__doc__ = summary
    options = [
        click.option(
            "-P",
            "--publishers",
            type=click.IntRange(1),
            default=spec.publishers,
            show_default=True,
            help="Publisher connections.",
        ),
        click.option(
            "-S",
            "--subscribers",
            type=click.IntRange(1),
            default=spec.subscribers,
            show_default=True,
            help="Subscriber connections (each receives every message).",
        ),
        click.option(
            "-s",
            "--payload",
            type=click.IntRange(0),
            default=spec.payload,
            show_default=True,
            help="Payload bytes.",
        ),
        click.option(
            "-q",
            "--qos",
            type=click.IntRange(0, 1),
            default=spec.qos,
            show_default=True,
            help="Publish QoS.",
        ),
        click.option(
            "--sub-qos",
            type=click.IntRange(0, 1),
            default=spec.sub_qos,
            show_default=True,
            help="Subscription QoS.",
        ),
        click.option(
            "-d",
            "--duration",
            type=click.FloatRange(0, min_open=True),
            default=spec.duration,
            show_default=True,
            help="Seconds measured.",
        ),
        click.option(
            "--warmup",
            type=click.FloatRange(0),
            default=spec.warmup,
            show_default=True,
            help="Seconds published before measuring.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(0),
            default=spec.rate,
            show_default=True,
            help="Total messages/s over all publishers (0 = as fast as allowed).",
        ),
        click.option(
            "--window",
            type=click.IntRange(1),
            default=spec.window,
            show_default=True,
            help="Closed loop: most messages ahead of the slowest subscriber.",
        ),
        click.option(
            "--open-loop", is_flag=True, help="Flood: publish without waiting for the subscribers."
        ),
        click.option(
            "--inflight",
            type=click.IntRange(1, 65534),
            default=spec.inflight,
            show_default=True,
            help="QoS 1: most unacknowledged messages per publisher.",
        ),
        click.option(
            "--batch",
            type=click.IntRange(0),
            default=0,
            help="Messages per write (default: from the window).",
        ),
        click.option(
            "--pub-procs",
            type=click.IntRange(0),
            default=0,
            help="Publisher processes (default min(publishers, 2)).",
        ),
        click.option(
            "--sub-procs",
            type=click.IntRange(0),
            default=0,
            help="Subscriber processes (default min(subscribers, 2)).",
        ),
        click.option(
            "--stamps/--no-stamps",
            default=spec.stamps,
            show_default=True,
            help="Send time in the payload; report latency percentiles.",
        ),
    ]
    decorated: Callable[..., None] = command
    for option in reversed(options):
        decorated = option(decorated)
    decorated = _target_options(decorated)
    return bench.command(name=preset, epilog=_EPILOG)(decorated)


def _emit(run: Callable[[], Any], as_json: bool) -> None:
    try:
        result = run()
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(dumps(result))
    else:
        print_result(result)


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["--help"]})
def bench() -> None:
    """Benchmark an MQTT broker: throughput, CPU per message, latency, connections.

    Closed loop by default: publishers stay at most --window messages ahead of
    the slowest subscriber, so nothing is lost and the broker is measured at its
    sustainable rate; --open-loop floods instead and counts what is lost.
    """


fanin = _add_pubsub_command(
    "fanin", "P publishers -> 1 subscriber on a wildcard (default 4 publishers)."
)
fanout = _add_pubsub_command("fanout", "1 publisher -> S subscribers of its topic (default 10).")
qos1 = _add_pubsub_command(
    "qos1", "QoS 1 publish and subscribe, a bounded in-flight window per publisher."
)
latency = _add_pubsub_command(
    "latency", "Fixed rate (default 5,000 msg/s), send time in the payload: p50/p99/p99.9/max."
)


@bench.command(epilog=_EPILOG)
@_target_options
@click.option(
    "-c",
    "--count",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="Idle connections to open.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Connections being opened at once.",
)
@click.option(
    "--hold",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds to hold them open (memory is read after 1 s and at the end).",
)
@click.option(
    "--keepalive",
    type=click.IntRange(0, 65535),
    default=60,
    show_default=True,
    help="Keep alive of every connection, seconds.",
)
@click.option(
    "--procs", type=click.IntRange(1), default=1, show_default=True, help="Generator processes."
)
def connections(
    host: str | None,
    port: int | None,
    ready_file: Path | None,
    broker_pid: int | None,
    as_json: bool,
    mqtt_version: str,
    count: int,
    concurrency: int,
    hold: float,
    keepalive: int,
    procs: int,
) -> None:
    """C idle connections with keep-alive: connect rate, broker RSS per 1,000."""
    target = _resolve_target(host, port, ready_file, broker_pid)
    spec = ConnectionsSpec(
        count=count,
        concurrency=concurrency,
        hold=hold,
        procs=procs,
        protocol_level=5 if mqtt_version == "5" else 4,
        keep_alive=keepalive,
    )
    _emit(lambda: run_connections(spec, target), as_json)


@bench.command(epilog=_EPILOG)
@click.option(
    "-d",
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds measured per run.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Seconds published before measuring.",
)
@click.option(
    "-r",
    "--reps",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Repetitions of every scenario on every broker.",
)
@click.option(
    "--scenarios",
    default=None,
    help="Comma-separated subset of: fanin64, fanin1k, fanout10, fanout50, "
    "qos1, latency, connections.",
)
@click.option(
    "--connections",
    "connection_count",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="Idle connections in the connections scenario.",
)
@click.option(
    "--mosquitto",
    "mosquitto_path",
    default="/usr/sbin/mosquitto",
    show_default=True,
    help="The mosquitto binary.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown report here (e.g. docs/benchmarks.md).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every run's JSON result here.",
)
def compare(
    duration: float,
    warmup: float,
    reps: int,
    scenarios: str | None,
    connection_count: int,
    mosquitto_path: str,
    output: Path | None,
    json_path: Path | None,
) -> None:
    """Warren vs Debian's mosquitto: same scenarios, interleaved, medians and ratios.

    Starts each broker itself (fresh for every run, on an ephemeral loopback port),
    runs every scenario --reps times alternating the order of the brokers, and
    prints the medians and Warren/Mosquitto ratios.
    """
    from warren.bench.compare import Comparison, scenario_names

    names = scenario_names() if scenarios is None else [s.strip() for s in scenarios.split(",")]
    unknown = sorted(set(names) - set(scenario_names()))
    if unknown:
        raise click.BadParameter(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(scenario_names())}",
            param_hint="--scenarios",
        )
    comparison = Comparison(
        names,
        duration=duration,
        warmup=warmup,
        reps=reps,
        connection_count=connection_count,
        mosquitto=mosquitto_path,
        command=" ".join(["warren", "bench", *sys.argv[sys.argv.index("compare") :]])
        if "compare" in sys.argv
        else "warren bench compare",
    )
    try:
        comparison.run(progress=lambda text: click.echo(text, err=True))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    comparison.print_table()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        from warren.bench.compare_amqp import BEGIN_MARK, END_MARK

        text = comparison.markdown()
        old = output.read_text(encoding="utf-8") if output.exists() else ""
        if BEGIN_MARK in old and END_MARK in old:
            # Keep the compare-amqp section and the notes written after it.
            kept = BEGIN_MARK + old.split(BEGIN_MARK, 1)[1]
            text = text.rstrip("\n") + "\n\n" + kept.rstrip("\n") + "\n"
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    if json_path is not None:
        json_path.write_text(comparison.json(), encoding="utf-8")


def _amqp_spec_options(func: F) -> F:
    options = [
        click.option("-d", "--duration", type=click.FloatRange(0, min_open=True), default=5.0,
                     show_default=True, help="Seconds measured."),
        click.option("--warmup", type=click.FloatRange(0), default=1.0, show_default=True,
                     help="Seconds published before measuring."),
        click.option("-s", "--payload", type=click.IntRange(8), default=64, show_default=True,
                     help="Body bytes (the first 8 carry the send time)."),
        click.option("--window", type=click.IntRange(1), default=256, show_default=True,
                     help="Most unconfirmed publishes."),
        click.option("--batch", type=click.IntRange(1), default=32, show_default=True,
                     help="Most publishes per write."),
        click.option("--prefetch", type=click.IntRange(1, 65535), default=512,
                     show_default=True, help="Consumer prefetch count."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@bench.command("amqp-persistent", epilog=_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Broker address.")
@click.option("--port", "-p", type=click.IntRange(1, 65535), help="Broker AMQP port.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A `warren serve --ready-file` file: AMQP port and broker pid.",
)
@click.option("--broker-pid", type=int, help="The broker's pid, for CPU figures from /proc.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_amqp_spec_options
def amqp_persistent(
    host: str, port: int | None, ready_file: Path | None, broker_pid: int | None,
    as_json: bool, **spec: Any,
) -> None:
    """AMQP 0-9-1: persistent publishes with confirms -> durable queue -> one consumer.

    Publisher and consumer are processes of their own on Warren's AMQP codec; reports
    messages/s, publish->consume and confirm latency, broker and generator CPU.
    """
    import json

    from warren.bench.amqp import AmqpBenchError, AmqpSpec, run_amqp_persistent

    if ready_file is not None:
        data = json.loads(ready_file.read_text(encoding="utf-8"))
        amqp = [x for x in data.get("listeners", []) if x.get("protocol") == "amqp"]
        if not amqp:
            raise click.BadParameter("no 'amqp' listener", param_hint="--ready-file")
        port = port or int(amqp[0]["port"])
        broker_pid = broker_pid or int(data["pid"])
    try:
        result = run_amqp_persistent(AmqpSpec(**spec), host, port or 5672, broker_pid)
    except AmqpBenchError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result))
        return
    lat, broker = result["latency_ms"], result["broker"] or {}
    click.echo(
        f"{result['delivered_per_s']:,.0f} msgs/s consumed, "
        f"{result['confirmed_per_s']:,.0f} confirmed/s; p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms; confirm p99 {result['confirm_latency_ms']['p99']} ms; "
        f"broker CPU {broker.get('cpu_percent', 0):.0f}%; lost {result['messages']['lost']}"
    )
    for note in result["notes"]:
        click.echo(f"note: {note}")


@bench.command("compare-amqp", epilog=_EPILOG)
@_amqp_spec_options
@click.option("-r", "--reps", type=click.IntRange(1), default=3, show_default=True,
              help="Repetitions on every broker (interleaved).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write/replace the AMQP section of this Markdown file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every run's JSON result here.")
def compare_amqp_command(
    reps: int, output: Path | None, json_path: Path | None, **spec: Any
) -> None:
    """Warren vs Debian's rabbitmq-server on amqp-persistent: medians and ratios.

    Starts both brokers itself on loopback ephemeral ports (temporary data dirs) and
    stops them after; runs --reps interleaved repetitions on each.
    """
    import json

    from warren.bench.amqp import AmqpBenchError, AmqpSpec
    from warren.bench.compare_amqp import compare_amqp, render_markdown, write_section

    try:
        result = compare_amqp(AmqpSpec(**spec), reps)
    except (AmqpBenchError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    command = " ".join(["warren", "bench", *sys.argv[sys.argv.index("compare-amqp") :]]) \
        if "compare-amqp" in sys.argv else "warren bench compare-amqp"
    section = render_markdown(result, command)
    click.echo(section)
    if output is not None:
        write_section(output, section)
        click.echo(f"wrote {output}", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    bench(prog_name="warren bench")
