"""The native protocol over WebSocket (docs/protocol.md, "Transport").

The same :class:`~warren.adapters.native.NativeConnection` as over TCP, fed the
contents of binary WebSocket messages through the MQTT WebSocket adapter's
transport (:class:`~warren.adapters.ws.WebSocketTransport`): the byte stream is
the concatenation of the messages, so a frame may span messages and a message may
hold several frames. The subprotocol is ``warren-native``; a client that offers
none is served all the same. One reader (the handler coroutine) and one writer task
per connection.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import Server

from warren.adapters.native import NativeConnection
from warren.adapters.ws import serve_protocol_over_websocket

__all__ = ["SUBPROTOCOL", "serve_native_over_websocket"]

SUBPROTOCOL = "warren-native"


async def serve_native_over_websocket(
    host: str,
    port: int,
    path: str | None,
    make_connection: Callable[[], NativeConnection],
    max_message_size: int,
    high_water: int,
) -> Server:
    """Start a WebSocket listener whose connections speak the native protocol.

    ``path`` None serves every request path; otherwise other paths get 404.
    """
    return await serve_protocol_over_websocket(
        host,
        port,
        path,
        make_connection,
        subprotocols=(SUBPROTOCOL,),
        protocol_name="the Warren native protocol",
        max_message_size=max_message_size,
        high_water=high_water,
    )
