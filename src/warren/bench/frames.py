"""The wire side of the load generator: pre-encoded frames and a cheap packet counter.

Nothing here encodes or decodes per message on the hot path. Publishers send slices
of a :class:`FrameRing` (the same PUBLISH encoded ``count`` times, or with packet
identifiers 1..count for QoS 1), and only the send timestamp is patched in when
latency is measured. Subscribers feed whatever ``recv_into`` returned to a
:class:`PacketScanner`, which skips packets by their fixed header and remaining
length and, once it has seen one frame of the size it counts, checks whole runs of
equal-sized frames with a few strided byte comparisons done in C.

The handshake (CONNECT/CONNACK, SUBSCRIBE/SUBACK) goes through Warren's own sans-I/O
codec, :mod:`warren.codecs.mqtt`, on a blocking socket.
"""

from __future__ import annotations

import socket
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Final, TypeVar

from warren.codecs.mqtt import (
    ConnAck,
    Connect,
    Disconnect,
    MQTTConnection,
    PingReq,
    Role,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    encode_publish,
)

__all__ = [
    "PINGREQ",
    "PUBACK",
    "PUBLISH",
    "STAMP",
    "FrameRing",
    "HandshakeError",
    "PacketScanner",
    "Session",
    "open_session",
]

PUBLISH: Final = 3
PUBACK: Final = 4
STAMP: Final = struct.Struct(">Q")  # send time, CLOCK_MONOTONIC ns, first payload bytes
_FILLER: Final = 0xA5  # payload filler: never a PUBLISH first byte, so misalignment shows


_P = TypeVar("_P")


class HandshakeError(Exception):
    """The broker refused or broke off CONNECT or SUBSCRIBE."""


@dataclass(frozen=True, slots=True)
class FrameRing:
    """``count`` PUBLISH frames of ``frame_size`` bytes, back to back in ``data``.

    QoS 0: identical frames, so any contiguous run can be sent as one slice.
    QoS 1: frame ``i`` carries packet identifier ``i + 1``; a publisher with at most
    ``count - 1`` messages in flight never reuses an identifier still in flight.
    """

    data: bytearray
    frame_size: int
    count: int
    payload_offset: int

    @classmethod
    def build(
        cls, topic: str, payload_size: int, qos: int, protocol_level: int, count: int
    ) -> FrameRing:
        payload = bytes((_FILLER,)) * payload_size
        topic_bytes = topic.encode()
        frames: list[bytes] = []
        for index in range(count):
            frames.append(
                encode_publish(
                    topic_bytes,
                    payload,
                    qos,
                    False,
                    False,
                    (index + 1) if qos else None,
                    None,
                    protocol_level,
                )
            )
        size = len(frames[0])
        if any(len(frame) != size for frame in frames):
            raise ValueError("PUBLISH frames of one ring must have one size")
        return cls(bytearray(b"".join(frames)), size, count, size - payload_size)

    def stamp(self, first: int, count: int, now_ns: int) -> None:
        """Write ``now_ns`` into the payload of frames ``first .. first + count - 1``."""
        data, size, offset = self.data, self.frame_size, self.payload_offset
        pack_into = STAMP.pack_into
        for index in range(first, first + count):
            pack_into(data, index * size + offset, now_ns)


class PacketScanner:
    """Counts the packets of one type in an incoming byte stream.

    ``count`` is the number of complete packets of ``packet_type`` seen so far;
    ``others`` counts the rest (PINGRESP, ...). With ``stamps`` each PUBLISH's first
    eight payload bytes are read as a CLOCK_MONOTONIC send time and, while
    ``record`` is true, ``now - stamp`` is appended to ``latencies`` (ns). With
    ``ack`` a PUBACK is queued in ``acks`` for every QoS 1 PUBLISH. Both need every
    packet parsed; without them runs of equal-sized frames are counted in bulk.
    """

    __slots__ = (
        "_buffer",
        "_fill",
        "_header",
        "_level",
        "_size",
        "_view",
        "ack",
        "acks",
        "count",
        "latencies",
        "others",
        "packet_type",
        "record",
        "stamps",
    )

    def __init__(
        self,
        packet_type: int,
        *,
        protocol_level: int = 4,
        stamps: bool = False,
        ack: bool = False,
        capacity: int = 256 * 1024,
    ) -> None:
        self.packet_type = packet_type
        self._level = protocol_level
        self.stamps = stamps
        self.ack = ack
        self.record = False
        self.count = 0
        self.others = 0
        self.latencies = array("q")
        self.acks = bytearray()
        self._buffer = bytearray(capacity)
        self._view = memoryview(self._buffer)
        self._fill = 0
        self._size = 0  # learnt frame size of the counted type; 0 = not yet
        self._header = b""  # its constant leading bytes

    def read_from(self, sock: socket.socket) -> int:
        """``recv_into`` the buffer and scan; returns the bytes read (0 = end of stream)."""
        fill = self._fill
        if fill == len(self._buffer):  # one packet larger than the buffer: grow
            self._buffer.extend(bytes(len(self._buffer)))
            self._view.release()
            self._view = memoryview(self._buffer)
        received = sock.recv_into(self._view[fill:])
        if received:
            self._scan(fill + received)
        return received

    def feed(self, data: bytes) -> None:
        """Scan ``data`` (for tests and the handshake's leftovers)."""
        for start in range(0, len(data), len(self._buffer) // 2):
            chunk = data[start : start + len(self._buffer) // 2]
            fill = self._fill
            self._buffer[fill : fill + len(chunk)] = chunk
            self._scan(fill + len(chunk))

    def _scan(self, end: int) -> None:
        buf = self._buffer
        pos = 0
        bulk = not (self.stamps or self.ack)
        wanted = self.packet_type
        while pos < end:
            size = self._size
            if bulk and size:
                runs = (end - pos) // size
                while runs:
                    stop = pos + runs * size
                    header = self._header
                    # A run of frames is accepted only if every frame starts with the
                    # same constant header bytes: a shorter or longer packet in between
                    # shifts the stride onto payload bytes, which are filler.
                    if all(
                        buf[pos + j : stop : size].count(header[j]) == runs
                        for j in range(len(header))
                    ):
                        self.count += runs
                        pos = stop
                        break
                    runs //= 2
                if pos >= end:
                    break
            # One packet, the slow way: fixed header, remaining length, skip.
            if end - pos < 2:
                break
            first = buf[pos]
            index = pos + 1
            length = 0
            shift = 0
            while True:
                if index >= end:
                    length = -1
                    break
                byte = buf[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            if length < 0 or index + length > end:
                break
            stop = index + length
            if first >> 4 == wanted:
                self.count += 1
                if wanted == PUBLISH:
                    if self.stamps or self.ack:
                        self._publish(buf, first, index)
                    if not size and first & 0x06 == 0:
                        self._size = stop - pos
                        self._header = bytes(buf[pos : index + 2])  # + topic length
                elif not size:
                    self._size = stop - pos
                    self._header = bytes(buf[pos:index])
            else:
                self.others += 1
            pos = stop
        rest = end - pos
        if rest:
            buf[:rest] = buf[pos:end]
        self._fill = rest

    def _publish(self, buf: bytearray, first: int, body: int) -> None:
        offset = body + 2 + ((buf[body] << 8) | buf[body + 1])
        if first & 0x06:
            if self.ack:
                self.acks += b"\x40\x02" + buf[offset : offset + 2]
            offset += 2
        if self._level == 5:
            shift = 0
            length = 0
            while True:
                byte = buf[offset]
                offset += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            offset += length
        if self.stamps and self.record:
            self.latencies.append(time.monotonic_ns() - STAMP.unpack_from(buf, offset)[0])


@dataclass(slots=True)
class Session:
    """A connected (and maybe subscribed) socket, non-blocking, ready for raw frames."""

    sock: socket.socket
    codec: MQTTConnection

    def disconnect(self) -> None:
        """Send DISCONNECT (best effort) and close the socket."""
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(1.0)
            self.sock.sendall(self.codec.send(Disconnect()))
        except OSError:
            pass
        finally:
            self.sock.close()


def open_session(
    host: str,
    port: int,
    client_id: str,
    *,
    protocol_level: int,
    keep_alive: int,
    topic_filter: str | None = None,
    qos: int = 0,
    timeout: float = 10.0,
) -> Session:
    """Connect (clean session), optionally subscribe, and return a non-blocking socket.

    Raises :class:`HandshakeError` when the broker refuses, :class:`OSError` when the
    connection fails.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        codec = MQTTConnection(Role.CLIENT)
        sock.sendall(
            codec.send(
                Connect(client_id, protocol_level=protocol_level, keep_alive=keep_alive)
            )
        )
        connack = _await(sock, codec, ConnAck)
        refused = 0x80 if protocol_level == 5 else 0x01
        if connack.reason_code >= refused:
            raise HandshakeError(f"CONNECT refused with code 0x{connack.reason_code:02X}")
        if topic_filter is not None:
            sock.sendall(
                codec.send(Subscribe(1, (SubscriptionRequest(topic_filter, qos),)))
            )
            suback = _await(sock, codec, SubAck)
            if suback.reason_codes[0] >= 0x80:
                raise HandshakeError(
                    f"SUBSCRIBE {topic_filter!r} refused with code "
                    f"0x{suback.reason_codes[0]:02X}"
                )
        sock.settimeout(None)
        sock.setblocking(False)
        return Session(sock, codec)
    except BaseException:
        sock.close()
        raise


def _await(sock: socket.socket, codec: MQTTConnection, kind: type[_P]) -> _P:
    while True:
        data = sock.recv(65536)
        if not data:
            raise HandshakeError(f"the broker closed the connection before {kind.__name__}")
        for packet in codec.receive(data):
            if isinstance(packet, kind):
                return packet


def _ping_frame() -> bytes:
    codec = MQTTConnection(Role.CLIENT)
    codec.send(Connect("ping"))
    return codec.send(PingReq())


PINGREQ: Final = _ping_frame()
