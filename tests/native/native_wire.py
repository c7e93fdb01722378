"""A blocking native-protocol client for black-box broker tests: real sockets, the
reference codec, and bounded waits that say what they expected and what came.

Absence ("this must NOT arrive") is proven with a PING barrier, never a sleep: the
broker handles one connection's frames in order and writes each connection's
output in order, so once the PONG answering a PING is in, every frame the broker
produced for this connection before handling that PING is in too.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from typing import Any, TypeVar

from warren.codecs.native import (
    Connect,
    Connected,
    Deliver,
    Disconnect,
    Error,
    Event,
    Message,
    NativeConnection,
    Ping,
    Pong,
    Publish,
    Result,
    Role,
    Subscribe,
    Unsubscribe,
)

WAIT = 5.0
E = TypeVar("E", bound=Event)


class Wire:
    """One native connection to the broker under test."""

    def __init__(self, host: str, port: int, name: str = "wire") -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.codec = NativeConnection(Role.CLIENT)
        self.events: deque[Event] = deque()
        self.eof = False
        self._request = 0
        self._armed = False
        self.connected: Connected | None = None

    # -- sending ---------------------------------------------------------------

    def send(self, event: Event) -> None:
        if isinstance(event, Connect):
            self._armed = True
        self.sock.sendall(self.codec.send(event))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are. The codec is moved past CONNECT first (if it
        was not) so that it can read the broker's answer."""
        if not self._armed:
            self._armed = True
            self.codec.send(Connect())
        self.sock.sendall(data)

    def connect(self, **fields: Any) -> Connected:
        self.send(Connect(**fields))
        self.connected = self.expect(Connected)
        return self.connected

    def subscribe(self, subscription_id: int, filter_text: str) -> Result:
        self._request += 1
        self.send(Subscribe(self._request, subscription_id, filter_text))
        return self._result()

    def unsubscribe(self, subscription_id: int, filter_text: str | None = None) -> Result:
        self._request += 1
        self.send(Unsubscribe(self._request, subscription_id, filter_text))
        return self._result()

    def _result(self) -> Result:
        """The next RESULT; frames before it (deliveries) stay queued, in order."""
        before: list[Event] = []
        while True:
            event = self.next()
            if isinstance(event, Result):
                self.events.extendleft(reversed(before))
                return event
            before.append(event)

    def publish(self, *messages: Message) -> None:
        self.send(Publish(messages))

    # -- receiving -------------------------------------------------------------

    def _read(self, deadline: float) -> bool:
        """Read once; False on timeout. EOF sets ``eof``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return True
        self.events.extend(self.codec.receive(data))
        return True

    def next(self, timeout: float = WAIT) -> Event:
        """The next frame from the broker."""
        deadline = time.monotonic() + timeout
        while not self.events:
            if self.eof:
                raise AssertionError(f"{self.name}: connection closed, no more frames")
            if not self._read(deadline):
                raise AssertionError(f"{self.name}: no frame within {timeout}s")
        return self.events.popleft()

    def expect(self, cls: type[E], timeout: float = WAIT) -> E:
        """The next frame, which must be a ``cls``."""
        event = self.next(timeout)
        assert isinstance(event, cls), f"{self.name}: expected {cls.__name__}, got {event!r}"
        return event

    def messages(self, count: int, timeout: float = WAIT) -> list[tuple[tuple[int, ...], Message]]:
        """The next ``count`` delivered messages, with their subscription ids."""
        out: list[tuple[tuple[int, ...], Message]] = []
        while len(out) < count:
            deliver = self.expect(Deliver, timeout)
            out.extend((deliver.subscription_ids, m) for m in deliver.messages)
        assert len(out) == count, f"{self.name}: {len(out)} messages, expected {count}: {out}"
        return out

    def barrier(self) -> list[Event]:
        """PING, then everything that came before the PONG."""
        self.send(Ping())
        before: list[Event] = []
        while True:
            event = self.next()
            if isinstance(event, Pong):
                return before
            before.append(event)

    def assert_nothing(self) -> None:
        """Nothing arrived for this connection (a PING barrier proves it)."""
        extra = self.barrier()
        assert not extra, f"{self.name}: unexpected frames: {extra}"

    def expect_closed(self, timeout: float = WAIT) -> None:
        """The broker closes the connection (frames before the end are kept)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._read(deadline):
                raise AssertionError(f"{self.name}: still open after {timeout}s")

    def closing_frame(self) -> Error | Disconnect:
        """The ERROR or DISCONNECT the broker ends the connection with."""
        event = self.next()
        assert isinstance(event, Error | Disconnect), f"{self.name}: got {event!r}"
        self.expect_closed()
        return event

    def close(self) -> None:
        try:
            if not self.eof and self.connected is not None:
                self.send(Disconnect())
        except Exception:
            pass
        finally:
            self.sock.close()
