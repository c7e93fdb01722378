"""The engine of a messaging service: one logical session with a broker, across
reconnections, on one asyncio event loop.

It speaks the native protocol through the sans-I/O codec (``warren.codecs.native``)
over a :mod:`link <warren.messaging._link>`:

- **writes** are gathered and flushed once per event-loop iteration: publishes
  made in one iteration go out as few PUBLISH frames (batched under the broker's
  frame limit), control frames keep their order among them;
- **deliveries** are dispatched by subscription id straight to the consumer
  (receiver) that owns the id, or, for id 0 (the reply inbox), to the pending
  request waiting for that reply topic;
- **flow control**: CONNECT grants ``receive_window`` deliveries; a message's credit
  is given back once the application has consumed it (handler returned, message
  taken), in CREDIT frames of half a window, so a slow application makes the broker
  queue (and apply its slow-consumer policy) instead of this process buffering
  without limit;
- **keepalive**: a PING when nothing was sent for half the period, and a link that
  stays silent for 1.5 periods is declared dead;
- **reconnection**: a lost link is retried per the retry strategy with the same
  client name (so the reply inbox stays the same); subscriptions are re-applied and
  publishes made meanwhile are held and sent once reconnected.

Every method runs on the engine's event loop thread, except
:meth:`Engine.release_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

import msgspec

from warren.codecs.native import (
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Deliver,
    Disconnect,
    Error,
    ErrorCode,
    Event,
    Nack,
    Ping,
    Pong,
    Publish,
    Result,
    Role,
    Subscribe,
    Unbind,
    Unsubscribe,
)
from warren.codecs.native import Message as NativeMessage
from warren.codecs.native import NativeConnection as NativeCodec
from warren.errors import LocalProtocolError, RemoteProtocolError
from warren.messaging._errors import (
    AuthenticationError,
    AuthorizationError,
    IllegalStateError,
    IncompatibleServiceError,
    InvalidConfigurationError,
    MessageTooBigError,
    PubSubPlusClientError,
    PubSubPlusClientIOError,
    PubSubTimeoutError,
    ServiceUnreachableError,
    error_for_code,
)
from warren.messaging._link import Link, open_link
from warren.messaging._message import InboundMessage
from warren.messaging._properties import Endpoint, ServiceConfig
from warren.messaging._retry import RetryStrategy

__all__ = ["Consumer", "Engine", "EngineEvents", "ServiceState", "Ticket"]

log = logging.getLogger("warren.messaging")

INBOX_ID: Final = 0
GUARANTEED: Final = "guaranteed"
# Errors after which retrying cannot help.
_FATAL: Final = (
    AuthenticationError, AuthorizationError, InvalidConfigurationError, IncompatibleServiceError,
)


class ServiceState(enum.Enum):
    NOT_CONNECTED = "not connected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"


class Ticket:
    """Credit of one message delivered to several consumers: given back once all
    of them consumed it."""

    __slots__ = ("remaining",)

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining


class Consumer(Protocol):
    """What a receiver offers the engine: take one delivered message."""

    def deliver(self, message: InboundMessage, ticket: Ticket | None) -> None: ...


class Flow(Protocol):
    """What a persistent receiver offers the engine."""

    def deliver_guaranteed(
        self, message: InboundMessage, delivery_id: int, redelivered: bool
    ) -> None: ...

    def interrupted(self) -> None:
        """The connection was lost; the flow is bound again once reconnected."""
        ...

    def lost(self, error: PubSubPlusClientError) -> None: ...


class EngineEvents(Protocol):
    """What the engine tells its service (on the loop thread)."""

    def reconnecting(self, uri: str, cause: PubSubPlusClientError) -> None: ...

    def reconnected(self, uri: str) -> None: ...

    def interrupted(self, uri: str, cause: PubSubPlusClientError) -> None: ...

    def publish_failed(
        self, topic: str | None, failed: list[Held], error: PubSubPlusClientError
    ) -> None: ...

    def writable(self) -> None: ...


Held = tuple[object, NativeMessage]
"""A message not yet sent, with its publisher (None when unknown)."""


def _size_estimate(m: NativeMessage) -> int:
    """An upper bound of a message's encoded size, for batching under the frame limit."""
    size = 96 + len(m.topic) * 4 + len(m.payload)
    for key, value in m.user_properties:
        size += 10 + 4 * (len(key) + len(value))
    for text in (m.content_type, m.response_topic, m.message_id, m.sender_id):
        if text is not None:
            size += 4 * len(text)
    if m.correlation_data is not None:
        size += len(m.correlation_data)
    return size


class _Connection:
    """One link to one broker: handshake, frames in, batched frames out, keepalive."""

    def __init__(self, engine: Engine, endpoint: Endpoint) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.codec = NativeCodec(Role.CLIENT)
        self.link: Link | None = None
        self.loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[Connected] = self.loop.create_future()
        self.results: dict[int, asyncio.Future[Result]] = {}
        self._next_request = 0
        self.out: list[bytes] = []
        self.pending: list[NativeMessage] = []
        self.flush_scheduled = False
        self.paused = False
        self.lost = False
        self.keepalive = 0
        self.last_rx = self.last_tx = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None

    # -- opening -----------------------------------------------------------------

    async def open(self, connect: Connect, timeout: float) -> Connected:
        self.link = await open_link(self.endpoint, self, timeout)
        try:
            self._write(self.codec.send(connect))
            connected = await asyncio.wait_for(asyncio.shield(self.handshake), timeout)
        except TimeoutError:
            self.abort()
            raise PubSubTimeoutError(
                f"{self.endpoint.uri} did not answer CONNECT within {timeout:g} s"
            ) from None
        except BaseException:
            self.abort()
            raise
        self.link.max_message = connected.max_frame_size
        self.keepalive = connected.keepalive
        if self.keepalive:
            self._timer = self.loop.call_later(self.keepalive / 2, self._tick)
        return connected

    # -- LinkHandler -------------------------------------------------------------------

    def link_data(self, data: bytes) -> None:
        if self.lost:
            return
        self.last_rx = self.loop.time()
        try:
            events = self.codec.receive(data)
        except RemoteProtocolError as exc:
            with contextlib.suppress(LocalProtocolError):
                self._write(self.codec.send(Error(exc.reason_code, exc.message)))
            self.fail(PubSubPlusClientIOError(
                f"{self.endpoint.uri} broke the native protocol: {exc.message}", exc.reason_code
            ))
            return
        for event in events:
            self._handle(event)
            if self.lost:
                return

    def link_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused and not self.lost:
            self.engine.connection_writable(self)

    def link_lost(self, exc: BaseException | None) -> None:
        if not self.lost:
            why = f": {exc}" if exc else ""
            self.fail(ServiceUnreachableError(f"connection to {self.endpoint.uri} lost{why}"))

    # -- frames in ---------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        cls = event.__class__
        if cls is Deliver:
            self.engine.on_deliver(event)  # type: ignore[arg-type]
        elif cls is Result:
            assert isinstance(event, Result)
            future = self.results.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event)
        elif cls is Ping:
            self.send(Pong())
        elif cls is Connected:
            assert isinstance(event, Connected)
            if not self.handshake.done():
                self.handshake.set_result(event)
        elif cls is Error:
            assert isinstance(event, Error)
            error = error_for_code(event.code, event.text)
            if not self.handshake.done():
                self.handshake.set_exception(error)
                self.fail(error)
            elif event.close:
                self.fail(error)
            else:
                self.engine.publish_error(event.topic, error)
        elif cls is Disconnect:
            assert isinstance(event, Disconnect)
            if event.code:
                self.fail(error_for_code(event.code, event.text))
            else:
                self.fail(ServiceUnreachableError(
                    f"{self.endpoint.uri} closed the connection", ErrorCode.OK
                ))
        elif cls is Ack or cls is Nack:
            self.engine.on_publish_settled(event)  # type: ignore[arg-type]
        elif cls is Pong:
            pass  # arrival alone counts for the keepalive

    # -- frames out --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self.link is not None
        self.last_tx = self.loop.time()
        self.link.write(data)

    def _schedule(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def send(self, event: Event) -> None:
        """Queue a control frame after everything queued before it."""
        if self.lost:
            return
        self._seal()
        self.out.append(self.codec.send(event))
        self._schedule()

    def request(self, event: Subscribe | Unsubscribe | Bind | Unbind) -> asyncio.Future[Result]:
        """Send a SUBSCRIBE, UNSUBSCRIBE, BIND or UNBIND (its request_id is set here)."""
        future: asyncio.Future[Result] = self.loop.create_future()
        if self.lost:
            future.set_exception(ServiceUnreachableError("the connection is lost"))
            return future
        self._next_request = (self._next_request + 1) & 0xFFFF_FFFF
        rid = self._next_request
        if isinstance(event, Subscribe):
            event = Subscribe(rid, event.subscription_id, event.filter)
        elif isinstance(event, Bind | Unbind):
            event = msgspec.structs.replace(event, request_id=rid)
        else:
            event = Unsubscribe(rid, event.subscription_id, event.filter)
        self.results[rid] = future
        self.send(event)
        return future

    def publish(self, messages: list[NativeMessage]) -> None:
        self.pending.extend(messages)
        self._schedule()

    def _seal(self) -> None:
        """Frame the pending publishes into the output, in order."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        limit = self.codec.peer_max_frame_size - 64
        batch: list[NativeMessage] = []
        size = 0
        for m in pending:
            estimate = _size_estimate(m)
            if batch and size + estimate > limit:
                self._frame(batch)
                batch, size = [], 0
            batch.append(m)
            size += estimate
        self._frame(batch)

    def _frame(self, batch: list[NativeMessage]) -> None:
        try:
            self.out.append(self.codec.send(Publish(tuple(batch))))
        except LocalProtocolError as exc:
            if len(batch) > 1:
                for m in batch:
                    self._frame([m])
                return
            error = MessageTooBigError(
                f"message to {batch[0].topic!r} is larger than {self.endpoint.uri} accepts "
                f"({exc.message})"
            )
            self.engine.publish_error(batch[0].topic, error, [(None, batch[0])])

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.lost:
            return
        self._seal()
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._write(data)

    # -- keepalive and closing -----------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        if self.lost:
            return
        now = self.loop.time()
        period = self.keepalive
        if now - self.last_rx > 1.5 * period:
            self.fail(ServiceUnreachableError(
                f"{self.endpoint.uri} sent nothing for {now - self.last_rx:.1f} s "
                f"(keepalive {period} s)",
                ErrorCode.KEEPALIVE_TIMEOUT,
            ))
            return
        if now - self.last_tx >= period / 2:
            self.send(Ping())
        self._timer = self.loop.call_later(period / 2, self._tick)

    def fail(self, error: PubSubPlusClientError) -> None:
        """The connection is over: tell whoever waits, close the link, tell the engine."""
        if self.lost:
            return
        self.flush()
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(error)
            self.handshake.exception()  # retrieved: open() may have stopped waiting
        for future in self.results.values():
            if not future.done():
                future.set_exception(error)
        self.results.clear()
        if self.link is not None:
            self.link.close()
        self.engine.connection_lost(self, error)

    def abort(self) -> None:
        """Close without telling the engine (a failed open)."""
        if not self.lost:
            self.lost = True
            if self._timer is not None:
                self._timer.cancel()
            if self.link is not None:
                self.link.close()

    async def close(self) -> None:
        """Orderly close: DISCONNECT, flush, close the link and wait for it."""
        if not self.lost:
            with contextlib.suppress(LocalProtocolError):
                self.send(Disconnect())
            self.flush()
            self.abort()
        if self.link is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.link.wait_closed(), 5)


class Engine:
    """One messaging service's session with the broker (see module docstring)."""

    def __init__(self, config: ServiceConfig, events: EngineEvents) -> None:
        self.config = config
        self.events = events
        self.state = ServiceState.NOT_CONNECTED
        self.conn: _Connection | None = None
        self.client_name: str | None = config.client_name
        self.inbox_prefix: str | None = None
        self.uri = config.endpoints[0].uri
        self.held: deque[Held] = deque()
        self.subscriptions: dict[int, set[str]] = {}
        self.consumers: dict[int, Consumer] = {}
        # Guaranteed messaging: queue flows by subscription id, and the receipts
        # awaited for persistent publishes, by publish id.
        self.flows: dict[int, Flow] = {}
        self.flow_binds: dict[int, Bind] = {}  # re-sent after a reconnection
        # Connections made so far: delivery ids are only valid on the connection
        # that delivered them, so a settle from an earlier one is dropped.
        self.epoch = 0
        self.receipts: dict[int, Callable[[PubSubPlusClientError | None], None]] = {}
        self._next_publish_id = 0
        self.replies: dict[str, asyncio.Future[InboundMessage]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._next_subscription = INBOX_ID
        self._reply_counter = 0
        window = config.receive_window
        self._credit_step = max(1, window // 2)
        self._returned = 0
        self._reconnect_task: asyncio.Task[None] | None = None
        self._release_lock = threading.Lock()
        self._releases: list[Ticket | None] = []
        self._release_scheduled = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is ServiceState.CONNECTED

    async def start(self) -> None:
        """Connect, retrying per the connection retry strategy."""
        if self.state in (ServiceState.CONNECTED, ServiceState.CONNECTING,
                          ServiceState.RECONNECTING):
            return
        if self.state is ServiceState.DISCONNECTING:
            raise IllegalStateError("the messaging service is disconnecting")
        self.loop = asyncio.get_running_loop()
        self.state = ServiceState.CONNECTING
        try:
            await self._connect_with_retries(self.config.connection_retry, reconnecting=False)
        except BaseException:
            if self.state is ServiceState.CONNECTING:
                self.state = ServiceState.NOT_CONNECTED
            raise
        if self.state is not ServiceState.CONNECTING:  # disconnect() came meanwhile
            raise IllegalStateError("disconnected while connecting")
        self.state = ServiceState.CONNECTED
        log.debug("connected to %s as %r", self.uri, self.client_name)

    async def stop(self) -> None:
        """Disconnect (DISCONNECT, then close); stop reconnecting."""
        if self.state in (ServiceState.NOT_CONNECTED, ServiceState.DISCONNECTED):
            self.state = ServiceState.DISCONNECTED
            return
        self.state = ServiceState.DISCONNECTING
        task = self._reconnect_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        stopped = IllegalStateError("the messaging service disconnected")
        self._fail_waiting(stopped)
        self._end_flows(stopped)
        self.state = ServiceState.DISCONNECTED

    async def _connect_with_retries(self, strategy: RetryStrategy, *, reconnecting: bool) -> None:
        # Connecting: one pass through the hosts plus `retries` more. Reconnecting:
        # `retries` passes (the Solace API's reconnection-attempts). -1: forever.
        passes = strategy.retries if reconnecting else 1 + strategy.retries
        if strategy.retries < 0:
            passes = -1
        interval = strategy.retry_interval / 1000
        expected = self.state
        last: PubSubPlusClientError | None = None
        done = 0
        first = True
        while passes < 0 or done < passes:
            for endpoint in self.config.endpoints:
                if not first:
                    await asyncio.sleep(interval)
                first = False
                if self.state is not expected:
                    raise IllegalStateError("stopped while connecting")
                try:
                    await self._connect_once(endpoint)
                    return
                except _FATAL:
                    raise
                except PubSubPlusClientError as exc:
                    last = exc
                    log.debug("connecting to %s failed: %s", endpoint.uri, exc)
            done += 1
        assert last is not None
        raise last

    async def _connect_once(self, endpoint: Endpoint) -> None:
        config = self.config
        conn = _Connection(self, endpoint)
        window = config.receive_window
        connected = await conn.open(
            Connect(
                vpn=config.vpn,
                username=config.username,
                password=config.password,
                client_name=self.client_name,
                keepalive=config.keepalive,
                initial_credit=window or None,
                capabilities=(GUARANTEED,),
            ),
            config.connect_timeout,
        )
        self.conn = conn
        self.epoch += 1  # settles of earlier connections' deliveries are void now
        self.uri = endpoint.uri
        self.client_name = connected.client_name
        self.inbox_prefix = connected.inbox_prefix
        self._returned = 0
        pending = [
            (sub_id, text, conn.request(Subscribe(0, sub_id, text)))
            for sub_id, texts in self.subscriptions.items()
            for text in texts
        ]
        for sub_id, text, future in pending:
            result = await future  # a lost connection raises: the caller retries
            if result.code:
                log.warning("re-subscribing %r (subscription %d) failed: %s", text, sub_id,
                            error_for_code(result.code, result.text))
        binds = [(sub_id, conn.request(bind)) for sub_id, bind in self.flow_binds.items()]
        for sub_id, future in binds:
            result = await future
            if result.code:
                error = error_for_code(result.code, result.text)
                log.warning("binding queue flow %d again failed: %s", sub_id, error)
                self.flow_binds.pop(sub_id, None)
                flow = self.flows.pop(sub_id, None)
                if flow is not None:
                    flow.lost(error)
        if conn.lost or self.conn is not conn:
            raise ServiceUnreachableError(f"connection to {endpoint.uri} lost while opening")

    def connection_lost(self, conn: _Connection, error: PubSubPlusClientError) -> None:
        """Called by a connection that ended (on its own or failed)."""
        if conn is not self.conn:
            return
        self.conn = None
        # Unacknowledged persistent publishes fail (the application may publish them
        # again); queue flows end: their unsettled messages go back to the queues.
        self._fail_receipts(error)
        for flow in list(self.flows.values()):
            flow.interrupted()
        if self.state is not ServiceState.CONNECTED:
            return  # connecting or disconnecting: their code handles it
        log.info("connection to %s lost: %s", self.uri, error)
        retry = self.config.reconnection_retry
        if (
            isinstance(error, _FATAL)
            or error.code == ErrorCode.SESSION_TAKEN_OVER
            or retry.retries == 0
        ):
            self._interrupted(error)
            return
        self.state = ServiceState.RECONNECTING
        self.events.reconnecting(self.uri, error)
        assert self.loop is not None
        self._reconnect_task = self.loop.create_task(self._reconnect(), name="warren-reconnect")

    async def _reconnect(self) -> None:
        try:
            await self._connect_with_retries(self.config.reconnection_retry, reconnecting=True)
        except PubSubPlusClientError as exc:
            if self.state is ServiceState.RECONNECTING:
                self._interrupted(exc)
            return
        if self.state is not ServiceState.RECONNECTING:
            return
        self.state = ServiceState.CONNECTED
        log.info("reconnected to %s as %r", self.uri, self.client_name)
        self._flush_held()
        self.events.reconnected(self.uri)

    def _fail_receipts(self, error: PubSubPlusClientError) -> None:
        receipts = list(self.receipts.values())
        self.receipts.clear()
        for callback in receipts:
            callback(error)

    def _end_flows(self, error: PubSubPlusClientError) -> None:
        flows = list(self.flows.values())
        self.flows.clear()
        self.flow_binds.clear()
        for flow in flows:
            flow.lost(error)

    def _interrupted(self, error: PubSubPlusClientError) -> None:
        self.state = ServiceState.DISCONNECTED
        self._fail_waiting(error)
        self._end_flows(error)
        self.events.interrupted(self.uri, error)

    def _fail_waiting(self, error: PubSubPlusClientError) -> None:
        self._fail_receipts(error)
        if self.held:
            held = list(self.held)
            self.held.clear()
            self.events.publish_failed(None, held, error)
        replies = list(self.replies.values())
        self.replies.clear()
        for future in replies:
            if not future.done():
                future.set_exception(error)

    # -- publishing ------------------------------------------------------------------

    def publish(self, messages: list[NativeMessage], owner: object = None) -> None:
        """Send now, or hold while reconnecting or while the link is backed up."""
        state = self.state
        conn = self.conn
        if state is ServiceState.CONNECTED and conn is not None and not conn.paused \
                and not self.held:
            conn.publish(messages)
        elif state in (ServiceState.CONNECTED, ServiceState.RECONNECTING):
            self.held.extend((owner, m) for m in messages)
        else:
            raise IllegalStateError(f"the messaging service is {state.value}")

    @property
    def held_count(self) -> int:
        """Messages published but not yet handed to the link (read from any thread)."""
        return len(self.held)

    def held_by(self, owner: object) -> int:
        return sum(1 for o, _ in self.held if o is owner)

    def _flush_held(self) -> None:
        conn = self.conn
        if self.held and conn is not None and not conn.paused:
            conn.publish([m for _, m in self.held])
            self.held.clear()
        if not self.held:
            self.events.writable()

    def connection_writable(self, conn: _Connection) -> None:
        if conn is self.conn and self.state is ServiceState.CONNECTED:
            self._flush_held()

    def publish_error(
        self, topic: str | None, error: PubSubPlusClientError, failed: list[Held] | None = None
    ) -> None:
        self.events.publish_failed(topic, failed or [], error)

    # -- guaranteed messaging ------------------------------------------------------

    def publish_persistent(
        self,
        message: NativeMessage,
        on_settled: Callable[[PubSubPlusClientError | None], None],
    ) -> None:
        """Send one persistent message; ``on_settled`` gets None (ACK) or the error."""
        conn = self.conn
        if self.state is not ServiceState.CONNECTED or conn is None or conn.lost:
            raise IllegalStateError(f"the messaging service is {self.state.value}")
        self._next_publish_id += 1
        pid = self._next_publish_id
        self.receipts[pid] = on_settled
        try:
            conn.send(Publish((message,), first_id=pid))
        except LocalProtocolError as exc:
            del self.receipts[pid]
            raise MessageTooBigError(f"persistent message not sent: {exc.message}") from None

    def on_publish_settled(self, event: Ack | Nack) -> None:
        error = None
        if isinstance(event, Nack):
            error = error_for_code(event.code or ErrorCode.INTERNAL_ERROR, event.text)
        receipts = self.receipts
        for first, last in event.ranges:
            ids = range(first, last + 1) if last - first < len(receipts) else [
                i for i in list(receipts) if first <= i <= last
            ]
            for pid in ids:
                callback = receipts.pop(pid, None)
                if callback is not None:
                    callback(error)

    async def bind(self, flow: Flow, event: Bind) -> None:
        """Start a queue flow; raises the broker's refusal."""
        conn = self.conn
        if self.state is not ServiceState.CONNECTED or conn is None:
            raise IllegalStateError(f"the messaging service is {self.state.value}")
        self.flows[event.subscription_id] = flow
        result = await conn.request(event)
        if result.code:
            self.flows.pop(event.subscription_id, None)
            raise error_for_code(result.code, result.text)
        # Bound again after a reconnection: a temporary queue is created anew.
        self.flow_binds[event.subscription_id] = event if event.durable else \
            msgspec.structs.replace(event, create=True)

    async def unbind(self, subscription_id: int) -> None:
        self.flows.pop(subscription_id, None)
        self.flow_binds.pop(subscription_id, None)
        conn = self.conn
        if self.state is ServiceState.CONNECTED and conn is not None:
            with contextlib.suppress(PubSubPlusClientError):
                await conn.request(Unbind(0, subscription_id))

    def settle(self, delivery_id: int, outcome: str, epoch: int) -> None:
        """Settle a guaranteed delivery: "accepted", "failed" or "rejected"."""
        conn = self.conn
        if conn is None or conn.lost or epoch != self.epoch:
            return  # the broker redelivers it: the flow ended with its connection
        ranges = ((delivery_id, delivery_id),)
        if outcome == "accepted":
            conn.send(Ack(ranges))
        else:
            conn.send(Nack(ranges, reject=outcome == "rejected"))

    # -- subscriptions -------------------------------------------------------------

    def new_subscription_id(self) -> int:
        self._next_subscription += 1
        return self._next_subscription

    def register(self, subscription_id: int, consumer: Consumer) -> None:
        self.consumers[subscription_id] = consumer

    def unregister(self, subscription_id: int) -> None:
        self.consumers.pop(subscription_id, None)

    def _reconnecting(self) -> bool:
        return self.state is ServiceState.RECONNECTING

    def _require_connected(self) -> None:
        if self.state not in (ServiceState.CONNECTED, ServiceState.RECONNECTING):
            raise IllegalStateError(f"the messaging service is {self.state.value}")

    async def subscribe(self, subscription_id: int, text: str) -> None:
        """Add ``text`` to the subscription; raises the broker's refusal."""
        self._require_connected()
        texts = self.subscriptions.setdefault(subscription_id, set())
        if text in texts:
            return
        conn = self.conn
        if self.state is ServiceState.CONNECTED and conn is not None:
            try:
                result = await conn.request(Subscribe(0, subscription_id, text))
            except ServiceUnreachableError:
                if not self._reconnecting():
                    raise
            else:
                if result.code:
                    if not texts:
                        self.subscriptions.pop(subscription_id, None)
                    raise error_for_code(result.code, result.text)
        texts.add(text)  # while reconnecting: applied once reconnected

    async def unsubscribe(self, subscription_id: int, text: str | None = None) -> None:
        """Remove ``text`` (None: every filter) from the subscription."""
        texts = self.subscriptions.get(subscription_id)
        if texts is None or (text is not None and text not in texts):
            return
        if text is None:
            del self.subscriptions[subscription_id]
        else:
            texts.discard(text)
            if not texts:
                del self.subscriptions[subscription_id]
        conn = self.conn
        if self.state is ServiceState.CONNECTED and conn is not None:
            with contextlib.suppress(PubSubPlusClientError):
                result = await conn.request(Unsubscribe(0, subscription_id, text))
                if result.code and result.code != ErrorCode.UNKNOWN_SUBSCRIPTION:
                    log.warning("unsubscribing %r failed: %s", text,
                                error_for_code(result.code, result.text))

    # -- deliveries and credit -------------------------------------------------------

    def on_deliver(self, event: Deliver) -> None:
        now_ms = int(time.time() * 1000)
        ids = event.subscription_ids
        first_id = event.first_id
        if first_id is not None:  # a queue flow's guaranteed delivery
            flow = self.flows.get(ids[0])
            for offset, m in enumerate(event.messages):
                if flow is None:
                    self._give_back(1)
                    continue
                flow.deliver_guaranteed(
                    InboundMessage(m, now_ms), first_id + offset, event.redelivered
                )
            return
        messages = event.messages
        consumers = self.consumers
        if len(ids) == 1:
            sub_id = ids[0]
            if sub_id == INBOX_ID:
                for m in messages:
                    self._on_reply(InboundMessage(m, now_ms))
                self._give_back(len(messages))
                return
            consumer = consumers.get(sub_id)
            if consumer is None:
                self._give_back(len(messages))  # a receiver that has gone
                return
            for m in messages:
                consumer.deliver(InboundMessage(m, now_ms), None)
            return
        targets = [c for i in ids if i != INBOX_ID and (c := consumers.get(i)) is not None]
        for m in messages:
            inbound = InboundMessage(m, now_ms)
            if INBOX_ID in ids:
                self._on_reply(inbound)
            if not targets:
                self._give_back(1)
                continue
            ticket = Ticket(len(targets)) if len(targets) > 1 else None
            for consumer in targets:
                consumer.deliver(inbound, ticket)

    def release(self, ticket: Ticket | None) -> None:
        """A consumer is done with a message: its credit may go back."""
        if ticket is not None:
            ticket.remaining -= 1
            if ticket.remaining > 0:
                return
        self._give_back(1)

    def release_threadsafe(self, ticket: Ticket | None) -> None:
        """:meth:`release` from any thread (batched: one loop wake-up per burst)."""
        with self._release_lock:
            self._releases.append(ticket)
            if self._release_scheduled:
                return
            self._release_scheduled = True
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drain_releases)

    def _drain_releases(self) -> None:
        with self._release_lock:
            releases, self._releases = self._releases, []
            self._release_scheduled = False
        for ticket in releases:
            self.release(ticket)

    def _give_back(self, count: int) -> None:
        if not self.config.receive_window:
            return
        self._returned += count
        if self._returned >= self._credit_step:
            conn = self.conn
            if conn is not None and not conn.lost:
                conn.send(Credit(min(self._returned, 0xFFFF_FFFF)))
                self._returned = 0

    # -- request/reply ---------------------------------------------------------------

    def new_reply_topic(self) -> str:
        """A fresh topic under this client's reply inbox."""
        if self.inbox_prefix is None:
            raise IllegalStateError("the messaging service is not connected")
        self._reply_counter += 1
        return f"{self.inbox_prefix}{self._reply_counter}"

    def expect_reply(self, topic: str) -> asyncio.Future[InboundMessage]:
        assert self.loop is not None
        future: asyncio.Future[InboundMessage] = self.loop.create_future()
        self.replies[topic] = future
        return future

    def forget_reply(self, topic: str) -> None:
        self.replies.pop(topic, None)

    def _on_reply(self, message: InboundMessage) -> None:
        future = self.replies.pop(message.get_destination_name(), None)
        if future is None or future.done():
            log.debug("reply to %r arrived after its request ended; dropped",
                      message.get_destination_name())
            return
        future.set_result(message)
