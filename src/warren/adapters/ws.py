"""MQTT over WebSocket (MQTT 5.0 section 6, MQTT 3.1.1 section 6).

The `websockets` library does the HTTP upgrade, framing, pings and close handshake.
This adapter feeds binary message contents to the same :class:`MQTTConnection` the
TCP listener uses, through a small transport object, so MQTT behaviour is identical
on both transports. One reader (the handler coroutine) and one writer task per
connection; writes are batched by the MQTT connection and sent as one WebSocket
message per flush.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from warren.adapters.mqtt import MQTTConnection

__all__ = ["WebSocketTransport", "serve_mqtt_over_websocket", "serve_protocol_over_websocket"]

log = logging.getLogger("warren.mqtt.ws")

# [MQTT-6.0.0-3] the client offers "mqtt"; "mqttv3.1" is what some 3.1-era
# clients still send.
_SUBPROTOCOLS = ("mqtt", "mqttv3.1")


class WebSocketTransport(asyncio.Transport):
    """What :class:`MQTTConnection` writes to when its peer is a WebSocket."""

    def __init__(self, ws: ServerConnection, high_water: int) -> None:
        super().__init__()
        self._ws = ws
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._high = high_water
        self._low = high_water // 4
        self._wakeup = asyncio.Event()
        self._closing = False
        # Any protocol object with pause_writing/resume_writing: the native adapter
        # (adapters/native_ws.py) uses this transport too.
        self._protocol: asyncio.BaseProtocol | None = None
        self._paused = False
        # Cleared while the protocol asks us to stop reading (backpressure).
        self.reading = asyncio.Event()
        self.reading.set()

    def attach(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._ws.remote_address
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._queue.append(bytes(data))
        self._queued_bytes += len(data)
        self._wakeup.set()
        if not self._paused and self._queued_bytes > self._high and self._protocol is not None:
            self._paused = True
            self._protocol.pause_writing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self._high = high
        self._low = low if low is not None else self._high // 4

    def get_write_buffer_size(self) -> int:
        return self._queued_bytes

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def is_reading(self) -> bool:
        return self.reading.is_set()

    def can_write_eof(self) -> bool:
        return False  # a WebSocket closes with a close frame, not a half-close

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        self.reading.set()

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        self._wakeup.set()

    async def run_writer(self) -> None:
        """The connection's writer task: send queued bytes, then close when asked."""
        ws = self._ws
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    data = self._queue.popleft() if len(self._queue) == 1 else self._take_all()
                    self._queued_bytes -= len(data)
                    await ws.send(data)
                    if self._paused and self._queued_bytes <= self._low:
                        self._paused = False
                        if self._protocol is not None:
                            self._protocol.resume_writing()
                if self._closing:
                    await ws.close()
                    return
        except ConnectionClosed:
            self._closing = True

    def _take_all(self) -> bytes:
        data = b"".join(self._queue)
        self._queue.clear()
        return data


async def serve_protocol_over_websocket(
    host: str,
    port: int,
    path: str | None,
    make_connection: Callable[[], asyncio.Protocol],
    *,
    subprotocols: Sequence[str],
    protocol_name: str,
    max_message_size: int,
    high_water: int,
) -> Server:
    """Serve a byte-stream protocol over WebSocket; returns the server.

    The stream is the concatenation of binary messages (a packet may span messages
    and a message may hold several). The first of ``subprotocols`` the client offers
    is selected; a client that offers none is served all the same. ``path`` None
    serves every request path; otherwise other paths get 404. Text messages close
    the connection with 1003 [MQTT-6.0.0-1 for MQTT; likewise for the native
    protocol].
    """

    def select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
        for name in subprotocols:
            if name in offered:
                return name
        return None  # lenient: a client that offers none is served anyway

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if path is None:
            return None
        request_path = request.path.split("?", 1)[0]
        if request_path != path:
            return connection.respond(
                HTTPStatus.NOT_FOUND,
                f"{protocol_name} over WebSocket is served at {path}, not {request_path}\n",
            )
        return None

    async def handler(ws: ServerConnection) -> None:
        protocol = make_connection()
        transport = WebSocketTransport(ws, high_water)
        transport.attach(protocol)
        protocol.connection_made(transport)
        writer = asyncio.create_task(transport.run_writer(), name="warren-ws-writer")
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    log.info("closing WebSocket from %s: text message received",
                             ws.remote_address)
                    await ws.close(1003, f"{protocol_name} uses binary WebSocket messages only")
                    break
                protocol.data_received(frame)
                if transport.is_closing():
                    break
                if not transport.reading.is_set():  # backpressure: the protocol paused us
                    await transport.reading.wait()
        except ConnectionClosed:
            pass
        finally:
            if not transport.is_closing():
                transport.close()
            try:
                await asyncio.wait_for(writer, timeout=5)
            except (TimeoutError, asyncio.CancelledError, ConnectionClosed):
                writer.cancel()
            protocol.connection_lost(None)

    return await serve(
        handler,
        host,
        port,
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        select_subprotocol=select_subprotocol,  # type: ignore[arg-type]
        process_request=process_request,
        compression=None,
        max_size=max_message_size,
        server_header="Warren",
    )


async def serve_mqtt_over_websocket(
    host: str,
    port: int,
    path: str,
    make_connection: Callable[[], MQTTConnection],
    max_message_size: int,
    high_water: int,
) -> Server:
    """Start a WebSocket listener whose connections speak MQTT; returns the server."""
    return await serve_protocol_over_websocket(
        host,
        port,
        path,
        make_connection,
        subprotocols=_SUBPROTOCOLS,
        protocol_name="MQTT",
        max_message_size=max_message_size,
        high_water=high_water,
    )
