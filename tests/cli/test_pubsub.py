"""Black-box tests of `warren pub` and `warren sub` against a real broker.

Each test runs the commands as subprocesses (`python -m warren.cli.pubsub pub|sub`),
the way a user would. The broker is the shared `broker` fixture from tests/conftest.py:
`warren serve` by default, Debian's mosquitto with WARREN_TEST_BROKER=mosquitto; both
listen on ephemeral loopback ports. TLS and password checks need a mosquitto of their
own (`secure_mosquitto`, below), whatever the broker under test.

Synchronisation is on output only, never on sleeps: a subscriber runs with -d, and the
test publishes once "received SUBACK" has appeared on its stderr (or uses -E, or a
retained message that a late subscriber must get).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Broker, MakeBroker

SRC = Path(__file__).resolve().parents[2] / "src"
WAIT = 20.0  # seconds: an upper bound for anything a test waits for, never a delay
HOST = "127.0.0.1"


# --- running the commands -----------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "warren.cli.pubsub", *args]


def run(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `warren pub|sub ...` to completion."""
    return subprocess.run(
        command(*args),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env or cli_env(),
        timeout=WAIT,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr.decode()}"
    )
    return result


class Running:
    """A command running in the background; its stderr is watched line by line."""

    def __init__(self, args: list[str], *, stdin: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            command(*args),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        self._stderr: list[str] = []
        self._stdout = bytearray()
        self._changed = threading.Condition()
        self._stderr_done = False
        self._threads = [
            threading.Thread(target=self._pump_stderr, daemon=True),
            threading.Thread(target=self._pump_stdout, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                self._stderr.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._stderr_done = True
            self._changed.notify_all()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            self._stdout += chunk

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._stderr)

    def wait_for(self, text: str) -> None:
        """Block until a line of stderr contains `text` (fails if the process ends first)."""

        def seen() -> bool:
            return any(text in line for line in self._stderr) or self._stderr_done

        with self._changed:
            self._changed.wait_for(seen, timeout=WAIT)
            if not any(text in line for line in self._stderr):
                self.kill()
                pytest.fail(f"never saw {text!r} on stderr; stderr was:\n{''.join(self._stderr)}")

    def finish(self) -> tuple[int, bytes, str]:
        """Wait for the exit; return (status, stdout, stderr)."""
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"did not exit within {WAIT}s; stderr:\n{self.stderr}")
        for thread in self._threads:
            thread.join(WAIT)
        return status, bytes(self._stdout), self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def background() -> Iterator[list[Running]]:
    """Background commands of one test; whatever is still running at the end is killed."""
    started: list[Running] = []
    yield started
    for item in started:
        item.kill()


def at(broker: Broker) -> list[str]:
    return ["-h", broker.host, "-p", str(broker.mqtt_port)]


def start_sub(background: list[Running], broker: Broker, *args: str) -> Running:
    """Start `sub -d ...` and return once the broker has acknowledged the subscription."""
    sub = Running(["sub", *at(broker), "-d", *args])
    background.append(sub)
    sub.wait_for("received SUBACK")
    return sub


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --- help and usage -----------------------------------------------------------------


def test_help_explains_options_with_examples() -> None:
    pub_help = ok(run("pub", "--help")).stdout.decode()
    for text in ("Examples:", "-l, --stdin-line", "--user-property KEY VALUE", "WARREN_HOST"):
        assert text in pub_help
    sub_help = ok(run("sub", "--help")).stdout.decode()
    for text in ("Examples:", "-C, --count", "%t topic", "--retained-only", "Exit codes"):
        assert text in sub_help


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pub", "-t", "a"], "exactly one of -m, -f, -s, -l or -n"),
        (["pub", "-t", "a", "-m", "x", "-n"], "got -m, -n"),
        (["pub", "-t", "a/+", "-m", "x"], "only for subscribing"),
        (["pub", "-m", "x"], "give a topic"),
        (["pub", "-t", "a", "-m", "x", "-V", "311", "--content-type", "t"], "need MQTT 5"),
        (["sub", "-t", "a/#/b"], "'#' must be the whole last level"),
        (["sub", "-t", "a", "-c"], "-c needs a fixed client id"),
        (["sub"], "at least one topic"),
        (["sub", "-t", "a", "-F", "%z"], "unknown sequence %z"),
        (["sub", "-t", "a", "-L", "http://x/"], "mqtt://, mqtts://, ws:// or wss://"),
    ],
)
def test_usage_errors_exit_2_and_say_why(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr.decode()


def answer_once(response: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run `pub *args` against a stand-in server that answers any request with `response`."""
    with socket.create_server((HOST, 0)) as server:

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)  # the CONNECT
                connection.sendall(response)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        port = str(server.getsockname()[1])
        result = run("pub", "-h", HOST, "-p", port, "-t", "a", "-m", "x", *args)
        thread.join(WAIT)
    return result


def test_http_port_is_named() -> None:
    result = answer_once(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert result.returncode == 1
    assert "answered in HTTP, not MQTT" in result.stderr.decode()


def test_broker_without_mqtt5_gets_a_hint() -> None:
    # A broker that speaks only 3.1.1 answers a 5.0 CONNECT with return code 1.
    result = answer_once(b"\x20\x02\x00\x01")
    assert result.returncode == 1
    assert "does not speak MQTT 5; try -V mqttv311" in result.stderr.decode()
    result = answer_once(b"\x20\x02\x00\x01", "-V", "311")
    assert result.returncode == 1
    assert "unacceptable protocol version: try -V mqttv5" in result.stderr.decode()


def test_unreachable_broker_is_a_readable_error() -> None:
    result = run("pub", "-h", HOST, "-p", str(free_port()), "-t", "a", "-m", "x")
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "connection refused: is the broker running?" in stderr
    assert "Traceback" not in stderr


# --- publish / subscribe ------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip(broker: Broker, background: list[Running], uid: str, qos: int) -> None:
    topic = f"{uid}/rt"
    sub = start_sub(background, broker, "-t", topic, "-q", str(qos), "-C", "1", "-v")
    pub = ok(run("pub", *at(broker), "-d", "-t", topic, "-q", str(qos), "-m", f"hello {qos}"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{topic} hello {qos}\n".encode()
    acks = {0: [], 1: ["received PUBACK"], 2: ["received PUBREC", "received PUBCOMP"]}[qos]
    for ack in acks:
        assert ack in pub.stderr.decode()


@pytest.mark.parametrize("version", ["mqttv311", "311"])
def test_mqtt_311(broker: Broker, background: list[Running], uid: str, version: str) -> None:
    topic = f"{uid}/v3"
    sub = start_sub(background, broker, "-V", version, "-t", f"{uid}/#", "-q", "2", "-C", "2", "-v")
    assert "v3.1.1" in sub.stderr  # the CONNECT line of -d
    ok(run("pub", *at(broker), "-V", version, "-t", topic, "-q", "1", "-m", "one"))
    ok(run("pub", *at(broker), "-V", version, "-t", topic, "-q", "2", "-m", "two"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{topic} one\n{topic} two\n".encode()


def test_v5_publisher_to_311_subscriber_drops_properties(
    broker: Broker, background: list[Running], uid: str
) -> None:
    topic = f"{uid}/mixed"
    sub = start_sub(background, broker, "-V", "311", "-t", topic, "-C", "1", "--json")
    ok(run("pub", *at(broker), "-t", topic, "-m", "x", "--content-type", "text/plain"))
    status, out, err = sub.finish()
    assert status == 0, err
    record = json.loads(out)
    assert record["payload"] == "x"
    assert "properties" not in record  # MQTT 3.1.1 cannot carry them


def test_retained_message_reaches_late_subscriber(broker: Broker, uid: str) -> None:
    topic = f"{uid}/ret"
    ok(run("pub", *at(broker), "-t", topic, "-r", "-q", "1", "-m", "stale"))
    result = ok(run("sub", *at(broker), "-t", topic, "-C", "1", "-W", str(WAIT), "-F", "%t %p %r"))
    assert result.stdout == f"{topic} stale 1\n".encode()


def test_no_retained_flag_hides_retained(
    broker: Broker, background: list[Running], uid: str
) -> None:
    topic = f"{uid}/ret"
    ok(run("pub", *at(broker), "-t", topic, "-r", "-q", "1", "-m", "stale"))
    # The retained message is sent with the SUBACK, before the live one below.
    sub = start_sub(background, broker, "-t", topic, "-R", "-C", "1", "-F", "%p %r")
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-m", "fresh"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == b"fresh 0\n"


def test_retained_only_and_null_message_clears(
    broker: Broker, background: list[Running], uid: str
) -> None:
    ok(run("pub", *at(broker), "-t", f"{uid}/a", "-r", "-q", "1", "-m", "gone"))
    ok(run("pub", *at(broker), "-t", f"{uid}/a", "-r", "-q", "1", "-n"))  # clears it
    ok(run("pub", *at(broker), "-t", f"{uid}/b", "-r", "-q", "1", "-m", "kept"))
    sub = start_sub(background, broker, "-t", f"{uid}/#", "--retained-only", "-v")
    # The first message that is not retained ends --retained-only.
    ok(run("pub", *at(broker), "-t", f"{uid}/c", "-q", "1", "-m", "live"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{uid}/b kept\n".encode()


def test_stdin_lines_and_count(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/lines"
    sub = start_sub(background, broker, "-t", topic, "-q", "1", "-C", "4", "-F", "[%p]")
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-l", input=b"one\ntwo\n\nthree\r\nfive"))
    status, out, err = sub.finish()
    assert status == 0, err
    # -C 4: the fifth line was published but not printed; the sub exited by itself.
    assert out == b"[one]\n[two]\n[]\n[three]\n"


def test_stdin_lines_pipelined_qos2(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/many"
    lines = [f"m{i}" for i in range(200)]
    sub = start_sub(background, broker, "-t", topic, "-q", "2", "-C", "200")
    data = ("\n".join(lines) + "\n").encode()
    ok(run("pub", *at(broker), "-t", topic, "-q", "2", "-M", "5", "-l", input=data))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out.decode().splitlines() == lines  # all of them, in order


def test_file_and_stdin_payloads_are_byte_exact(
    broker: Broker, background: list[Running], uid: str, tmp_path: Path
) -> None:
    topic = f"{uid}/bin"
    blob = bytes(range(256))
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    sub = start_sub(background, broker, "-t", topic, "-q", "1", "-C", "2", "-F", "%l %x")
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-f", str(path)))
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-s", input=b"two\nlines\n"))
    status, out, err = sub.finish()
    assert status == 0, err
    text = b"two\nlines\n"
    assert out == f"256 {blob.hex()}\n{len(text)} {text.hex()}\n".encode()


def test_mqtt5_properties_in_json(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/props"
    sub = start_sub(background, broker, "-t", topic, "-q", "1", "-C", "1", "--json")
    ok(
        run(
            "pub", *at(broker), "-t", topic, "-q", "1", "-m", '{"n": 1}',
            "--content-type", "application/json",
            "--correlation-data", "req-42",
            "--response-topic", f"{uid}/reply",
            "--message-expiry", "3600",
            "--payload-format-utf8",
            "--user-property", "k", "v1",
            "--user-property", "k", "v2",
            "--user-property", "trace", "abc",
        )
    )  # fmt: skip
    status, out, err = sub.finish()
    assert status == 0, err
    record = json.loads(out)
    assert record["topic"] == topic
    assert record["qos"] == 1
    assert record["retain"] == 0
    assert record["payload"] == '{"n": 1}'
    assert record["payloadlen"] == 8
    assert isinstance(record["mid"], int)
    props = record["properties"]
    assert props["content-type"] == "application/json"
    assert props["correlation-data"] == "req-42"
    assert props["response-topic"] == f"{uid}/reply"
    assert props["payload-format-indicator"] == 1
    assert 0 < props["message-expiry-interval"] <= 3600  # the broker counts it down
    assert props["user-properties"] == [["k", "v1"], ["k", "v2"], ["trace", "abc"]]


def test_json_payload_embedding_and_binary_payload(
    broker: Broker, background: list[Running], uid: str, tmp_path: Path
) -> None:
    topic = f"{uid}/j"
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\x00")
    sub_j = start_sub(background, broker, "-t", topic, "-q", "1", "-C", "1", "-F", "%J")
    sub_b = start_sub(background, broker, "-t", f"{topic}/bin", "-q", "1", "-C", "1", "--json")
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-m", '{"temp": 21.5}'))
    ok(run("pub", *at(broker), "-t", f"{topic}/bin", "-q", "1", "-f", str(path)))
    status, out, err = sub_j.finish()
    assert status == 0, err
    assert json.loads(out)["payload"] == {"temp": 21.5}
    status, out, err = sub_b.finish()
    assert status == 0, err
    assert json.loads(out)["payload_base64"] == "/wA="


def test_format_sequences(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/fmt"
    fmt = r"%t|%p|%q|%r|%l|%x|%X|%%|%-3q|%05l|%.3t|%C|%P|\t|@@"
    sub = start_sub(background, broker, "-t", topic, "-q", "2", "-C", "1", "-F", fmt)
    ok(
        run(
            "pub", *at(broker), "-t", topic, "-q", "2", "-m", "héllo",
            "--content-type", "text/plain", "--user-property", "a", "b",
        )
    )  # fmt: skip
    status, out, err = sub.finish()
    assert status == 0, err
    hexed = "héllo".encode().hex()
    expected = (
        f"{topic}|héllo|2|0|6|{hexed}|{hexed.upper()}|%|2  |00006|{topic[:3]}|text/plain|a:b|\t|@\n"
    )
    assert out.decode() == expected


def test_no_eol(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/n"
    sub = start_sub(background, broker, "-t", topic, "-q", "1", "-C", "2", "-N", "-F", "%p,")
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-l", input=b"a\nb\n"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == b"a,b,"


def test_exit_on_subscribe_and_persistent_session(broker: Broker, uid: str) -> None:
    topic = f"{uid}/persist"
    session = ["-i", f"{uid}-s", "-q", "1", "-t", topic]
    # -E: subscribe, exit; -c keeps the session (and its subscription) at the broker.
    result = ok(run("sub", *at(broker), "-c", "-E", *session))
    assert result.stdout == b""
    ok(run("pub", *at(broker), "-t", topic, "-q", "1", "-m", "queued while away"))
    result = ok(run("sub", *at(broker), "-c", "-C", "1", "-W", str(WAIT), *session))
    assert result.stdout == b"queued while away\n"
    ok(run("sub", *at(broker), "-E", *session))  # a clean session ends the stored one


def test_unsubscribe_from_stored_session(broker: Broker, uid: str) -> None:
    topic = f"{uid}/u"
    session = ["-c", "-i", f"{uid}-u"]
    ok(run("sub", *at(broker), *session, "-q", "1", "-t", topic, "-E"))
    result = ok(run("sub", *at(broker), *session, "-d", "-U", topic))
    assert "received UNSUBACK (m1, [0x00])" in result.stderr.decode()
    result = ok(run("sub", *at(broker), *session, "-U", topic))
    assert f"there was no subscription to {topic!r}" in result.stderr.decode()  # 0x11
    ok(run("sub", *at(broker), "-i", f"{uid}-u", "-U", topic))  # clean: drop the session


def test_url_option(broker: Broker, background: list[Running], uid: str) -> None:
    topic = f"{uid}/url"
    url = f"mqtt://{broker.host}:{broker.mqtt_port}/{uid}/#"
    sub = Running(["sub", "-L", url, "-d", "-C", "1", "-v"])
    background.append(sub)
    sub.wait_for("received SUBACK")
    ok(run("pub", "-L", f"mqtt://{broker.host}:{broker.mqtt_port}/{topic}", "-m", "via url"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{topic} via url\n".encode()


def test_websocket(broker: Broker, background: list[Running], uid: str) -> None:
    if broker.ws_port is None:
        pytest.skip("the broker under test has no WebSocket listener")
    topic = f"{uid}/ws"
    url = f"ws://{broker.host}:{broker.ws_port}{broker.ws_path}"
    sub = Running(["sub", "-L", url, "-t", topic, "-q", "2", "-d", "-C", "2", "-v"])
    background.append(sub)
    sub.wait_for("received SUBACK")
    ok(run("pub", "-L", url, "-t", topic, "-q", "1", "-m", "over ws"))
    ok(run("pub", *at(broker), "-t", topic, "-q", "2", "-m", "over tcp"))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{topic} over ws\n{topic} over tcp\n".encode()


def test_environment_gives_host_and_port(
    broker: Broker, background: list[Running], uid: str
) -> None:
    topic = f"{uid}/env"
    sub = start_sub(background, broker, "-t", topic, "-C", "1")
    env = cli_env(WARREN_HOST=broker.host, WARREN_PORT=str(broker.mqtt_port))
    ok(run("pub", "-t", topic, "-m", "from env", env=env))
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == b"from env\n"


def test_will_is_sent_when_publisher_dies(
    broker: Broker, background: list[Running], uid: str
) -> None:
    will_topic = f"{uid}/will"
    sub = start_sub(background, broker, "-t", will_topic, "-q", "1", "-C", "1", "-v")
    pub = Running(
        [
            "pub", *at(broker), "-d", "-t", f"{uid}/x", "-l",
            "--will-topic", will_topic, "--will-payload", "pub died", "--will-qos", "1",
        ],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    background.append(pub)
    pub.wait_for("received CONNACK")
    pub.kill()  # no DISCONNECT: the broker must publish the will
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == f"{will_topic} pub died\n".encode()


def test_keepalive_pings(broker: Broker, background: list[Running], uid: str) -> None:
    sub = start_sub(background, broker, "-t", f"{uid}/k", "-k", "1")
    sub.wait_for("received PINGRESP")
    sub.proc.send_signal(signal.SIGINT)
    status, _, err = sub.finish()
    assert status == 130, err


def test_ctrl_c_exits_130_quietly(broker: Broker, background: list[Running], uid: str) -> None:
    sub = start_sub(background, broker, "-t", f"{uid}/#")
    sub.proc.send_signal(signal.SIGINT)
    status, out, err = sub.finish()
    assert status == 130
    assert out == b""
    assert "Traceback" not in err
    assert "sending DISCONNECT" in err  # it still said goodbye


def test_ctrl_c_while_pub_reads_stdin(broker: Broker, background: list[Running], uid: str) -> None:
    pub = Running(["pub", *at(broker), "-d", "-t", f"{uid}/x", "-l"], stdin=subprocess.PIPE)
    background.append(pub)
    pub.wait_for("received CONNACK")
    pub.proc.send_signal(signal.SIGINT)  # while a thread is blocked reading stdin
    status, _, err = pub.finish()
    assert status == 130, err
    assert "sending DISCONNECT" in err
    assert "Fatal Python error" not in err


def test_timeout_exits_27(broker: Broker, uid: str) -> None:
    result = run("sub", *at(broker), "-t", f"{uid}/quiet", "-W", "0.3")
    assert result.returncode == 27
    assert "Timed out" in result.stderr.decode()


def test_refused_subscription(make_broker: MakeBroker, uid: str) -> None:
    broker = make_broker(DENY_TOML.format(operation="subscribe"))
    if broker.kind == "mosquitto":
        pytest.skip("mosquitto checks read access per message, never refuses a SUBSCRIBE")
    result = run("sub", *at(broker), "-t", "secret/x", "-E")
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "subscription to 'secret/x' failed: not authorized" in stderr
    assert "every subscription was refused" in stderr
    # One refused filter among granted ones is a warning, not a failure.
    result = ok(run("sub", *at(broker), "-t", "secret/x", "-t", f"{uid}/open", "-E"))
    assert "subscription to 'secret/x' failed" in result.stderr.decode()
    result = run("sub", *at(broker), "-V", "311", "-t", "secret/x", "-E")
    assert result.returncode == 1
    assert "refused by the broker" in result.stderr.decode()


@pytest.mark.parametrize("qos", ["1", "2"])
def test_refused_publish(make_broker: MakeBroker, qos: str) -> None:
    broker = make_broker(DENY_TOML.format(operation="publish"))
    result = run("pub", *at(broker), "-t", "secret/x", "-q", qos, "-m", "x")
    assert result.returncode == 1
    assert "the broker refused the message to 'secret/x': not authorized" in (
        result.stderr.decode()
    )
    # MQTT 3.1.1 has no way to refuse a message: it is acknowledged (and dropped).
    ok(run("pub", *at(broker), "-V", "311", "-t", "secret/x", "-q", qos, "-m", "x"))


DENY_TOML = """
[[vpn.default.acl]]
action = "deny"
operation = "{operation}"
topic = "secret/#"
user = "*"
"""


# --- TLS and passwords: a mosquitto of our own ------------------------------------------


@dataclass
class SecureMosquitto:
    tls_port: int
    auth_port: int
    wss_port: int
    ca_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=WAIT)


def _make_certificates(directory: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=warren test CA", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=directory)  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2",
             "-extfile", "san.cnf", cwd=directory)  # fmt: skip


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mosquitto did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)  # bounded retry of the connect, not a synchronisation delay


@pytest.fixture(scope="module")
def secure_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    """A mosquitto with a TLS listener and a listener that requires a password."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists() or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    directory = tmp_path_factory.mktemp("secure-mosquitto")
    _make_certificates(directory)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(directory / "passwd"), "alice", "s3cret"],
        check=True,
        capture_output=True,
        timeout=WAIT,
    )
    tls_port, auth_port, wss_port = free_port(), free_port(), free_port()
    certificates = (
        f"cafile {directory / 'ca.crt'}\n"
        f"certfile {directory / 'server.crt'}\n"
        f"keyfile {directory / 'server.key'}\n"
    )
    conf = directory / "mosquitto.conf"
    conf.write_text(
        # Started as root, mosquitto would switch to user "mosquitto", who cannot read
        # pytest's private temporary directory; as any other user this line is ignored.
        f"user {getpass.getuser()}\n"
        "per_listener_settings true\n"
        f"listener {tls_port} {HOST}\n"
        "allow_anonymous true\n"
        f"{certificates}"
        f"listener {auth_port} {HOST}\n"
        "allow_anonymous false\n"
        f"password_file {directory / 'passwd'}\n"
        f"listener {wss_port} {HOST}\n"
        "protocol websockets\n"
        "allow_anonymous true\n"
        f"{certificates}"
    )
    log = directory / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        _wait_for_port(proc, tls_port, log)
        _wait_for_port(proc, auth_port, log)
        _wait_for_port(proc, wss_port, log)
        yield SecureMosquitto(tls_port, auth_port, wss_port, directory / "ca.crt")
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_tls_with_cafile(secure_mosquitto: SecureMosquitto, uid: str) -> None:
    port = str(secure_mosquitto.tls_port)
    ca = str(secure_mosquitto.ca_file)
    topic = f"{uid}/tls"
    ok(run("pub", "-h", "localhost", "-p", port, "--cafile", ca, "-t", topic, "-r", "-m", "s"))
    url = f"mqtts://127.0.0.1:{port}/{topic}"
    result = ok(run("sub", "-L", url, "--cafile", ca, "-C", "1", "-W", str(WAIT)))
    assert result.stdout == b"s\n"
    # Plain MQTT to the TLS port, and an unknown CA, are refused with a hint.
    result = run("pub", "-h", HOST, "-p", port, "-t", topic, "-m", "x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.decode()
    # An unknown CA is refused with a hint; --insecure accepts it.
    result = run("pub", "-L", url, "--tls", "-m", "x")
    assert result.returncode == 1
    assert "--cafile" in result.stderr.decode()
    ok(run("pub", "-L", url, "--insecure", "-m", "x"))


def test_secure_websocket(secure_mosquitto: SecureMosquitto, uid: str) -> None:
    ca = str(secure_mosquitto.ca_file)
    url = f"wss://localhost:{secure_mosquitto.wss_port}/mqtt"
    topic = f"{uid}/wss"
    ok(run("pub", "-L", url, "--cafile", ca, "-t", topic, "-r", "-q", "1", "-m", "w"))
    result = ok(run("sub", "-L", url, "--cafile", ca, "-t", topic, "-C", "1", "-W", str(WAIT)))
    assert result.stdout == b"w\n"


@pytest.mark.parametrize("version", ["5", "311"])
def test_password_required(secure_mosquitto: SecureMosquitto, uid: str, version: str) -> None:
    base = ["pub", "-h", HOST, "-p", str(secure_mosquitto.auth_port), "-V", version]
    message = ["-t", f"{uid}/auth", "-m", "x"]
    for credentials in ([], ["-u", "alice", "-P", "wrong"]):
        result = run(*base, *credentials, *message)
        assert result.returncode == 1
        stderr = result.stderr.decode()
        assert "connection refused: " in stderr
        assert "check --username/--password" in stderr
        assert "Traceback" not in stderr
    ok(run(*base, "-u", "alice", "-P", "s3cret", *message))
    env = cli_env(WARREN_USERNAME="alice", WARREN_PASSWORD="s3cret")
    ok(run(*base, *message, env=env))
    url = f"mqtt://alice:s3cret@{HOST}:{secure_mosquitto.auth_port}/{uid}/auth"
    ok(run("pub", "-L", url, "-V", version, "-m", "x"))
