"""Byte links to a broker: TCP or WebSocket, behind one small interface.

A link delivers received bytes to its :class:`LinkHandler` as they arrive (the
reader), takes writes without awaiting (they are queued; ``paused`` tells the
handler when the queue passes its high-water mark), and reports its end once.
Only the standard library and ``websockets`` are used: no native library.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import Final, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from warren.messaging._errors import ServiceUnreachableError
from warren.messaging._properties import Endpoint

__all__ = ["Link", "LinkHandler", "open_link"]

SUBPROTOCOL: Final = "warren-native"
HIGH_WATER: Final = 4 * 1024 * 1024


class LinkHandler(Protocol):
    def link_data(self, data: bytes) -> None: ...

    def link_paused(self, paused: bool) -> None: ...

    def link_lost(self, exc: BaseException | None) -> None: ...


class Link:
    """A connected byte link (see module docstring)."""

    max_message = 65536  # WebSocket only: largest message to send (the peer's frame limit)

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close after sending what is queued."""
        raise NotImplementedError

    async def wait_closed(self) -> None:
        raise NotImplementedError


class _TcpLink(asyncio.Protocol, Link):
    def __init__(self, handler: LinkHandler) -> None:
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp: asyncio.Transport = transport  # type: ignore[assignment]
        self._transport = tcp
        sock = tcp.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self._handler.link_data(data)

    def pause_writing(self) -> None:
        self._handler.link_paused(True)

    def resume_writing(self) -> None:
        self._handler.link_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        self._handler.link_lost(exc)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


class _WsLink(Link):
    def __init__(self, ws: ClientConnection, handler: LinkHandler) -> None:
        self._ws = ws
        self._handler = handler
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._paused = False
        self._closing = False
        self._wakeup = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="warren-messaging-ws-reader")
        self._writer = asyncio.create_task(self._write(), name="warren-messaging-ws-writer")

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        self._queue.append(data)
        self._queued += len(data)
        self._wakeup.set()
        if not self._paused and self._queued > HIGH_WATER:
            self._paused = True
            self._handler.link_paused(True)

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._reader, self._writer, return_exceptions=True)

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            async for message in self._ws:
                if isinstance(message, str):
                    await self._ws.close(1003, "the Warren native protocol is binary")
                    error = ServiceUnreachableError("the broker sent a text WebSocket message")
                    break
                self._handler.link_data(message)
        except ConnectionClosed as exc:
            error = exc
        finally:
            self._closing = True
            self._wakeup.set()
            self._handler.link_lost(error)

    async def _write(self) -> None:
        ws = self._ws
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    data = b"".join(self._queue)
                    self._queue.clear()
                    self._queued = 0
                    # A frame may span WebSocket messages: keep each under the
                    # broker's frame limit, which bounds the messages it accepts.
                    step = self.max_message
                    for start in range(0, len(data), step):
                        await ws.send(data[start : start + step])
                    if self._paused:
                        self._paused = False
                        self._handler.link_paused(False)
                if self._closing:
                    await ws.close()
                    return
        except ConnectionClosed:
            self._closing = True


async def open_link(endpoint: Endpoint, handler: LinkHandler, timeout: float) -> Link:
    """Connect to ``endpoint``; raises ServiceUnreachableError if that fails."""
    loop = asyncio.get_running_loop()
    try:
        if endpoint.scheme == "tcp":
            link = _TcpLink(handler)
            await asyncio.wait_for(
                loop.create_connection(lambda: link, endpoint.host, endpoint.port), timeout
            )
            return link
        ws = await ws_connect(
            endpoint.uri,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression=None,
            max_size=None,
            open_timeout=timeout,
        )
        return _WsLink(ws, handler)
    except TimeoutError:
        raise ServiceUnreachableError(
            f"no connection to {endpoint.uri} within {timeout:g} s"
        ) from None
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        raise ServiceUnreachableError(f"cannot connect to {endpoint.uri}: {exc}") from exc


