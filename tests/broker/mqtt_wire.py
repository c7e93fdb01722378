"""Hand-built MQTT packets and a raw-socket client, for exact-bytes broker tests.

Independent of warren's codec on purpose: written from the OASIS specifications
(MQTT 3.1.1 and 5.0), so a shared misreading cannot make both sides agree.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

WAIT = 5.0

# Packet types (high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
NAMES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}

# MQTT 5 properties: id -> (name, type)
PROPERTIES: dict[int, tuple[str, str]] = {
    0x01: ("PayloadFormatIndicator", "byte"),
    0x02: ("MessageExpiryInterval", "u32"),
    0x03: ("ContentType", "str"),
    0x08: ("ResponseTopic", "str"),
    0x09: ("CorrelationData", "bin"),
    0x0B: ("SubscriptionIdentifier", "varint"),
    0x11: ("SessionExpiryInterval", "u32"),
    0x12: ("AssignedClientIdentifier", "str"),
    0x13: ("ServerKeepAlive", "u16"),
    0x15: ("AuthenticationMethod", "str"),
    0x16: ("AuthenticationData", "bin"),
    0x17: ("RequestProblemInformation", "byte"),
    0x18: ("WillDelayInterval", "u32"),
    0x19: ("RequestResponseInformation", "byte"),
    0x1A: ("ResponseInformation", "str"),
    0x1C: ("ServerReference", "str"),
    0x1F: ("ReasonString", "str"),
    0x21: ("ReceiveMaximum", "u16"),
    0x22: ("TopicAliasMaximum", "u16"),
    0x23: ("TopicAlias", "u16"),
    0x24: ("MaximumQoS", "byte"),
    0x25: ("RetainAvailable", "byte"),
    0x26: ("UserProperty", "pair"),
    0x27: ("MaximumPacketSize", "u32"),
    0x28: ("WildcardSubscriptionAvailable", "byte"),
    0x29: ("SubscriptionIdentifierAvailable", "byte"),
    0x2A: ("SharedSubscriptionAvailable", "byte"),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTIES.items()}
REPEATABLE = {"UserProperty", "SubscriptionIdentifier"}


# ------------------------------------------------------------------ encoding


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: str | bytes) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def props(items: dict[str, Any] | list[tuple[str, Any]] | None = None) -> bytes:
    """Encode MQTT 5 properties (with their length prefix)."""
    if items is None:
        items = []
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    body = bytearray()
    for name, value in pairs:
        values = value if name in REPEATABLE and isinstance(value, list) else [value]
        for v in values:
            pid = PROPERTY_IDS[name]
            kind = PROPERTIES[pid][1]
            body += varint(pid)
            if kind == "byte":
                body.append(v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "varint":
                body += varint(v)
            elif kind in ("str", "bin"):
                body += utf8(v)
            elif kind == "pair":
                body += utf8(v[0]) + utf8(v[1])
    return varint(len(body)) + bytes(body)


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect(
    client_id: str | bytes = "",
    *,
    version: int = 4,
    clean: bool = True,
    keepalive: int = 60,
    username: str | None = None,
    password: bytes | None = None,
    will: dict[str, Any] | None = None,
    properties: dict[str, Any] | list[tuple[str, Any]] | None = None,
    protocol_name: bytes = b"MQTT",
    level: int | None = None,
    reserved_flag: bool = False,
) -> bytes:
    """CONNECT. `will` = {topic, payload, qos, retain, properties (v5)}."""
    flags = 0x02 if clean else 0
    if reserved_flag:
        flags |= 0x01
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += props(will.get("properties"))
        payload += utf8(will["topic"]) + utf8(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    body = utf8(protocol_name) + bytes([level if level is not None else version, flags])
    body += struct.pack("!H", keepalive)
    if version == 5:
        body += props(properties)
    return packet(0x10, body + payload)


def publish(
    topic: str | bytes,
    payload: bytes = b"",
    *,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    pid: int | None = None,
    version: int = 4,
    properties: dict[str, Any] | list[tuple[str, Any]] | None = None,
) -> bytes:
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", pid if pid is not None else 1)
    if version == 5:
        body += props(properties)
    return packet(first, body + payload)


def subscribe(
    pid: int,
    filters: list[tuple[str | bytes, int]],
    *,
    version: int = 4,
    properties: dict[str, Any] | list[tuple[str, Any]] | None = None,
) -> bytes:
    """SUBSCRIBE; each filter carries its options byte (QoS, and v5 NL/RAP/RH bits)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += props(properties)
    for topic, options in filters:
        body += utf8(topic) + bytes([options])
    return packet(0x82, body)


def sub_options(qos: int, *, no_local: bool = False, rap: bool = False, rh: int = 0) -> int:
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (rh << 4)


def unsubscribe(pid: int, filters: list[str], *, version: int = 4) -> bytes:
    body = struct.pack("!H", pid) + (props() if version == 5 else b"")
    for topic in filters:
        body += utf8(topic)
    return packet(0xA2, body)


def ack(kind: int, pid: int, reason: int | None = None) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP; `reason` only for MQTT 5 (omitted when None)."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    body = struct.pack("!H", pid) + (bytes([reason]) if reason is not None else b"")
    return packet(first, body)


PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_V4 = b"\xe0\x00"


def disconnect(reason: int = 0, properties: dict[str, Any] | None = None) -> bytes:
    """An MQTT 5 DISCONNECT."""
    return packet(0xE0, bytes([reason]) + props(properties))


# ------------------------------------------------------------------ decoding


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, mult = 0, 1
    for i in range(4):
        if pos + i >= len(data):
            raise IndexError("incomplete varint")
        b = data[pos + i]
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, pos + i + 1
    raise ValueError("varint longer than 4 bytes")


def decode_props(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    length, pos = decode_varint(data, pos)
    end = pos + length
    out: dict[str, Any] = {}
    while pos < end:
        pid, pos = decode_varint(data, pos)
        name, kind = PROPERTIES[pid]
        value: Any
        if kind == "byte":
            value, pos = data[pos], pos + 1
        elif kind == "u16":
            value, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif kind == "u32":
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == "varint":
            value, pos = decode_varint(data, pos)
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", data, pos)[0]
            raw = data[pos + 2 : pos + 2 + n]
            value, pos = (raw.decode() if kind == "str" else raw), pos + 2 + n
        else:  # pair
            n = struct.unpack_from("!H", data, pos)[0]
            k = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            v = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            value = (k, v)
        if name in REPEATABLE:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out, end


@dataclass
class Packet:
    """One received control packet; `raw` is its exact bytes."""

    type: int
    flags: int
    body: bytes
    raw: bytes
    version: int = 4
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return NAMES.get(self.type, f"type{self.type}")

    def __repr__(self) -> str:
        return f"<{self.name} {self.raw.hex(' ')} {self.fields}>"

    def decode(self) -> Packet:
        """Fill `fields` for the packet types a server sends."""
        b, v, f = self.body, self.version, self.fields
        if self.type == CONNACK:
            f["session_present"] = bool(b[0] & 1)
            f["code"] = b[1]
            f["props"] = decode_props(b, 2)[0] if v == 5 and len(b) > 2 else {}
        elif self.type == PUBLISH:
            qos = (self.flags >> 1) & 3
            f.update(qos=qos, retain=bool(self.flags & 1), dup=bool(self.flags & 8))
            n = struct.unpack_from("!H", b, 0)[0]
            f["topic"] = b[2 : 2 + n].decode()
            pos = 2 + n
            if qos:
                f["pid"] = struct.unpack_from("!H", b, pos)[0]
                pos += 2
            f["props"], pos = decode_props(b, pos) if v == 5 else ({}, pos)
            f["payload"] = b[pos:]
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            f["pid"] = struct.unpack_from("!H", b, 0)[0]
            pos = 2
            if v == 5 and self.type in (SUBACK, UNSUBACK):
                f["props"], pos = decode_props(b, pos)
            if self.type in (SUBACK, UNSUBACK):
                f["codes"] = list(b[pos:])
            else:
                f["code"] = b[2] if len(b) > 2 else 0
                f["props"] = decode_props(b, 3)[0] if len(b) > 3 else {}
        elif self.type == DISCONNECT:
            f["code"] = b[0] if b else 0
            f["props"] = decode_props(b, 1)[0] if len(b) > 1 else {}
        return self


class ConnectionClosed(AssertionError):
    """The broker closed the connection while a packet was expected."""


class RawClient:
    """A TCP connection that sends bytes as given and parses what comes back."""

    def __init__(
        self, host: str, port: int, *, version: int = 4, rcvbuf: int | None = None
    ) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=WAIT)
        else:
            # Set before connecting, so the window the handshake advertises is small.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(WAIT)
            self.sock.connect((host, port))
        self.version = version
        self.buffer = bytearray()
        self.closed = False

    @classmethod
    def to(cls, broker: Any, *, version: int = 4, rcvbuf: int | None = None) -> RawClient:
        return cls(broker.host, broker.mqtt_port, version=version, rcvbuf=rcvbuf)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed("connection closed by the broker")
        self.buffer += chunk

    def _take_packet(self) -> Packet | None:
        if len(self.buffer) < 2:
            return None
        try:
            length, pos = decode_varint(bytes(self.buffer), 1)
        except IndexError:
            return None
        if len(self.buffer) < pos + length:
            return None
        raw = bytes(self.buffer[: pos + length])
        del self.buffer[: pos + length]
        return Packet(raw[0] >> 4, raw[0] & 0x0F, raw[pos:], raw, self.version).decode()

    def recv(self, timeout: float = WAIT, what: str = "a packet") -> Packet:
        """The next packet; AssertionError naming `what` on timeout or close."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._take_packet()
            if pkt is not None:
                return pkt
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"no {what} from the broker within {timeout}s"
                    f" (buffered: {bytes(self.buffer).hex(' ') or 'nothing'})"
                ) from None
            except ConnectionClosed:
                raise ConnectionClosed(
                    f"broker closed the connection while waiting for {what}"
                    f" (buffered: {bytes(self.buffer).hex(' ') or 'nothing'})"
                ) from None

    def expect(self, ptype: int, timeout: float = WAIT) -> Packet:
        pkt = self.recv(timeout, NAMES[ptype])
        assert pkt.type == ptype, f"expected {NAMES[ptype]}, got {pkt!r}"
        return pkt

    def expect_bytes(self, expected: bytes, timeout: float = WAIT) -> None:
        """The next bytes on the wire are exactly `expected`."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < len(expected):
            try:
                self._fill(deadline)
            except TimeoutError:
                break
            except ConnectionClosed:
                break
        got = bytes(self.buffer[: len(expected)])
        assert got == expected, (
            f"expected bytes {expected.hex(' ')}, got {got.hex(' ') or 'nothing'}"
            + (" (connection closed)" if self.closed else "")
        )
        del self.buffer[: len(expected)]

    def expect_closed(self, timeout: float = WAIT) -> bytes:
        """Wait for the broker to close the connection; return any bytes sent before."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"broker did not close the connection within {timeout}s"
                    f" (received: {bytes(self.buffer).hex(' ') or 'nothing'})"
                ) from None
            except ConnectionClosed:
                break
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def expect_disconnect_and_close(self, codes: set[int], timeout: float = WAIT) -> Packet:
        """MQTT 5: a DISCONNECT with a reason in `codes`, then the connection closes."""
        pkt = self.recv(timeout, f"DISCONNECT {sorted(hex(c) for c in codes)}")
        assert pkt.type == DISCONNECT, f"expected DISCONNECT {[hex(c) for c in codes]}, got {pkt!r}"
        assert pkt.fields["code"] in codes, (
            f"DISCONNECT reason {pkt.fields['code']:#04x}, expected one of"
            f" {[hex(c) for c in sorted(codes)]}: {pkt!r}"
        )
        rest = self.expect_closed(timeout)
        assert rest == b"", f"bytes after DISCONNECT: {rest.hex(' ')}"
        return pkt

    def connect(self, client_id: str = "", **kwargs: Any) -> Packet:
        """Send CONNECT (version of this client) and require a successful CONNACK."""
        self.send(connect(client_id, version=self.version, **kwargs))
        pkt = self.expect(CONNACK)
        assert pkt.fields["code"] == 0, f"CONNACK refused: {pkt!r}"
        return pkt

    def ping(self, timeout: float = WAIT) -> None:
        """PINGREQ and require PINGRESP as the very next packet."""
        self.send(PINGREQ_BYTES)
        pkt = self.recv(timeout, "PINGRESP")
        assert pkt.raw == PINGRESP_BYTES, f"expected PINGRESP d0 00, got {pkt!r}"

    def subscribe(self, pid: int, filters: list[tuple[str, int]], **kw: Any) -> list[int]:
        self.send(subscribe(pid, filters, version=self.version, **kw))
        pkt = self.expect(SUBACK)
        assert pkt.fields["pid"] == pid, f"SUBACK for packet id {pkt.fields['pid']}, sent {pid}"
        return list(pkt.fields["codes"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
