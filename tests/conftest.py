"""Shared fixtures: a real broker subprocess for black-box tests.

`broker` is one `warren serve` for the whole session (listeners on 127.0.0.1,
ephemeral ports, MQTT over TCP and over WebSocket). `make_broker(extra_toml)`
starts another one with extra configuration merged over the defaults, for tests
that need different limits, ACLs or a restart. Every broker is stopped with
SIGTERM at teardown and must exit with status 0; its log is printed otherwise,
and the part of its log written during a failed test is attached to the report.

Set WARREN_TEST_BROKER=mosquitto to run the same tests against Debian's
mosquitto (a stand-in used to debug the tests themselves): the configuration
is translated to a mosquitto.conf, ports are found by binding port 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 30.0  # seconds for a broker to bind its listeners
STOP_TIMEOUT = 15.0  # seconds for a graceful SIGTERM shutdown
BROKER_KIND = os.environ.get("WARREN_TEST_BROKER", "warren")
HOST = "127.0.0.1"
WS_PATH = "/mqtt"

BASE_CONFIG: dict[str, Any] = {
    "server": {"log_level": os.environ.get("WARREN_TEST_LOG_LEVEL", "info")},
    "listener": [
        {"protocol": "mqtt", "host": HOST, "port": 0},
        {"protocol": "mqtt-ws", "host": HOST, "port": 0, "path": WS_PATH},
        {"protocol": "native", "host": HOST, "port": 0},
        {"protocol": "native-ws", "host": HOST, "port": 0},
        {"protocol": "amqp", "host": HOST, "port": 0},
        {"protocol": "admin", "host": HOST, "port": 0},
    ],
}


@dataclass
class Broker:
    """A running broker process and where to reach it."""

    kind: str
    host: str
    mqtt_port: int
    ws_port: int | None
    ws_path: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    config: dict[str, Any]
    native_port: int | None = None  # the native protocol over TCP (warren only)
    native_ws_port: int | None = None  # ... and over WebSocket
    admin_port: int | None = None  # the management API (HTTP)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}{self.ws_path}"

    @property
    def tcp_url(self) -> str:
        return f"mqtt://{self.host}:{self.mqtt_port}"

    def log(self, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"<no log: {exc}>"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status (kills after STOP_TIMEOUT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # and its store writer
                self.proc.wait()
                return -999  # distinguishable from any real status
        return self.proc.returncode

    def store_writer_pid(self) -> int:
        """The pid of the broker's store writer process (python -m warren.store.writer_main)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid and (
                b"warren.store.writer_main" in cmdline
            ):
                return int(entry.name)
        raise AssertionError(f"broker {self.proc.pid} has no store writer process")

    def kill(self) -> None:
        """SIGKILL to the broker and its store writer at the same instant (its process
        group): the hardest crash short of the machine's, for durability tests. Killing
        the broker alone would let the writer commit whatever it had been sent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --------------------------------------------------------------------- config


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge tables; arrays (including arrays of tables) in `extra` replace."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_dumps(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for configuration dictionaries (tables, arrays of tables)."""
    lines: list[str] = []
    for key, value in data.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            lines.append(toml_dumps(value, name))
        elif _is_table_array(value):
            for item in value:
                lines.append(f"\n[[{name}]]")
                lines.append(toml_dumps(item, name))
    return "\n".join(line for line in lines if line != "")


# -------------------------------------------------------------------- brokers


def _warren_command() -> list[str]:
    beside = Path(sys.executable).with_name("warren")
    exe = str(beside) if beside.exists() else shutil.which("warren")
    if exe is None:
        pytest.fail("`warren` is not installed: run `pip install -e .` first", pytrace=False)
    return [exe]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _fail_start(proc: subprocess.Popen[bytes], log_path: Path, why: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    try:
        log = log_path.read_text(errors="replace")
    except OSError:
        log = "<no log>"
    pytest.fail(f"broker did not start: {why}\n--- broker log ---\n{log}", pytrace=False)


def _start_warren(workdir: Path, config: dict[str, Any]) -> Broker:
    config_path = workdir / "warren.toml"
    config_path.write_text(toml_dumps(config) + "\n")
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    log_path = workdir / "broker.log"
    cmd = [
        *_warren_command(),
        "serve",
        "--config",
        str(config_path),
        "--ready-file",
        str(ready),
        "--data-dir",
        str(data_dir),
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # The one acceptable poll: the ready file appears (atomically) once every
    # listener is bound; bounded by a deadline, and cut short if the process dies.
    deadline = time.monotonic() + READY_TIMEOUT
    info: dict[str, Any] | None = None
    while info is None:
        if proc.poll() is not None:
            _fail_start(proc, log_path, f"exited with status {proc.returncode}")
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
            except (OSError, ValueError) as exc:
                _fail_start(proc, log_path, f"unreadable ready file: {exc}")
            break
        if time.monotonic() > deadline:
            _fail_start(proc, log_path, f"no ready file {ready} after {READY_TIMEOUT}s")
        time.sleep(0.02)
    assert info is not None
    by_proto = {lst["protocol"]: lst for lst in info.get("listeners", [])}
    if "mqtt" not in by_proto:
        _fail_start(proc, log_path, f"ready file has no mqtt listener: {info}")
    ws = by_proto.get("mqtt-ws")
    native, native_ws = by_proto.get("native"), by_proto.get("native-ws")
    admin = by_proto.get("admin")
    return Broker(
        kind="warren",
        host=by_proto["mqtt"]["host"],
        mqtt_port=int(by_proto["mqtt"]["port"]),
        ws_port=int(ws["port"]) if ws else None,
        ws_path=ws.get("path", WS_PATH) if ws else WS_PATH,
        proc=proc,
        workdir=workdir,
        config=config,
        native_port=int(native["port"]) if native else None,
        native_ws_port=int(native_ws["port"]) if native_ws else None,
        admin_port=int(admin["port"]) if admin else None,
    )


def mosquitto_conf(config: dict[str, Any], workdir: Path, mqtt_port: int, ws_port: int) -> str:
    """Translate the subset of warren's config the tests use into mosquitto.conf."""
    server = config.get("server", {})
    mqtt = config.get("mqtt", {})
    listener_opts = []
    if "topic_alias_maximum" in mqtt:
        listener_opts.append(f"max_topic_alias {mqtt['topic_alias_maximum']}")
    lines = [
        # Started as root, mosquitto would drop to user "mosquitto", which cannot
        # reach pytest's private temporary directories.
        *(["user root"] if os.geteuid() == 0 else []),
        "per_listener_settings false",
        "allow_anonymous true",
        f"listener {mqtt_port} {HOST}",
        *listener_opts,
        f"listener {ws_port} {HOST}",
        "protocol websockets",
        *listener_opts,
        "log_dest stderr",
        "log_type all" if server.get("log_level") == "debug" else "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        f"sys_interval {server.get('sys_interval', 10)}",
    ]
    lines += [
        "persistence true",
        f"persistence_location {workdir / 'data'}/",
        "autosave_on_changes true",
        "autosave_interval 1",
    ]
    simple = {
        "max_packet_size": "max_packet_size",
        "max_queued_messages": "max_queued_messages",
        "receive_maximum": "max_inflight_messages",
    }
    for key, name in simple.items():
        if key in mqtt:
            lines.append(f"{name} {mqtt[key]}")
    if mqtt.get("server_keep_alive"):
        lines.append(f"max_keepalive {mqtt['server_keep_alive']}")
    vpn = config.get("vpn", {}).get("default", {})
    rules = list(vpn.get("acl", []))
    if "acl_file" in vpn:
        acl_path = Path(vpn["acl_file"])
        rules += tomllib.loads(acl_path.read_text()).get("acl", [])
    if rules or vpn.get("acl_default") == "deny":
        # Mosquitto ACLs differ (no per-operation deny): deny subscribe/all ->
        # "deny", allow subscribe -> "read", allow publish -> "write".
        access = {
            ("allow", "subscribe"): "read",
            ("allow", "publish"): "write",
            ("allow", "all"): "readwrite",
        }
        general: list[str] = []
        per_user: dict[str, list[str]] = {}
        for rule in rules:
            kind = access.get((rule["action"], rule.get("operation", "all")), "deny")
            line = f"{kind} {rule['topic']}"
            user = rule.get("user", "*")
            if user == "*":
                general.append("pattern " + line)
            elif user == "$anonymous":
                per_user.setdefault("", []).append("topic " + line)
            else:
                per_user.setdefault(user, []).append("topic " + line)
        if vpn.get("acl_default", "allow") == "allow":
            general.append("pattern readwrite #")
        text = "\n".join(per_user.pop("", []) + general)
        for user, user_lines in per_user.items():
            text += f"\nuser {user}\n" + "\n".join(user_lines)
        (workdir / "mosquitto.acl").write_text(text + "\n")
        lines.append(f"acl_file {workdir / 'mosquitto.acl'}")
    return "\n".join(lines) + "\n"


def _start_mosquitto(workdir: Path, config: dict[str, Any]) -> Broker:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mqtt_port, ws_port = _free_port(), _free_port()
    (workdir / "data").mkdir(exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(config, workdir, mqtt_port, ws_port))
    log_path = workdir / "broker.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [exe, "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not (_port_open(mqtt_port) and _port_open(ws_port)):
        if proc.poll() is not None:
            _fail_start(proc, log_path, f"exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            _fail_start(proc, log_path, f"ports {mqtt_port}/{ws_port} not open")
        time.sleep(0.02)
    return Broker(
        kind="mosquitto",
        host=HOST,
        mqtt_port=mqtt_port,
        ws_port=ws_port,
        ws_path=WS_PATH,
        proc=proc,
        workdir=workdir,
        config=config,
    )


class BrokerLauncher:
    """Starts brokers in fresh directories; remembers them to stop them all."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.started: list[Broker] = []

    def start(self, extra_toml: str = "", *, workdir: Path | None = None) -> Broker:
        extra = tomllib.loads(extra_toml) if extra_toml else {}
        if workdir is None:
            workdir = self._tmp.mktemp("broker")
        config = merge_config(BASE_CONFIG, extra)
        start = _start_mosquitto if BROKER_KIND == "mosquitto" else _start_warren
        broker = start(workdir, config)
        self.started.append(broker)
        return broker

    def restart(self, broker: Broker, *, crash: bool = False) -> Broker:
        """Stop (or kill -9) `broker` and start a new one on the same data dir."""
        if crash:
            broker.kill()
        else:
            status = broker.stop()
            assert status == 0, f"broker exited with {status} on SIGTERM\n{broker.log()}"
        self.started.remove(broker)
        start = _start_mosquitto if BROKER_KIND == "mosquitto" else _start_warren
        new = start(broker.workdir, broker.config)
        self.started.append(new)
        return new

    def stop(self, broker: Broker) -> None:
        """Graceful stop; fails the test with the broker log unless it exits 0."""
        if broker in self.started:
            self.started.remove(broker)
        status = broker.stop()
        if status != 0:
            print(f"--- {broker.kind} log ({broker.log_path}) ---\n{broker.log()}")
            pytest.fail(
                f"{broker.kind} exited with status {status} after SIGTERM (expected 0)",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def broker_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(tmp_path_factory)
    yield launcher
    for leftover in list(launcher.started):
        launcher.stop(leftover)


@pytest.fixture(scope="session")
def broker(broker_launcher: BrokerLauncher) -> Iterator[Broker]:
    """The shared broker with the default configuration (TCP and WebSocket)."""
    b = broker_launcher.start()
    yield b
    broker_launcher.stop(b)


MakeBroker = Callable[..., Broker]


@pytest.fixture
def make_broker(broker_launcher: BrokerLauncher) -> Iterator[MakeBroker]:
    """Factory: `make_broker(extra_toml)` starts a broker with extra configuration."""
    mine: list[Broker] = []

    def make(extra_toml: str = "") -> Broker:
        b = broker_launcher.start(extra_toml)
        mine.append(b)
        return b

    make.launcher = broker_launcher  # type: ignore[attr-defined]
    yield make
    errors = []
    for b in mine:
        if b in broker_launcher.started:
            try:
                broker_launcher.stop(b)
            except pytest.fail.Exception as exc:
                errors.append(str(exc))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


_counter = 0


@pytest.fixture
def uid(request: pytest.FixtureRequest) -> str:
    """A short alphanumeric id unique to this test: prefix for topics and client ids."""
    global _counter
    _counter += 1
    crc = zlib.crc32(request.node.nodeid.encode())
    return f"w{crc:08x}{os.getpid() % 1000:03d}{_counter:03d}"


# -------------------------------------------------- broker log in failed tests


def _brokers_of(item: pytest.Item) -> list[Broker]:
    found: list[Broker] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Broker):
            found.append(value)
        elif isinstance(value, BrokerLauncher):
            found.extend(value.started)
    return list({id(b): b for b in found}.values())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    item._broker_log_offsets = {id(b): b.log_size() for b in _brokers_of(item)}  # type: ignore[attr-defined]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    offsets = getattr(item, "_broker_log_offsets", {})
    for b in _brokers_of(item):
        text = b.log(offsets.get(id(b), 0))
        lines = text.splitlines()[-80:]
        state = "running" if b.alive() else f"EXITED with {b.proc.returncode}"
        report.sections.append(
            (f"{b.kind} log during test ({state}, {b.log_path})", "\n".join(lines))
        )
