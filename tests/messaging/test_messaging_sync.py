"""The threaded API against a real broker: publish, receive, request/reply, lifecycle."""

from __future__ import annotations

import threading

import pytest

from warren.messaging import (
    FailedPublishEvent,
    IllegalStateError,
    InboundMessage,
    MessageHandler,
    PublisherOverflowError,
    PubSubTimeoutError,
    Replier,
    RequestMessageHandler,
    ShareName,
    Topic,
    TopicSubscription,
)

WAIT_MS = 5000


def test_publish_and_receive(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    assert svc.is_connected
    subscriptions = [TopicSubscription.of(f"{uid}/a/>"), TopicSubscription.of(f"{uid}/b")]
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions(subscriptions).build()
    receiver.start()
    assert receiver.is_running()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    assert publisher.is_ready()
    message = svc.message_builder().with_property("k", "v").build("one")
    publisher.publish(message, Topic.of(f"{uid}/a/1"))
    publisher.publish("two", Topic.of(f"{uid}/b"))
    publisher.publish(b"three", f"{uid}/c")  # not subscribed
    publisher.publish(b"four", Topic.of(f"{uid}/a/2"), {"extra": "yes"})
    got = [receiver.receive_message(WAIT_MS) for _ in range(3)]
    assert [m.get_payload_as_string() for m in got if m] == ["one", "two", "four"]
    assert got[0] is not None and got[0].get_properties() == {"k": "v"}
    assert got[2] is not None and got[2].get_property("extra") == "yes"
    assert receiver.receive_message(0) is None  # nothing else waiting
    publisher.terminate()
    receiver.terminate()
    assert receiver.receive_message(0) is None and receiver.is_terminated()
    with pytest.raises(IllegalStateError):
        publisher.publish("late", Topic.of(f"{uid}/a/1"))


def test_handler_gets_messages_in_order(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    received: list[str] = []
    done = threading.Event()

    class Handler(MessageHandler):
        def on_message(self, message: InboundMessage) -> None:
            received.append(message.get_payload_as_string() or "")
            if len(received) == 100:
                done.set()

    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/>")]).build()
    receiver.start()
    receiver.receive_async(Handler())
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    for i in range(100):
        publisher.publish(str(i), Topic.of(f"{uid}/n/{i % 7}"))
    assert done.wait(5)
    assert received == [str(i) for i in range(100)]
    receiver.terminate(1000)


def test_add_and_remove_subscriptions(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receiver = svc.create_direct_message_receiver_builder().build()
    receiver.start()
    receiver.add_subscription(TopicSubscription.of(f"{uid}/x"))
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish("1", Topic.of(f"{uid}/x"))
    first = receiver.receive_message(WAIT_MS)
    assert first is not None and first.get_payload_as_string() == "1"
    receiver.remove_subscription(TopicSubscription.of(f"{uid}/x"))
    receiver.add_subscription(TopicSubscription.of(f"{uid}/y"))
    publisher.publish("2", Topic.of(f"{uid}/x"))
    publisher.publish("3", Topic.of(f"{uid}/y"))
    second = receiver.receive_message(WAIT_MS)  # ordered after "2": so "2" never came
    assert second is not None and second.get_payload_as_string() == "3"


def test_shared_subscription(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    group = ShareName.of(f"g{uid}")
    members = [
        svc.create_direct_message_receiver_builder()
        .with_subscriptions([TopicSubscription.of(f"{uid}/jobs/>")]).build(group)
        for _ in range(2)
    ]
    for m in members:
        m.start()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    for i in range(10):
        publisher.publish(str(i), Topic.of(f"{uid}/jobs/{i}"))
    # Each member gets every other message (round robin): 5 each, in order.
    for member in members:
        got = [member.receive_message(WAIT_MS) for _ in range(5)]
        assert all(got)
    assert {m.receive_message(0) for m in members} == {None}


def test_request_reply(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    server = service()
    client = service()

    class Responder(RequestMessageHandler):
        def on_message(self, message: InboundMessage, replier: Replier | None) -> None:
            assert replier is not None
            text = message.get_payload_as_string()
            replier.reply(server.message_builder().with_property("by", "responder")
                          .build(f"re: {text}"))

    replier = server.request_reply().create_request_reply_message_receiver_builder() \
        .build(TopicSubscription.of(f"{uid}/svc/>"))
    replier.start()
    replier.receive_async(Responder())
    requester = client.request_reply().create_request_reply_message_publisher_builder().build()
    requester.start()
    reply = requester.publish_await_response(
        client.message_builder().with_correlation_id("mine").build("hello"),
        Topic.of(f"{uid}/svc/greet"), reply_timeout=WAIT_MS,
    )
    assert reply.get_payload_as_string() == "re: hello"
    assert reply.get_correlation_id() == "mine"
    assert reply.get_property("by") == "responder"
    assert reply.get_destination_name().startswith("$inbox/")
    # Several requests at once, each matched to its own reply.
    futures = [requester.publish(str(i), Topic.of(f"{uid}/svc/n"), WAIT_MS) for i in range(10)]
    assert [f.result(5).get_payload_as_string() for f in futures] == [
        f"re: {i}" for i in range(10)
    ]


def test_request_without_replier_times_out(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    requester = svc.request_reply().create_request_reply_message_publisher_builder().build()
    requester.start()
    with pytest.raises(PubSubTimeoutError, match="no reply"):
        requester.publish_await_response("anyone?", Topic.of(f"{uid}/nobody"), reply_timeout=50)


def test_receive_message_of_a_replier(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    server, client = service(), service()
    replier = server.request_reply().create_request_reply_message_receiver_builder() \
        .build(TopicSubscription.of(f"{uid}/rr"))
    replier.start()
    requester = client.request_reply().create_request_reply_message_publisher_builder().build()
    requester.start()
    future = requester.publish("q", Topic.of(f"{uid}/rr"), WAIT_MS)
    request, reply_to = replier.receive_message(WAIT_MS)
    assert request is not None and reply_to is not None
    reply_to.reply(server.message_builder().build("a"))
    assert future.result(5).get_payload_as_string() == "a"
    assert replier.receive_message(0) == (None, None)


def test_publish_failure_listener_reports_acl_refusals(make_broker, service, uid: str) -> None:  # type: ignore[no-untyped-def]
    b = make_broker(
        '[[vpn.default.acl]]\naction = "deny"\noperation = "publish"\ntopic = "secret/#"\n'
    )
    svc = service(target=b)
    failures: list[FailedPublishEvent] = []
    failed = threading.Event()

    def on_failed(event: FailedPublishEvent) -> None:
        failures.append(event)
        failed.set()

    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.set_publish_failure_listener(on_failed)
    publisher.start()
    publisher.publish("x", Topic.of("secret/plans"))
    assert failed.wait(5)
    [event] = failures
    assert str(event.get_destination()) == "secret/plans"
    assert "not authorized" in str(event.get_exception())


def test_back_pressure_reject_while_reconnecting(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    publisher = svc.create_direct_message_publisher_builder().on_back_pressure_reject(2).build()
    publisher.start()
    # Connected and writable: nothing is held, so the capacity is never reached.
    for i in range(10):
        publisher.publish(str(i), Topic.of(f"{uid}/bp"))
    engine = svc.async_service._engine
    held = [object(), object()]
    engine.held.extend((None, h) for h in held)  # as if the link were backed up
    try:
        with pytest.raises(PublisherOverflowError):
            publisher.publish("x", Topic.of(f"{uid}/bp"))
        assert not publisher.is_ready()
    finally:
        engine.held.clear()


def test_lifecycle_errors(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    publisher = svc.create_direct_message_publisher_builder().build()
    with pytest.raises(IllegalStateError, match="start"):
        publisher.publish("x", Topic.of(f"{uid}/x"))
    receiver = svc.create_direct_message_receiver_builder().build()
    with pytest.raises(IllegalStateError, match="start"):
        receiver.receive_message(0)
    receiver.start()
    receiver.receive_async(lambda m: None)
    with pytest.raises(IllegalStateError, match="already"):
        receiver.receive_async(lambda m: None)
    svc.disconnect()
    assert not svc.is_connected and receiver.is_terminated()
    with pytest.raises(IllegalStateError):
        svc.create_direct_message_publisher_builder().build().start()


def test_websocket_transport(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service(ws=True)
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/ws")]).build()
    receiver.start()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(b"x" * 200_000, Topic.of(f"{uid}/ws"))  # larger than one read
    message = receiver.receive_message(WAIT_MS)
    assert message is not None and len(message.payload) == 200_000


def test_application_id_is_the_client_name(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service(application_id=f"{uid}-app")
    assert svc.get_application_id() == f"{uid}-app"
    auto = service()
    assert auto.get_application_id()


def test_sender_id_generation(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service(application_id=f"{uid}-s",
                  extra={"solace.messaging.service.generate-sender-id": True})
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/sid")]).build()
    receiver.start()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish("x", Topic.of(f"{uid}/sid"))
    message = receiver.receive_message(WAIT_MS)
    assert message is not None and message.get_sender_id() == f"{uid}-s"
