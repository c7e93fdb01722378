"""The broker's side of one network connection, whatever its protocol.

Every protocol adapter's connection is an ``asyncio.Protocol`` that extends
:class:`Connection`. The base does what does not depend on the protocol:

- **transport adoption** (``connection_made``): the write high-water mark above
  which the transport calls ``pause_writing`` (slow consumer), the peer's address,
  and a connect timer: a client that never completes its handshake is closed;
- **the reader** (``data_received``): bytes go into the sans-I/O codec and each
  event is handled synchronously, in arrival order, through the subclass's
  ``_dispatch`` table — one call per read, no task per packet. A
  :class:`~warren.errors.ProtocolError` from a handler, or the codec's
  ``RemoteProtocolError`` (through ``_input_error``), goes to the subclass's
  ``_protocol_error``, the one place it becomes that protocol's close;
- **publisher backpressure**: a :class:`~warren.adapters.backpressure.Throttle`
  stops reading while a congested subscriber drains. Events it interrupted wait in
  ``_backlog`` and are handled, still in order, before reading resumes;
- **the writer**: bytes are appended to ``_out`` and a single ``transport.write``
  per event-loop iteration sends them (``_flush``). ``pause_writing`` and
  ``resume_writing`` keep ``write_paused``, which the subclass's ``can_send``
  reads, and ``_writable`` offers what waited once the transport drains;
- **keep-alive**: nothing received for 1.5 x the negotiated period calls the
  subclass's ``_keepalive_timeout``;
- **closing** (``_close``): flush, then close the transport — with ``linger``, the
  write side is shut first and the client's input is read and dropped for a while,
  so that the explanation we sent is not destroyed by a reset. Timers and the
  throttle are cancelled on close and on ``connection_lost``, which then calls the
  subclass's ``_release``.

Hot paths stay in the subclasses (``send_publish``, ``can_send``, the publish
handler): they read the attributes set here directly, with no method in between.
What a subclass provides: ``protocol_name``, ``logger``, ``_codec``, ``_dispatch``,
``_protocol_error``, ``_release`` and, if it negotiates one, ``_keepalive_timeout``.
It may extend ``_handle`` (how a read's events are acted on), ``_input_error``,
``_writable``, ``_flush`` (to add what it batches) and ``_pause_reading`` /
``_resume_reading`` (if something besides the throttle stops reading).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Final, Protocol, Self, cast

from warren.adapters.backpressure import Throttle
from warren.core.sessions import Session
from warren.core.vpn import Vpn
from warren.errors import ProtocolError, RemoteProtocolError

__all__ = ["LINGER_SECONDS", "Connection", "ListenerSettings"]

# How long a closing connection reads and drops its client's input (see _close).
LINGER_SECONDS: Final = 2.0


class _Codec(Protocol):
    """What the base needs of a sans-I/O codec: bytes in, events out, and back."""

    def receive(self, data: bytes) -> list[Any]: ...

    def send(self, event: Any) -> bytes: ...


class ListenerSettings(Protocol):
    """What the base needs of a listener's settings (``MqttSettings`` ...)."""

    @property
    def max_outbound_bytes(self) -> int:
        """Write high-water mark: above it the client is a slow consumer."""

    @property
    def connect_timeout(self) -> float:
        """Seconds a client has to complete its handshake."""


class Connection(asyncio.Protocol):
    """The protocol-independent part of one client connection (see module docstring)."""

    #: The protocol's name in log lines ("MQTT", "native", "AMQP").
    protocol_name: ClassVar[str]
    #: What the client must send to be connected, for the connect-timeout log line.
    handshake_name: ClassVar[str] = "CONNECT"
    #: The protocol's logger.
    logger: ClassVar[logging.Logger]
    #: How long a congested subscriber may pause reading from us (None: the default).
    throttle_max_pause: ClassVar[float | None] = None

    _codec: _Codec
    _dispatch: dict[type, Callable[[Any], None]]

    def __init__(
        self,
        vpn: Vpn,
        settings: ListenerSettings,
        on_close: Callable[[Self], None] | None = None,
    ) -> None:
        self.vpn = vpn
        self.stats = vpn.stats  # the broker's counters (its VPNs share them)
        self._on_close = on_close
        self._high_water = settings.max_outbound_bytes
        self._connect_timeout_seconds = settings.connect_timeout
        self._loop = asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self.peer = "?"
        self.connected = False  # the handshake completed (_established)
        self.closing = False  # no more input is acted on
        self.write_paused = False  # the transport is above its high-water mark
        self.session: Session | None = None  # the core session, for protocols with one
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._last_rx = 0.0
        self._keepalive_limit = 0.0
        self._connect_timer: asyncio.TimerHandle | None = None
        self._keepalive_handle: asyncio.TimerHandle | None = None
        self._linger_handle: asyncio.TimerHandle | None = None
        self._throttle = Throttle(
            self._loop, self._pause_reading, self._unthrottled, self.throttle_max_pause
        )
        self._backlog: deque[Any] = deque()  # events a throttle held back

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport, self.peer = _adopt(transport, self._high_water)
        self._last_rx = self._loop.time()
        self._connect_timer = self._loop.call_later(
            self._connect_timeout_seconds, self._connect_timeout
        )

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._last_rx = self._loop.time()
        stats = self.stats
        stats.bytes_received += len(data)
        try:
            events = self._codec.receive(data)
        except RemoteProtocolError as exc:
            # The codec raises before returning: nothing after a malformed packet
            # is ever acted on.
            self._input_error(exc)
            return
        stats.messages_received += len(events)
        if self._throttle.paused or self._backlog:  # throttled: keep arrival order
            self._backlog.extend(events)
            return
        self._handle(events)

    def _handle(self, events: list[Any]) -> None:
        """Handle events in order; stop if one throttled us (backpressure).

        What a throttle interrupts waits in ``_backlog`` and is handled, still in
        arrival order, before reading resumes: a chunk of many publishes must not
        overrun a congested subscriber's queue before the pause takes effect.
        """
        dispatch = self._dispatch
        throttle = self._throttle
        try:
            for index, event in enumerate(events):
                dispatch[event.__class__](event)
                if self.closing:
                    return
                if throttle.paused:
                    self._backlog.extend(events[index + 1 :])
                    return
        except ProtocolError as exc:
            self._protocol_error(exc.reason_code, exc.message)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._writable()

    def connection_lost(self: Self, exc: Exception | None) -> None:
        self.closing = True
        self._cancel_timers()
        self._out.clear()
        self._backlog.clear()
        self._release(exc)
        if self._on_close is not None:
            self._on_close(self)

    # --- what the subclass provides -----------------------------------------------

    def _protocol_error(self, reason_code: int, message: str) -> None:
        """The client broke the protocol: tell it in the protocol's terms and close."""
        raise NotImplementedError

    def _input_error(self, exc: RemoteProtocolError) -> None:
        """The codec refused the input (malformed or forbidden)."""
        self._protocol_error(exc.reason_code, exc.message)

    def _release(self, exc: Exception | None) -> None:
        """The transport is gone: give back what the connection held (its session)."""
        raise NotImplementedError

    def _keepalive_timeout(self, idle: float) -> None:
        """Nothing received for 1.5 x the keep-alive period: close."""
        raise NotImplementedError

    def _writable(self) -> None:
        """The transport drained below its high-water mark: send what waited."""
        session = self.session
        if session is not None and session.pending:
            session.drain()

    # --- output -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue bytes for this iteration's single write."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _schedule_flush(self) -> None:
        """Have what ``_out`` holds written at the end of this iteration (once)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send(self, event: Any) -> None:
        """Queue a packet or frame, after everything queued before it."""
        self.stats.messages_sent += 1
        self._write(self._codec.send(event))

    def _flush(self) -> None:
        """Write what this iteration produced, in one ``transport.write``."""
        self._flush_scheduled = False
        out = self._out
        if not out or self._transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.stats.bytes_sent += len(data)
        self._transport.write(data)

    # --- closing --------------------------------------------------------------------

    def _close(self, linger: bool = False) -> None:
        """Flush what is queued, then close the transport.

        With ``linger`` (closing on an error or a refusal), our side is shut down
        for writing first and the client's remaining input is read and discarded
        for up to ``LINGER_SECONDS``: a client still writing when we close would
        otherwise get a reset that destroys the packet explaining why, before it
        reads it.
        """
        if self.closing:
            return
        self.closing = True
        self._cancel_timers()
        self._flush()
        transport = self._transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            transport.write_eof()
            self._linger_handle = self._loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _cancel_timers(self) -> None:
        for handle in (self._connect_timer, self._keepalive_handle, self._linger_handle):
            if handle is not None:
                handle.cancel()
        self._connect_timer = self._keepalive_handle = self._linger_handle = None
        self._throttle.cancel()

    # --- timers ---------------------------------------------------------------------

    def _established(self, keepalive: float) -> None:
        """The handshake succeeded: stop the connect timer; check the keep-alive
        (``keepalive`` seconds, 0 for none) from now on."""
        self.connected = True
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        if keepalive:
            self._keepalive_limit = keepalive * 1.5
            self._keepalive_handle = self._loop.call_later(
                self._keepalive_limit, self._check_keepalive
            )

    def _connect_timeout(self) -> None:
        self._connect_timer = None
        if not self.connected and not self.closing:
            self.logger.info("closing %s connection from %s: no %s within %.0f s",
                             self.protocol_name, self.peer, self.handshake_name,
                             self._connect_timeout_seconds)
            self._close()

    def _check_keepalive(self) -> None:
        self._keepalive_handle = None
        if self.closing:
            return
        limit = self._keepalive_limit
        idle = self._loop.time() - self._last_rx
        if idle >= limit:
            self._keepalive_timeout(idle)
            return
        self._keepalive_handle = self._loop.call_later(limit - idle, self._check_keepalive)

    # --- backpressure on publishers (the router's congestion signal) -----------------

    def _pause_reading(self) -> None:
        """A subscriber we publish to is congested: stop reading until it drains."""
        if self._transport is not None and not self.closing:
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        """Read again: nothing the throttle held back is left."""
        if self._transport is not None:
            self._transport.resume_reading()

    def _unthrottled(self) -> None:
        """The congested subscriber drained (or went away)."""
        # Woken from inside a session's drain: carry on from a fresh loop
        # iteration, not from the middle of someone else's delivery.
        if not self.closing:
            self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        """Handle what the throttle held back, then read again (unless throttled anew)."""
        if self.closing or self._throttle.paused:
            return
        if self._backlog:
            held = list(self._backlog)
            self._backlog.clear()
            self._handle(held)
            if self.closing or self._throttle.paused:
                return
        self._resume_reading()


def _adopt(transport: asyncio.BaseTransport, high_water: int) -> tuple[asyncio.Transport, str]:
    """Set the write high-water mark; return the transport and the peer as text.

    Above ``high_water`` buffered bytes the transport calls the protocol's
    ``pause_writing`` (slow consumer). uvloop's transports are not
    ``asyncio.Transport`` subclasses but have the same interface, hence the cast.
    """
    peer = transport.get_extra_info("peername")
    text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
    set_limits = getattr(transport, "set_write_buffer_limits", None)
    if set_limits is not None:
        set_limits(high=high_water)
    return cast(asyncio.Transport, transport), text
