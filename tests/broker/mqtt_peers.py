"""Real MQTT clients, wrapped so tests wait on events with bounded, explained waits.

- `PahoPeer`: paho-mqtt 2.x (MQTT 3.1.1 or 5, TCP or WebSocket), network thread.
- `JsPeer`: MQTT.js driven through tests/js/peer.mjs (JSON lines over stdio).
- `MosqSub` / `mosq_pub`: Debian's mosquitto_sub / mosquitto_pub command-line clients.

Every wait has a deadline and fails with what was expected and what was seen.
Absence ("this must NOT arrive") is proven with a barrier, never with a sleep:
the publisher of the message under test then publishes a marker to the
receiver; a broker delivers one publisher's messages to one session in order,
so once the marker is in, anything routed before it is in too.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 5.0  # anything the broker should do promptly
JS_DIR = Path(__file__).resolve().parent.parent / "js"
BARRIER_ROOT = "_barrier"
_tokens = itertools.count(1)


@dataclass
class Msg:
    """A received application message, normalised across clients."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool = False
    props: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        extra = f" {self.props}" if self.props else ""
        flags = f"q{self.qos}{' r' if self.retain else ''}{' dup' if self.dup else ''}"
        return f"<Msg {self.topic!r} {self.payload[:40]!r} {flags}{extra}>"


# Property names used in Msg.props (the paho spelling).
PROP_NAMES = (
    "PayloadFormatIndicator",
    "MessageExpiryInterval",
    "ContentType",
    "ResponseTopic",
    "CorrelationData",
    "SubscriptionIdentifier",
    "TopicAlias",
    "UserProperty",
)


class Inbox:
    """Received messages with waits, barriers and absence checks."""

    name = "client"
    client_id = ""

    def __init__(self) -> None:
        self._msgs: list[Msg] = []
        self._cond = threading.Condition()
        self._barrier_subscribed = False

    def _deliver(self, msg: Msg) -> None:
        with self._cond:
            self._msgs.append(msg)
            self._cond.notify_all()

    def expect(
        self, count: int = 1, timeout: float = WAIT, *, topic: str | None = None
    ) -> list[Msg]:
        """Take the first `count` messages (optionally only those on `topic`)."""

        def matching() -> list[Msg]:
            return [m for m in self._msgs if topic is None or m.topic == topic]

        deadline = time.monotonic() + timeout
        with self._cond:
            while len(matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: expected {count} message(s)"
                        f"{' on ' + repr(topic) if topic else ''} within {timeout}s,"
                        f" got {len(matching())}: {self._msgs}"
                    )
                self._cond.wait(remaining)
            got = matching()[:count]
            for m in got:
                self._msgs.remove(m)
            return got

    def expect_one(self, timeout: float = WAIT, *, topic: str | None = None) -> Msg:
        return self.expect(1, timeout, topic=topic)[0]

    def pending(self) -> list[Msg]:
        with self._cond:
            return [m for m in self._msgs if not m.topic.startswith(BARRIER_ROOT + "/")]

    def assert_nothing(self, why: str = "") -> None:
        """No (non-marker) message is waiting. Call after `barrier`."""
        extra = self.pending()
        assert not extra, f"{self.name}: unexpected message(s){' ' + why if why else ''}: {extra}"

    def barrier(self, via: Inbox | None = None, timeout: float = WAIT) -> None:
        """Return once every message `via` (default: self) caused before now is in."""
        marker_topic = f"{BARRIER_ROOT}/{self.client_id or id(self)}"
        if not self._barrier_subscribed:
            self._subscribe_marker(marker_topic)
            self._barrier_subscribed = True
        token = str(next(_tokens)).encode()
        (via or self)._publish_marker(marker_topic, token)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self._msgs if m.topic == marker_topic and m.payload == token]
                if found:
                    self._msgs[:] = [m for m in self._msgs if m.topic != marker_topic]
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: barrier marker {marker_topic!r} not delivered within"
                        f" {timeout}s; messages so far: {self._msgs}"
                    )
                self._cond.wait(remaining)

    def _subscribe_marker(self, topic: str) -> None:
        raise NotImplementedError

    def _publish_marker(self, topic: str, token: bytes) -> None:
        raise NotImplementedError


# ------------------------------------------------------------------- paho


@dataclass
class Connack:
    reason_code: int
    session_present: bool
    props: dict[str, Any]


def paho_props(packet_type: int, values: dict[str, Any] | None) -> Properties | None:
    if not values:
        return None
    p = Properties(packet_type)
    for name, value in values.items():
        if name == "UserProperty":
            p.UserProperty = list(value)
        else:
            setattr(p, name, value)
    return p


def props_dict(p: Properties | None) -> dict[str, Any]:
    if p is None:
        return {}
    out = {}
    for name in (
        *PROP_NAMES,
        "AssignedClientIdentifier",
        "ServerKeepAlive",
        "ReceiveMaximum",
        "TopicAliasMaximum",
        "MaximumPacketSize",
        "SessionExpiryInterval",
        "ReasonString",
        "MaximumQoS",
        "RetainAvailable",
        "WildcardSubscriptionAvailable",
        "SharedSubscriptionAvailable",
        "SubscriptionIdentifierAvailable",
        "ResponseInformation",
        "ServerReference",
    ):
        if hasattr(p, name):
            value = getattr(p, name)
            if name == "SubscriptionIdentifier" and not isinstance(value, list):
                value = [value]
            out[name] = value
    return out


class PahoPeer(Inbox):
    """paho-mqtt 2.x client with its network thread; all calls wait for their ack."""

    def __init__(
        self,
        broker: Any,
        client_id: str,
        *,
        version: int = 5,
        transport: str = "tcp",
        clean: bool = True,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        will: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.broker = broker
        self.client_id = client_id
        self.version = version
        self.transport = transport
        self.name = name or f"paho-v{version}-{transport}:{client_id or '<empty>'}"
        self.clean = clean
        self.keepalive = keepalive
        self.connect_properties = properties
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {}
        if version != 5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport="websockets" if transport == "ws" else "tcp",
            reconnect_on_failure=False,
            **kwargs,
        )
        if transport == "ws":
            self.client.ws_set_options(path=broker.ws_path)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(
                will["topic"],
                will.get("payload", b""),
                will.get("qos", 0),
                will.get("retain", False),
                properties=paho_props(PacketTypes.WILLMESSAGE, will.get("properties")),
            )
        self._lock = threading.Condition()
        self._connack: Connack | None = None
        self._subacks: dict[int, list[int]] = {}
        self._unsubacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self.disconnects: list[tuple[int, dict[str, Any]]] = []
        c = self.client
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.connected = False

    # callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._connack = Connack(
                reason_code.value, bool(flags.session_present), props_dict(properties)
            )
            self.connected = reason_code.value == 0
            self._lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._lock.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._unsubacks[mid] = [rc.value for rc in reason_codes]
            self._lock.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._pubacks[mid] = reason_code.value
            self._lock.notify_all()

    def _on_message(self, client, userdata, m) -> None:  # type: ignore[no-untyped-def]
        self._deliver(
            Msg(
                m.topic,
                bytes(m.payload),
                m.qos,
                bool(m.retain),
                bool(m.dup),
                props_dict(getattr(m, "properties", None)),
            )
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.connected = False
            self.disconnects.append((reason_code.value, props_dict(properties)))
            self._lock.notify_all()

    def _wait(self, ready: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = ready()
                if value is not None:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout}s"
                        f" (disconnects: {self.disconnects})"
                    )
                self._lock.wait(remaining)

    # actions
    def connect(self, *, expect_success: bool = True, timeout: float = WAIT) -> Connack:
        kwargs: dict[str, Any] = {}
        if self.version == 5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = paho_props(PacketTypes.CONNECT, self.connect_properties)
        with self._lock:
            self._connack = None
        self.client.connect(self.broker.host, self._port(), self.keepalive, **kwargs)
        self.client.loop_start()
        connack = self._wait(
            lambda: (
                self._connack or (("refused", self.disconnects[-1]) if self.disconnects else None)
            ),
            "CONNACK",
            timeout,
        )
        if isinstance(connack, tuple):
            raise AssertionError(f"{self.name}: connection closed before CONNACK: {connack}")
        if expect_success:
            assert connack.reason_code == 0, f"{self.name}: CONNACK refused: {connack}"
        return connack

    def _port(self) -> int:
        return int(self.broker.ws_port if self.transport == "ws" else self.broker.mqtt_port)

    def subscribe(
        self,
        topic: str | list[str],
        qos: int = 0,
        *,
        no_local: bool = False,
        rap: bool = False,
        rh: int = 0,
        properties: dict[str, Any] | None = None,
    ) -> list[int]:
        """SUBSCRIBE and wait for SUBACK; returns the granted QoS / reason codes."""
        topics = [topic] if isinstance(topic, str) else topic
        if self.version == 5:
            opts = SubscribeOptions(
                qos=qos, noLocal=no_local, retainAsPublished=rap, retainHandling=rh
            )
            rc, mid = self.client.subscribe(
                [(t, opts) for t in topics],
                properties=paho_props(PacketTypes.SUBSCRIBE, properties),
            )
        else:
            rc, mid = self.client.subscribe([(t, qos) for t in topics])
        assert rc == 0, f"{self.name}: subscribe({topics}) not sent: rc={rc}"
        return list(self._wait(lambda: self._subacks.get(mid), f"SUBACK for {topics}"))

    def unsubscribe(self, topic: str | list[str]) -> list[int]:
        rc, mid = self.client.unsubscribe(topic)
        assert rc == 0, f"{self.name}: unsubscribe not sent: rc={rc}"
        return list(self._wait(lambda: self._unsubacks.get(mid), "UNSUBACK"))

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
        *,
        wait: bool = True,
    ) -> int:
        """PUBLISH; waits for PUBACK/PUBCOMP (QoS > 0) and returns its reason code."""
        info = self.client.publish(
            topic, payload, qos, retain, properties=paho_props(PacketTypes.PUBLISH, properties)
        )
        assert info.rc == 0, f"{self.name}: publish to {topic!r} not sent: rc={info.rc}"
        if not wait:
            return 0
        what = f"{'PUBACK' if qos == 1 else 'PUBCOMP' if qos == 2 else 'send'} for {topic!r}"
        return int(self._wait(lambda: self._pubacks.get(info.mid), what))

    def disconnect(
        self, reason: int = 0, properties: dict[str, Any] | None = None, timeout: float = WAIT
    ) -> None:
        """Clean DISCONNECT; returns once paho has closed the socket."""
        if not self.connected:
            self.client.loop_stop()
            return
        n = len(self.disconnects)
        kwargs: dict[str, Any] = {}
        if self.version == 5:
            kwargs["reasoncode"] = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
            kwargs["properties"] = paho_props(PacketTypes.DISCONNECT, properties)
        self.client.disconnect(**kwargs)
        self._wait(lambda: True if len(self.disconnects) > n else None, "disconnect", timeout)
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the TCP connection abruptly (no DISCONNECT): wills fire."""
        sock = self.client.socket()
        raw = getattr(sock, "_socket", sock)
        n = len(self.disconnects)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
        self._wait(lambda: True if len(self.disconnects) > n else None, "local disconnect")
        self.client.loop_stop()

    def wait_disconnected(self, timeout: float = WAIT) -> tuple[int, dict[str, Any]]:
        """Wait for the broker to end this connection; returns (reason code, properties)."""
        return self._wait(
            lambda: self.disconnects[-1] if self.disconnects and not self.connected else None,
            "disconnection by the broker",
            timeout,
        )

    def close(self) -> None:
        try:
            if self.connected:
                self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _subscribe_marker(self, topic: str) -> None:
        self.subscribe(topic, 1)

    def _publish_marker(self, topic: str, token: bytes) -> None:
        self.publish(topic, token, 1)


# ----------------------------------------------------------------- MQTT.js


def _js_encode(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return {"$b64": base64.b64encode(obj).decode()}
    if isinstance(obj, dict):
        return {k: _js_encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_js_encode(v) for v in obj]
    return obj


def _js_decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$b64"}:
            return base64.b64decode(obj["$b64"])
        return {k: _js_decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_js_decode(v) for v in obj]
    return obj


# MQTT.js property names -> the paho names used in Msg.props
JS_PROP_NAMES = {
    "payloadFormatIndicator": "PayloadFormatIndicator",
    "messageExpiryInterval": "MessageExpiryInterval",
    "contentType": "ContentType",
    "responseTopic": "ResponseTopic",
    "correlationData": "CorrelationData",
    "subscriptionIdentifier": "SubscriptionIdentifier",
    "topicAlias": "TopicAlias",
    "userProperties": "UserProperty",
}


def _js_props(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for js, name in JS_PROP_NAMES.items():
        if js in p:
            value = p[js]
            if js == "userProperties":
                pairs = []
                for k, v in value.items():
                    pairs += [(k, x) for x in (v if isinstance(v, list) else [v])]
                value = pairs
            if js == "subscriptionIdentifier" and not isinstance(value, list):
                value = [value]
            out[name] = value
    return out


class JsPeer(Inbox):
    """MQTT.js (npm `mqtt`) in a node subprocess, over TCP or WebSocket."""

    def __init__(
        self,
        broker: Any,
        client_id: str,
        *,
        version: int = 5,
        transport: str = "tcp",
        clean: bool = True,
        options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not (JS_DIR / "node_modules" / "mqtt").exists():
            raise AssertionError(f"MQTT.js missing: run `npm ci` in {JS_DIR}")
        self.broker = broker
        self.client_id = client_id
        self.version = version
        self.transport = transport
        self.name = name or f"mqttjs-v{version}-{transport}:{client_id}"
        self.url = broker.ws_url if transport == "ws" else broker.tcp_url
        self.options = {
            "clientId": client_id,
            "protocolVersion": version,
            "clean": clean,
            "reconnectPeriod": 0,
            "connectTimeout": 5000,
            **(options or {}),
        }
        self.proc = subprocess.Popen(
            ["node", str(JS_DIR / "peer.mjs")],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._events: list[dict[str, Any]] = []
        self._ev_cond = threading.Condition()
        self._ids = itertools.count(1)
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = _js_decode(json.loads(line))
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            if ev.get("ev") == "message":
                self._deliver(
                    Msg(
                        ev["topic"],
                        ev["payload"],
                        ev["qos"],
                        ev["retain"],
                        ev.get("dup", False),
                        _js_props(ev.get("properties") or {}),
                    )
                )
            with self._ev_cond:
                self._events.append(ev)
                self._ev_cond.notify_all()
        with self._ev_cond:
            self._events.append({"ev": "exit"})
            self._ev_cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(_js_encode(cmd)) + "\n")
        self.proc.stdin.flush()

    def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._ev_cond:
            while True:
                for ev in self._events:
                    if pred(ev):
                        return ev
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout}s; events:"
                        f" {[e for e in self._events if e.get('ev') != 'message']}"
                        f"; stderr: {''.join(self._stderr)[-2000:]}"
                    )
                self._ev_cond.wait(remaining)

    def connect(self, *, expect_success: bool = True) -> dict[str, Any]:
        self._send({"op": "connect", "url": self.url, "options": self.options})
        ev = self.wait_event(lambda e: e["ev"] in ("connect", "error", "close", "exit"), "CONNACK")
        if expect_success:
            assert ev["ev"] == "connect", f"{self.name}: connect failed: {ev}"
        return ev

    def subscribe(
        self,
        topic: str,
        qos: int = 0,
        *,
        no_local: bool = False,
        rap: bool = False,
        rh: int = 0,
        properties: dict[str, Any] | None = None,
    ) -> list[int]:
        rid = next(self._ids)
        opts: dict[str, Any] = {"qos": qos}
        if self.version == 5:
            opts.update(nl=no_local, rap=rap, rh=rh)
            if properties:
                opts["properties"] = properties
        self._send({"op": "subscribe", "id": rid, "topic": topic, "options": opts})
        ev = self.wait_event(lambda e: e.get("id") == rid, f"SUBACK for {topic!r}")
        assert not ev.get("error"), f"{self.name}: subscribe {topic!r} failed: {ev}"
        return [g["qos"] for g in ev["granted"]]

    def publish(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        rid = next(self._ids)
        opts: dict[str, Any] = {"qos": qos, "retain": retain}
        if properties:
            opts["properties"] = properties
        self._send(
            {"op": "publish", "id": rid, "topic": topic, "payload": payload, "options": opts}
        )
        ev = self.wait_event(lambda e: e.get("id") == rid, f"publish ack for {topic!r}")
        assert not ev.get("error"), f"{self.name}: publish to {topic!r} failed: {ev}"
        return ev

    def disconnect(self) -> None:
        self._send({"op": "end"})
        self.wait_event(lambda e: e["ev"] in ("ended", "exit"), "end of connection")

    def drop(self) -> None:
        self._send({"op": "drop"})
        self.wait_event(lambda e: e["ev"] in ("close", "exit"), "socket close")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"op": "exit"})
                self.proc.wait(WAIT)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def _subscribe_marker(self, topic: str) -> None:
        self.subscribe(topic, 1)

    def _publish_marker(self, topic: str, token: bytes) -> None:
        self.publish(topic, token, 1)


# ------------------------------------------------------- mosquitto clients


class MosqSub(Inbox):
    """mosquitto_sub (Debian mosquitto-clients) printing one parseable line per message."""

    FORMAT = "MSG|%q|%r|%t|%x"

    def __init__(
        self,
        broker: Any,
        client_id: str,
        topics: Iterable[str],
        *,
        qos: int = 1,
        version: int = 5,
        extra: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.name = f"mosquitto_sub-v{version}:{client_id}"
        args = [
            # stdbuf: line-buffered stdout, or the lines sit in a pipe buffer.
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.mqtt_port),
            "-i",
            client_id,
            "-q",
            str(qos),
            "-V",
            "mqttv5" if version == 5 else "mqttv311",
            "-d",
            "-F",
            self.FORMAT,
            *extra,
        ]
        self.topics = list(topics)
        for t in self.topics:
            args += ["-t", t]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._sub_cond = threading.Condition()
        self.subacks = 0
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + WAIT
        with self._sub_cond:
            # mosquitto_sub -d prints "Subscribed (mid: N): ..." once per SUBSCRIBE packet.
            while self.subacks < 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{self.name}: not subscribed; output: {self.lines}")
                self._sub_cond.wait(min(remaining, 0.5))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._sub_cond:
                self.lines.append(line)
                if line.startswith("Subscribed (mid"):
                    self.subacks += 1
                self._sub_cond.notify_all()
            if line.startswith("MSG|"):
                _, q, r, topic, hexpayload = line.split("|", 4)
                self._deliver(Msg(topic, bytes.fromhex(hexpayload), int(q), r == "1"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mosq_pub(
    broker: Any,
    topic: str,
    payload: bytes,
    *,
    qos: int = 1,
    retain: bool = False,
    version: int = 5,
    client_id: str | None = None,
    extra: Iterable[str] = (),
) -> None:
    """One mosquitto_pub run; the payload goes through stdin (-s) so any bytes work."""
    args = [
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.mqtt_port),
        "-t",
        topic,
        "-q",
        str(qos),
        "-V",
        "mqttv5" if version == 5 else "mqttv311",
        "-s",
        *extra,
    ]
    if client_id:
        args += ["-i", client_id]
    if retain:
        args.append("-r")
    done = subprocess.run(args, input=payload, capture_output=True, timeout=WAIT * 2)
    assert done.returncode == 0, (
        f"mosquitto_pub {topic!r} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    )


class Peers:
    """Creates clients with unique ids for one test and closes them all afterwards."""

    def __init__(self, broker: Any, uid: str) -> None:
        self.broker = broker
        self.uid = uid
        self._n = itertools.count(1)
        self._all: list[Any] = []

    def next_id(self) -> str:
        return f"{self.uid}c{next(self._n)}"

    def paho(
        self,
        *,
        broker: Any = None,
        client_id: str | None = None,
        connect: bool = True,
        **kwargs: Any,
    ) -> PahoPeer:
        peer = PahoPeer(
            broker or self.broker, self.next_id() if client_id is None else client_id, **kwargs
        )
        self._all.append(peer)
        if connect:
            peer.connect()
        return peer

    def js(
        self,
        *,
        broker: Any = None,
        client_id: str | None = None,
        connect: bool = True,
        **kwargs: Any,
    ) -> JsPeer:
        peer = JsPeer(
            broker or self.broker, self.next_id() if client_id is None else client_id, **kwargs
        )
        self._all.append(peer)
        if connect:
            peer.connect()
        return peer

    def mosq_sub(self, topics: Iterable[str], *, broker: Any = None, **kwargs: Any) -> MosqSub:
        peer = MosqSub(broker or self.broker, self.next_id(), topics, **kwargs)
        self._all.append(peer)
        return peer

    def raw(self, *, broker: Any = None, version: int = 4) -> Any:
        from mqtt_wire import RawClient

        client = RawClient.to(broker or self.broker, version=version)
        self._all.append(client)
        return client

    def close_all(self) -> None:
        for peer in reversed(self._all):
            with contextlib.suppress(Exception):
                peer.close()
