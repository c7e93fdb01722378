"""What the broker process costs, read from ``/proc`` (Linux).

CPU time is ``utime + stime`` of ``/proc/PID/stat`` (all threads, user and kernel),
memory is ``VmRSS`` of ``/proc/PID/status``, each summed over the process and its
descendants (Warren's store writer process, Mosquitto has none); CPU also counts
children that have exited (``cutime + cstime``). The broker's pid comes from
``--broker-pid`` or from the ready file ``warren serve --ready-file`` writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BrokerProcess",
    "ReadyFile",
    "descendants",
    "machine_busy_seconds",
    "read_ready_file",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class BrokerProcess:
    """A broker process on this machine, observed through ``/proc/PID``."""

    pid: int

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the process and its descendants have used."""
        total = 0.0
        for pid in [self.pid, *descendants(self.pid)]:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # exited meanwhile: counted in its parent's cutime once reaped
            # Field 2 (comm) is in parentheses and may contain spaces; fields after the
            # last ')' start at field 3 (state): utime, stime, cutime, cstime are 14-17.
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS
        return total

    def rss_kib(self) -> int:
        """Resident set size in KiB (``VmRSS``) of the process and its descendants."""
        total = 0
        for pid in [self.pid, *descendants(self.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                if pid == self.pid:
                    raise
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        return total

    def alive(self) -> bool:
        """Whether the process still exists (and is not a zombie)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Pids of every live descendant of ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (``/proc/stat``, all cores).

    Busy is everything but idle and iowait; comparing it with the broker's and the
    generator's own CPU shows how much other load shared the machine.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class ReadyFile:
    """What ``warren serve --ready-file`` wrote: the pid and the MQTT listener."""

    pid: int
    host: str
    port: int


def read_ready_file(path: Path) -> ReadyFile:
    """Read a Warren ready file; raises ``ValueError`` if it has no MQTT TCP listener."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for listener in data.get("listeners", []):
        if listener.get("protocol") == "mqtt":
            host = str(listener.get("host") or "127.0.0.1")
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return ReadyFile(int(data["pid"]), host, int(listener["port"]))
    raise ValueError(f"{path}: no 'mqtt' listener in the ready file")
