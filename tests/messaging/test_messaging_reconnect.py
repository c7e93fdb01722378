"""Reconnection: retry strategy, listeners and ServiceEvent, subscriptions re-applied,
publishes held while reconnecting, and giving up (service interruption)."""

from __future__ import annotations

import socket
import threading

from warren.messaging import (
    IllegalStateError,
    ReconnectionAttemptListener,
    ReconnectionListener,
    RetryStrategy,
    ServiceEvent,
    ServiceInterruptionListener,
    ServiceUnreachableError,
    Topic,
    TopicSubscription,
)

WAIT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Events(ReconnectionListener, ReconnectionAttemptListener, ServiceInterruptionListener):
    def __init__(self) -> None:
        self.reconnecting = threading.Event()
        self.reconnected = threading.Event()
        self.interrupted = threading.Event()
        self.seen: list[tuple[str, ServiceEvent]] = []

    def on_reconnecting(self, event: ServiceEvent) -> None:
        self.seen.append(("reconnecting", event))
        self.reconnecting.set()

    def on_reconnected(self, service_event: ServiceEvent) -> None:
        self.seen.append(("reconnected", service_event))
        self.reconnected.set()

    def on_service_interrupted(self, event: ServiceEvent) -> None:
        self.seen.append(("interrupted", event))
        self.interrupted.set()


def test_reconnect_and_give_up(make_broker, service, uid: str) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    extra = (
        '[[listener]]\nprotocol = "mqtt"\nhost = "127.0.0.1"\nport = 0\n'
        f'[[listener]]\nprotocol = "native"\nhost = "127.0.0.1"\nport = {port}\n'
    )
    broker = make_broker(extra)
    steady = service(target=broker, reconnect=RetryStrategy.forever_retry(20))
    fragile = service(target=broker, reconnect=RetryStrategy.parametrized_retry(2, 10))
    steady_events, fragile_events = Events(), Events()
    for svc, events in ((steady, steady_events), (fragile, fragile_events)):
        svc.add_reconnection_listener(events)
        svc.add_reconnection_attempt_listener(events)
        svc.add_service_interruption_listener(events)
    name = steady.get_application_id()
    receiver = steady.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/r")]).build()
    receiver.start()
    publisher = steady.create_direct_message_publisher_builder().build()
    publisher.start()
    doomed = fragile.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/r")]).build()
    doomed.start()

    assert broker.stop() == 0  # the broker says SERVER_SHUTTING_DOWN and goes away
    assert steady_events.reconnecting.wait(WAIT)
    assert not steady.is_connected
    publisher.publish("sent while reconnecting", Topic.of(f"{uid}/r"))  # held

    # The fragile service gives up after two attempts: its receiver is over.
    assert fragile_events.interrupted.wait(WAIT)
    assert [kind for kind, _ in fragile_events.seen] == ["reconnecting", "interrupted"]
    cause = fragile_events.seen[-1][1].get_cause()
    assert isinstance(cause, ServiceUnreachableError)
    assert doomed.receive_message(0) is None and doomed.is_terminated()
    try:
        fragile.create_direct_message_publisher_builder().build().start()
        raise AssertionError("a disconnected service must refuse to start publishers")
    except IllegalStateError:
        pass

    make_broker.launcher.start(extra, workdir=broker.workdir)  # the same port again
    assert steady_events.reconnected.wait(WAIT)
    assert steady.is_connected
    assert steady.get_application_id() == name  # same client name, same reply inbox
    message = receiver.receive_message(5000)  # re-subscribed, and the held message sent
    assert message is not None and message.get_payload_as_string() == "sent while reconnecting"
    kinds = [kind for kind, _ in steady_events.seen]
    assert kinds == ["reconnecting", "reconnected"]
    event = steady_events.seen[0][1]
    assert event.get_broker_uri() == f"tcp://127.0.0.1:{port}" and event.get_message()
    assert event.get_time_stamp() > 0


def test_first_connect_failure_is_clear(uid: str) -> None:
    from warren.messaging import MessagingService

    port = _free_port()  # nothing listens here
    svc = MessagingService.builder().from_properties(
        {"transport.host": f"tcp://127.0.0.1:{port}"}
    ).with_connection_retry_strategy(RetryStrategy.parametrized_retry(1, 0)).build()
    try:
        svc.connect()
        raise AssertionError("connect must fail")
    except ServiceUnreachableError as exc:
        assert f"127.0.0.1:{port}" in str(exc)
    assert not svc.is_connected
