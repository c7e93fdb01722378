"""The broker process: VPNs, listeners, $SYS statistics, lifecycle.

``Broker.start()`` opens the store and recovers what it holds (persistent MQTT
sessions, retained messages), then binds every configured listener, then (if asked)
writes the ready file that tests and supervisors wait for; ``Broker.stop()`` closes
listeners, says goodbye to MQTT 5 clients (DISCONNECT 0x8B), lets connections close,
and closes the store after committing what was journalled.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warren import __version__
from warren.adapters.amqp import AMQPConnection, AmqpSettings, restore_queue
from warren.adapters.amqp_broker import restore_binding, restore_exchange
from warren.adapters.mqtt import (
    MQTTConnection,
    MqttSettings,
    restore_delivery,
    restore_incoming_qos2,
    restore_session,
    restore_subscription,
)
from warren.adapters.native import NativeConnection, NativeSettings
from warren.adapters.native_ws import serve_native_over_websocket
from warren.adapters.ws import serve_mqtt_over_websocket
from warren.config import ListenerConfig, WarrenConfig
from warren.core.acl import AccessControl
from warren.core.message import Message
from warren.core.persistence import MessageCache
from warren.core.queues import Queue
from warren.core.sessions import Session
from warren.core.stats import BrokerStats
from warren.core.topics import InvalidTopic, parse_mqtt_filter, parse_native_filter
from warren.core.vpn import Vpn
from warren.core.watermark import MemoryWatermark
from warren.store import (
    DEFAULT_FILENAME,
    BindingRecord,
    ExchangeRecord,
    IncomingQos2Record,
    MemoryStore,
    QueueRecord,
    QueueSubscriptionRecord,
    RetainedRecord,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
    SqliteStore,
    StorageError,
    Store,
    StoredEntry,
    StoredEntryRows,
)
from warren.store.journal import Journal

__all__ = ["BoundListener", "Broker", "run"]

log = logging.getLogger("warren.server")


@dataclass(frozen=True, slots=True)
class BoundListener:
    protocol: str
    host: str
    port: int
    path: str | None = None

    def url(self) -> str:
        scheme = {"mqtt": "mqtt", "native": "tcp", "amqp": "amqp", "admin": "http"}.get(
            self.protocol, "ws"
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path or ''}"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Broker:
    """One broker process."""

    def __init__(self, config: WarrenConfig) -> None:
        self.config = config
        self.stats = BrokerStats()
        self.vpns: dict[str, Vpn] = {}
        # Queued bytes of every VPN against the memory alarm's watermarks ([amqp]).
        self.memory = MemoryWatermark(config.amqp.high_watermark_bytes,
                                      config.amqp.low_watermark)
        for name, vpn_config in config.vpn.items():
            acl = AccessControl(config.acl_rules(name), vpn_config.acl_default == "allow")
            self.vpns[name] = Vpn(name, self.stats, acl)
            self.vpns[name].queues.memory = self.memory
        m = config.mqtt
        self.mqtt_settings = MqttSettings(
            max_packet_size=m.max_packet_size,
            server_keep_alive=m.server_keep_alive,
            receive_maximum=m.receive_maximum,
            topic_alias_maximum=m.topic_alias_maximum,
            max_queued_messages=m.max_queued_messages,
            queue_qos0_messages=m.queue_qos0_messages,
            max_session_expiry=m.max_session_expiry,
            max_outbound_bytes=m.max_outbound_bytes,
            slow_consumer=m.slow_consumer,
            max_client_id_length=m.max_client_id_length,
            acl_refusal_code=0x87 if m.acl_refusal == "not-authorized" else 0x80,
        )
        self.native_settings = NativeSettings(
            server_keepalive=m.server_keep_alive,
            max_queued_messages=m.max_queued_messages,
            max_outbound_bytes=m.max_outbound_bytes,
            slow_consumer=m.slow_consumer,
            max_client_name_length=m.max_client_id_length,
        )
        self.connections: set[MQTTConnection | NativeConnection | AMQPConnection] = set()
        self.listeners: list[BoundListener] = []
        self._servers: list[Any] = []
        self._sys_task: asyncio.Task[None] | None = None
        self.store: Store | None = None
        self.journal: Journal | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> list[BoundListener]:
        self.open_store()
        if isinstance(self.store, SqliteStore):
            await self.store.ready()  # its writer process has the file: writes go at once
        for listener in self.config.listener:
            bound = await self._start_listener(listener)
            self.listeners.append(bound)
            log.info("listening for %s on %s", _describe(listener.protocol), bound.url())
        self._warn_about_exposure()
        if self.config.server.sys_interval > 0:
            self._sys_task = asyncio.create_task(self._sys_loop(), name="warren-sys")
        return self.listeners

    def open_store(self) -> None:
        """Open the configured store and rebuild the state it holds (before any
        listener, so no client sees a half-recovered broker).

        Raises :class:`StorageError` (with the cause and the fix) if it cannot.
        """
        server = self.config.server
        loop = asyncio.get_running_loop()

        def timer(deadline: float, callback: Callable[[], None]) -> None:
            loop.call_later(max(0.0, deadline - time.monotonic()), callback)

        for vpn in self.vpns.values():
            # Recovered TTLs and queue expiries run from start-up, before any client.
            if vpn.queues.timer is None:
                vpn.queues.timer = timer
        store: Store
        if server.storage == "memory":
            store = MemoryStore()
        else:
            store = SqliteStore(server.data_dir / DEFAULT_FILENAME,
                                synchronous=server.synchronous,
                                max_size=server.storage_max_bytes,
                                loop=loop)
        try:
            started = time.monotonic()
            counts = self._recover(store)
        except BaseException:
            store.close()
            raise
        self.store = store
        self.journal = Journal(store, asyncio.get_running_loop())
        for vpn in self.vpns.values():
            vpn.attach_journal(self.journal)
        if server.storage == "memory":
            log.info("storage: memory (nothing is kept across a restart)")
        else:
            log.info("storage: %s (synchronous=%s); recovered %s in %.2f s",
                     server.data_dir / DEFAULT_FILENAME, server.synchronous,
                     ", ".join(f"{n} {what}" for what, n in counts.items()),
                     time.monotonic() - started)

    def _recover(self, store: Store) -> dict[str, int]:
        """Rebuild sessions, their subscriptions and deliveries, and retained messages.

        Runs inside the store's recovery loop (the cyclic GC is paused there), one
        :class:`Message` per stored message of a session or a retained topic; queue
        entries stay in the store's compact rows until they are needed
        (``Queue.restore_rows``). Then freezes what it built, which lives as long as
        the broker (docs/storage.md, "Broker recovery").
        """
        settings = self.mqtt_settings
        sessions: dict[int, Session] = {}
        queues: dict[int, Queue] = {}
        messages = MessageCache()
        counts = {"sessions": 0, "subscriptions": 0, "deliveries": 0, "retained messages": 0,
                  "exchanges": 0, "queues": 0, "bindings": 0, "queue subscriptions": 0,
                  "queued messages": 0}
        skipped: set[str] = set()
        # Queue entries arrive in (queue, id) order, as runs of rows (compact) or one
        # by one: gathered per queue here, restored once the stream has ended (the
        # rows may only be decoded then) in one call per queue.
        runs: dict[int, list[StoredEntryRows]] = {}
        pending: dict[int, list[StoredEntry]] = {}
        current_id = -1
        current: list[StoredEntry] | None = None
        for item in store.recover(compact=True):
            cls = item.__class__
            if cls is StoredEntryRows:
                rows: StoredEntryRows = item  # type: ignore[assignment]
                if rows.queue_id in queues:
                    runs.setdefault(rows.queue_id, []).append(rows)
            elif cls is StoredEntry:
                entry: StoredEntry = item  # type: ignore[assignment]
                if entry.queue_id != current_id:
                    current_id = entry.queue_id
                    current = (pending.setdefault(current_id, [])
                               if current_id in queues else None)
                if current is not None:
                    current.append(entry)
            elif cls is SessionDelivery:
                delivery: SessionDelivery = item  # type: ignore[assignment]
                owner = sessions.get(delivery.session_id)
                if owner is not None:
                    restore_delivery(owner, delivery, messages)
                    counts["deliveries"] += 1
            elif cls is RetainedRecord:
                retained: RetainedRecord = item  # type: ignore[assignment]
                vpn = self.vpns.get(retained.vpn)
                if vpn is None:
                    skipped.add(retained.vpn)
                    continue
                vpn.router.retained.set(retained.topic, messages.get(retained.message))
                counts["retained messages"] += 1
            elif cls is SessionRecord:
                record: SessionRecord = item  # type: ignore[assignment]
                vpn = self.vpns.get(record.vpn)
                if vpn is None:
                    skipped.add(record.vpn)
                    continue
                sessions[record.id] = restore_session(vpn, record, settings)
                counts["sessions"] += 1
            elif cls is SessionSubscriptionRecord:
                subscription: SessionSubscriptionRecord = item  # type: ignore[assignment]
                owner = sessions.get(subscription.session_id)
                if owner is not None:
                    restore_subscription(owner, subscription)
                    counts["subscriptions"] += 1
            elif cls is ExchangeRecord or cls is QueueRecord or cls is BindingRecord:
                vpn = self.vpns.get(item.vpn)  # type: ignore[union-attr]
                if vpn is None:
                    skipped.add(item.vpn)  # type: ignore[union-attr]
                elif cls is ExchangeRecord:
                    restore_exchange(vpn, item)  # type: ignore[arg-type]
                    counts["exchanges"] += 1
                elif cls is QueueRecord:
                    restored = restore_queue(vpn, item)  # type: ignore[arg-type]
                    if restored is not None:
                        queues[restored.store_id] = restored
                        counts["queues"] += 1
                elif restore_binding(vpn, item):  # type: ignore[arg-type]
                    counts["bindings"] += 1
            elif cls is QueueSubscriptionRecord:
                qsub: QueueSubscriptionRecord = item  # type: ignore[assignment]
                subscribed = queues.get(qsub.queue_id)
                parse = parse_native_filter if qsub.syntax == "native" else parse_mqtt_filter
                try:
                    topic_filter = parse(qsub.key)
                except InvalidTopic as exc:  # stored by a Warren that accepted it
                    log.warning("queue subscription %r not restored: %s", qsub.key, exc)
                    continue
                if subscribed is not None and subscribed.registry.subscribe(
                    subscribed, qsub.key, topic_filter, qsub.syntax
                ):
                    counts["queue subscriptions"] += 1
            elif cls is IncomingQos2Record:
                incoming: IncomingQos2Record = item  # type: ignore[assignment]
                owner = sessions.get(incoming.session_id)
                if owner is not None:
                    restore_incoming_qos2(owner, incoming)
        # Outside the store's loop, so pause the cyclic GC here too: it would walk
        # the million objects just built, over and over, for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for queue_id, queue_runs in runs.items():
                queues[queue_id].restore_rows(queue_runs)
                counts["queued messages"] += sum(len(run.rows) for run in queue_runs)
            for queue_id, entries in pending.items():
                queues[queue_id].restore_many(entries, messages)
                counts["queued messages"] += len(entries)
            del runs, pending, current
        finally:
            if collecting:
                gc.enable()
        if skipped:
            log.warning("the store holds state of VPNs not configured (%s); it is kept "
                        "but not served", ", ".join(sorted(skipped)))
        gc.freeze()
        return counts

    async def _start_listener(self, listener: ListenerConfig) -> BoundListener:
        if listener.protocol in ("native", "native-ws"):
            return await self._start_native_listener(listener)
        if listener.protocol == "amqp":
            return await self._start_amqp_listener(listener)
        if listener.protocol == "admin":  # the management API (admin/)
            from warren.admin.http import start_admin_listener

            admin = await start_admin_listener(self, listener.host, listener.port)
            self._servers.append(admin)
            return BoundListener("admin", listener.host, admin.sockets[0].getsockname()[1])
        vpn = self.vpns[listener.vpn]
        settings = self.mqtt_settings
        if listener.protocol == "mqtt":
            def factory() -> MQTTConnection:
                return self._track(MQTTConnection(vpn, settings, transport_name="tcp"))

            port = await self._listen_tcp(
                factory, listener, "MQTT",
                "Is another broker running? Pick another port with --mqtt-port or "
                "[[listener]] port",
            )
            return BoundListener("mqtt", listener.host, port)

        def ws_factory() -> MQTTConnection:
            return self._track(MQTTConnection(vpn, settings, transport_name="websocket"))

        try:
            ws_server = await serve_mqtt_over_websocket(
                listener.host,
                listener.port,
                listener.path,
                ws_factory,
                max_message_size=settings.max_packet_size + 16,
                high_water=settings.max_outbound_bytes,
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen for MQTT over WebSocket on {listener.host}:{listener.port}: "
                f"{exc.strerror}. Pick another port with --ws-port or [[listener]] port",
            ) from exc
        self._servers.append(ws_server)
        port = next(iter(ws_server.sockets)).getsockname()[1]
        return BoundListener("mqtt-ws", listener.host, port, listener.path)

    async def _start_native_listener(self, listener: ListenerConfig) -> BoundListener:
        """A native protocol listener, over TCP or WebSocket (adapters/native*.py)."""
        settings = self.native_settings
        transport_name = "tcp" if listener.protocol == "native" else "websocket"

        def factory() -> NativeConnection:
            connection = NativeConnection(
                self.vpns, listener.vpn, settings, transport_name=transport_name,
                on_close=self.connections.discard,
            )
            self.connections.add(connection)
            return connection

        advice = ("Is another broker running? Pick another port with --native-port or "
                  "[[listener]] port")
        if listener.protocol == "native":
            port = await self._listen_tcp(factory, listener, _describe("native"), advice)
            return BoundListener("native", listener.host, port)
        # Any request path is served unless the listener names one.
        path = listener.path if "path" in listener.model_fields_set else None
        try:
            ws_server = await serve_native_over_websocket(
                listener.host,
                listener.port,
                path,
                factory,
                max_message_size=settings.max_frame_size + 1024,
                high_water=settings.max_outbound_bytes,
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen for {_describe(listener.protocol)} on "
                f"{listener.host}:{listener.port}: {exc.strerror}. {advice}",
            ) from exc
        self._servers.append(ws_server)
        port = next(iter(ws_server.sockets)).getsockname()[1]
        return BoundListener("native-ws", listener.host, port, path)

    async def _start_amqp_listener(self, listener: ListenerConfig) -> BoundListener:
        """An AMQP 0-9-1 listener (adapters/amqp.py); vhost '/' is the listener's VPN."""
        settings = AmqpSettings(max_outbound_bytes=self.config.mqtt.max_outbound_bytes,
                                heartbeat=self.config.amqp.heartbeat)

        def factory() -> AMQPConnection:
            connection = AMQPConnection(
                self.vpns, listener.vpn, settings, on_close=self.connections.discard,
                memory=self.memory,
            )
            self.connections.add(connection)
            return connection

        port = await self._listen_tcp(
            factory, listener, "AMQP",
            "Is RabbitMQ running? Pick another port with --amqp-port or [[listener]] port",
        )
        return BoundListener("amqp", listener.host, port)

    async def _listen_tcp(
        self,
        factory: Callable[[], asyncio.Protocol],
        listener: ListenerConfig,
        what: str,
        advice: str,
    ) -> int:
        """Serve ``factory``'s protocol on the listener's TCP address (TCP_NODELAY);
        returns the bound port. A bind error names the address and ``advice``."""
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                factory, listener.host, listener.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen for {what} on {listener.host}:{listener.port}: "
                f"{exc.strerror}. {advice}",
            ) from exc
        self._servers.append(server)
        for s in server.sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return int(server.sockets[0].getsockname()[1])

    def _track(self, connection: MQTTConnection) -> MQTTConnection:
        self.connections.add(connection)
        connection._on_close = self.connections.discard
        return connection

    def _warn_about_exposure(self) -> None:
        anonymous = [name for name, vpn in self.vpns.items() if vpn.acl.default_allow]
        if not anonymous:
            return
        exposed = [b for b in self.listeners if not _is_loopback(b.host)]
        if exposed:
            log.warning(
                "anonymous clients may connect and publish/subscribe to anything on %s "
                "(vpn %s has no authentication yet). Bind to 127.0.0.1 (--host) or add "
                "ACL rules before exposing this broker to a network.",
                ", ".join(b.url() for b in exposed),
                ", ".join(repr(n) for n in anonymous),
            )
        else:
            log.info("anonymous clients are admitted (vpn %s)",
                     ", ".join(repr(n) for n in anonymous))

    async def stop(self) -> None:
        if self._sys_task is not None:
            self._sys_task.cancel()
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_for_shutdown()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=5)
            except TimeoutError:
                log.warning("some connections did not close within 5 s")
        if self.store is not None:
            assert self.journal is not None
            self.journal.flush()  # what closing sessions journalled
            self.store.close()  # commits everything submitted
            self.store = None
        log.info("stopped")

    # --- $SYS ---------------------------------------------------------------------------

    def sys_values(self) -> dict[str, str]:
        s = self.stats
        subscriptions = sum(v.router.subscription_count for v in self.vpns.values())
        retained = sum(len(v.router.retained) for v in self.vpns.values())
        return {
            "version": f"warren {__version__}",
            "uptime": f"{s.uptime()} seconds",
            "clients/connected": str(s.clients_connected),
            "clients/total": str(s.clients_total),
            "clients/maximum": str(s.clients_maximum),
            "clients/disconnected": str(max(0, s.clients_total - s.clients_connected)),
            "messages/received": str(s.messages_received),
            "messages/sent": str(s.messages_sent),
            "publish/messages/received": str(s.publish_received),
            "publish/messages/sent": str(s.publish_sent),
            "publish/messages/dropped": str(s.dropped),
            "bytes/received": str(s.bytes_received),
            "bytes/sent": str(s.bytes_sent),
            "subscriptions/count": str(subscriptions),
            "retained messages/count": str(retained),
        }

    def publish_sys(self) -> None:
        """Publish the statistics as retained messages under ``$SYS/broker/``."""
        values = self.sys_values()
        for vpn in self.vpns.values():
            for key, value in values.items():
                vpn.router.publish(
                    Message(f"$SYS/broker/{key}", value.encode(), 0, True), None
                )

    async def _sys_loop(self) -> None:
        interval = self.config.server.sys_interval
        while True:
            self.publish_sys()
            await asyncio.sleep(interval)


def _describe(protocol: str) -> str:
    return {
        "mqtt": "MQTT",
        "mqtt-ws": "MQTT over WebSocket",
        "native": "the native protocol",
        "native-ws": "the native protocol over WebSocket",
        "amqp": "AMQP 0-9-1",
        "admin": "the management API (HTTP)",
    }.get(protocol, protocol)


def write_ready_file(path: Path, listeners: list[BoundListener]) -> None:
    """Atomically write the ready file (pid and bound listeners) as JSON."""
    data = {
        "pid": os.getpid(),
        "version": __version__,
        "listeners": [
            {"protocol": b.protocol, "host": b.host, "port": b.port}
            | ({"path": b.path} if b.path else {})
            for b in listeners
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def _serve(config: WarrenConfig, ready_file: Path | None) -> None:
    broker = Broker(config)
    try:
        listeners = await broker.start()
    except BaseException:
        await broker.stop()
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_file is not None:
        write_ready_file(ready_file, listeners)
    log.info("warren %s ready (pid %d); Ctrl-C to stop", __version__, os.getpid())
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await broker.stop()


def run(config: WarrenConfig, ready_file: Path | None = None) -> None:
    """Run the broker until SIGINT/SIGTERM, on uvloop when it is installed."""
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_serve(config, ready_file))
    except StorageError as exc:
        raise SystemExit(f"warren: cannot start: storage: {exc}") from exc
