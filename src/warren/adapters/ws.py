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

__all__ = ["WebSocketTransport", "serve_mqtt_over_websocket"]

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
        self._protocol: MQTTConnection | None = None
        self._paused = False

    def attach(self, protocol: MQTTConnection) -> None:
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

    def get_write_buffer_size(self) -> int:
        return self._queued_bytes

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()

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


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[str]
) -> str | None:
    for name in _SUBPROTOCOLS:
        if name in offered:
            return name
    return None  # be lenient: a client that offers none still gets MQTT


async def serve_mqtt_over_websocket(
    host: str,
    port: int,
    path: str,
    make_connection: Callable[[], MQTTConnection],
    max_message_size: int,
    high_water: int,
) -> Server:
    """Start a WebSocket listener whose connections speak MQTT; returns the server."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        request_path = request.path.split("?", 1)[0]
        if request_path != path:
            return connection.respond(
                HTTPStatus.NOT_FOUND,
                f"MQTT over WebSocket is served at {path}, not {request_path}\n",
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
                    # [MQTT-6.0.0-1] MQTT travels in binary frames only.
                    log.info("closing WebSocket from %s: text frame received",
                             ws.remote_address)
                    await ws.close(1003, "MQTT requires binary WebSocket frames")
                    break
                protocol.data_received(frame)
                if transport.is_closing():
                    break
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
        subprotocols=list(_SUBPROTOCOLS),  # type: ignore[arg-type]
        select_subprotocol=_select_subprotocol,  # type: ignore[arg-type]
        process_request=process_request,
        compression=None,
        max_size=max_message_size,
        server_header="Warren",
    )
