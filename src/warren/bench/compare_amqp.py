"""Warren against Debian's rabbitmq-server on ``amqp-persistent``: interleaved, medians.

Both brokers are started here on loopback ephemeral ports and stopped after, without
touching system services: Warren as ``python -m warren.cli.main serve`` with one AMQP
listener on port 0 and a temporary ``data_dir`` (the port and pid come from its ready
file); RabbitMQ as ``rabbitmq-server`` in the foreground with RABBITMQ_NODENAME,
RABBITMQ_NODE_PORT, RABBITMQ_DIST_PORT, mnesia/log/config under a temporary
directory and ERL_EPMD_ADDRESS=127.0.0.1; its CPU is read from the ``beam.smp``
process under it. Repetition ``r`` runs Warren first when ``r`` is even.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .amqp import AmqpSpec, run_amqp_persistent
from .procstat import descendants

__all__ = ["compare_amqp", "render_markdown", "start_rabbitmq", "start_warren"]

_START_TIMEOUT: Final = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"broker did not open port {port} in {_START_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def start_warren() -> Iterator[tuple[int, int]]:
    """A Warren with one AMQP listener; yields (port, pid)."""
    with tempfile.TemporaryDirectory(prefix="warren-bench-") as tmp:
        base = Path(tmp)
        config = base / "warren.toml"
        config.write_text(
            f'[server]\ndata_dir = "{base / "data"}"\n\n'
            '[[listener]]\nprotocol = "amqp"\nhost = "127.0.0.1"\nport = 0\n'
        )
        ready, log = base / "ready.json", base / "warren.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "warren.cli.main",
                    "serve",
                    "--config",
                    str(config),
                    "--ready-file",
                    str(ready),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + _START_TIMEOUT
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"warren did not start: {log.read_text()[-2000:]}")
                time.sleep(0.02)
            time.sleep(0.05)
            data = json.loads(ready.read_text())
            port = next(int(x["port"]) for x in data["listeners"] if x["protocol"] == "amqp")
            yield port, int(data["pid"])
        finally:
            _stop(proc)


@contextlib.contextmanager
def start_rabbitmq() -> Iterator[tuple[int, int]]:
    """Debian's rabbitmq-server in the foreground on loopback; yields (port, beam pid)."""
    server = shutil.which("rabbitmq-server") or "/usr/lib/rabbitmq/bin/rabbitmq-server"
    if not Path(server).exists():
        raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if direct.exists():
        server = str(direct)  # not the wrapper, which would switch to the rabbitmq user
    with tempfile.TemporaryDirectory(prefix="rabbit-bench-") as tmp:
        base = Path(tmp)
        port, dist, epmd = _free_port(), _free_port(), _free_port()
        (base / "rabbitmq.conf").write_text("loopback_users = none\n")
        env = dict(os.environ)
        env.update(
            HOME=str(base),
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(dist),
            RABBITMQ_NODENAME="warrenbench@localhost",
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(base / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(epmd),  # a private epmd, stopped after
        )
        (base / "enabled_plugins").write_text("[].\n")
        log = base / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [server],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            _wait_port(port, proc, log)
            beam = [
                pid
                for pid in [proc.pid, *descendants(proc.pid)]
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam")
            ]
            yield port, beam[0] if beam else proc.pid
        finally:
            _stop(proc)
            # epmd daemonizes and outlives the node: stop our private one by its port.
            epmd_bin = shutil.which("epmd", path=os.environ.get("PATH", "") + ":/usr/bin")
            if epmd_bin:
                subprocess.run(
                    [epmd_bin, "-port", str(epmd), "-kill"],
                    env=env,
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                )


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float | None:
        values = [v for v in (get(r) for r in results) if v is not None]
        return statistics.median(values) if values else None

    return {
        "delivered_per_s": med(lambda r: r["delivered_per_s"]),
        "confirmed_per_s": med(lambda r: r["confirmed_per_s"]),
        "p50_ms": med(lambda r: r["latency_ms"]["p50"]),
        "p99_ms": med(lambda r: r["latency_ms"]["p99"]),
        "confirm_p99_ms": med(lambda r: r["confirm_latency_ms"]["p99"]),
        "broker_cpu_percent": med(lambda r: (r["broker"] or {}).get("cpu_percent")),
        "msgs_per_cpu_s": med(lambda r: (r["broker"] or {}).get("msgs_per_cpu_s")),
        "generator_cpu_percent": med(
            lambda r: (
                r["generator"]["publisher_cpu_percent"] + r["generator"]["consumer_cpu_percent"]
            )
        ),
        "lost": sum(r["messages"]["lost"] for r in results),
    }


def compare_amqp(spec: AmqpSpec, reps: int = 3) -> dict[str, Any]:
    """Run ``spec`` ``reps`` times against each broker, interleaved; medians and ratios."""
    runs: dict[str, list[dict[str, Any]]] = {"warren": [], "rabbitmq": []}
    with start_rabbitmq() as rabbit, start_warren() as warren:
        targets = {"warren": warren, "rabbitmq": rabbit}
        for rep in range(reps):
            order = ("warren", "rabbitmq") if rep % 2 == 0 else ("rabbitmq", "warren")
            for name in order:
                port, pid = targets[name]
                runs[name].append(run_amqp_persistent(spec, "127.0.0.1", port, pid))
    summary = {name: _summary(results) for name, results in runs.items()}
    w, r = summary["warren"], summary["rabbitmq"]
    ratios = {
        key: (w[key] / r[key] if w[key] and r[key] else None)
        for key in ("delivered_per_s", "confirmed_per_s", "p99_ms", "msgs_per_cpu_s")
    }
    return {
        "params": spec.params(),
        "reps": reps,
        "runs": runs,
        "median": summary,
        "ratio_warren_over_rabbitmq": ratios,
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render_markdown(result: dict[str, Any], command: str) -> str:
    """The docs/benchmarks.md section for one comparison."""
    w, r = result["median"]["warren"], result["median"]["rabbitmq"]
    ratio = result["ratio_warren_over_rabbitmq"]
    p = result["params"]
    rows = [
        (
            "consumed msgs/s",
            _fmt(w["delivered_per_s"]),
            _fmt(r["delivered_per_s"]),
            _fmt(ratio["delivered_per_s"], 2),
        ),
        (
            "confirmed msgs/s",
            _fmt(w["confirmed_per_s"]),
            _fmt(r["confirmed_per_s"]),
            _fmt(ratio["confirmed_per_s"], 2),
        ),
        ("publish→consume p50 (ms)", _fmt(w["p50_ms"], 2), _fmt(r["p50_ms"], 2), ""),
        (
            "publish→consume p99 (ms)",
            _fmt(w["p99_ms"], 2),
            _fmt(r["p99_ms"], 2),
            _fmt(ratio["p99_ms"], 2),
        ),
        ("confirm p99 (ms)", _fmt(w["confirm_p99_ms"], 2), _fmt(r["confirm_p99_ms"], 2), ""),
        (
            "broker CPU (% of a core)",
            _fmt(w["broker_cpu_percent"]),
            _fmt(r["broker_cpu_percent"]),
            "",
        ),
        (
            "msgs per broker CPU-second",
            _fmt(w["msgs_per_cpu_s"]),
            _fmt(r["msgs_per_cpu_s"]),
            _fmt(ratio["msgs_per_cpu_s"], 2),
        ),
        (
            "generator CPU (% of a core)",
            _fmt(w["generator_cpu_percent"]),
            _fmt(r["generator_cpu_percent"]),
            "",
        ),
        ("messages lost (all reps)", str(w["lost"]), str(r["lost"]), ""),
    ]
    lines = [
        "## AMQP 0-9-1: persistent publish → durable queue → consumer (Warren vs RabbitMQ)",
        "",
        f"Command: `{command}`",
        "",
        f"One publisher with publisher confirms (at most {p['window']} unconfirmed, "
        f"{p['batch']} per write, delivery_mode 2, {p['payload']}-byte bodies) to a durable "
        f"queue, one consumer with manual acks (prefetch {p['prefetch']}, one `multiple` "
        f"ack per read). {p['warmup']} s warm-up, {p['duration']} s measured, "
        f"{result['reps']} interleaved repetitions, medians. Frames are pre-encoded with "
        "Warren's AMQP codec; publisher and consumer are separate processes. Warren: "
        "`warren serve`, one AMQP listener, default storage in a temporary data_dir. "
        "RabbitMQ: Debian bookworm `rabbitmq-server` in the foreground, defaults, "
        "temporary mnesia dir. Both brokers were running during every repetition.",
        "",
        "| metric | Warren | RabbitMQ | Warren / RabbitMQ |",
        "|---|---:|---:|---:|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "Per repetition (consumed msgs/s, p99 ms):",
        "",
    ]
    for name in ("warren", "rabbitmq"):
        reps = ", ".join(
            f"{x['delivered_per_s']:,.0f} / {_fmt(x['latency_ms']['p99'], 2)}"
            for x in result["runs"][name]
        )
        lines.append(f"- {name}: {reps}")
    lines.append("")
    return "\n".join(lines)


BEGIN_MARK: Final = "<!-- amqp-persistent:begin -->"
END_MARK: Final = "<!-- amqp-persistent:end -->"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` between the markers, keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN_MARK}\n{section}{END_MARK}\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")
