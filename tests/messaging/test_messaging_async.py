"""The asyncio API: async with, async for, awaited receive, coroutine handlers,
request/reply, and the threaded API on the same broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from warren.messaging import (
    AsyncMessagingService,
    InboundMessage,
    PubSubTimeoutError,
    Replier,
    Topic,
    TopicSubscription,
)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_async_for_and_receive_message(props, uid: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with AsyncMessagingService.builder().from_properties(props).build() as svc:
            assert svc.is_connected
            receiver = await svc.create_direct_message_receiver_builder() \
                .with_subscriptions([TopicSubscription.of(f"{uid}/a/*")]).build().start()
            publisher = await svc.create_direct_message_publisher_builder().build().start()
            for i in range(5):
                publisher.publish(str(i), Topic.of(f"{uid}/a/{i}"))
            first = await receiver.receive_message(5000)
            assert first is not None and first.get_payload_as_string() == "0"
            got = []
            async for message in receiver:
                got.append(message.get_payload_as_string())
                if len(got) == 4:
                    break
            assert got == ["1", "2", "3", "4"]
            assert await receiver.receive_message(10) is None
            await receiver.terminate()
            assert await receiver.receive_message() is None
        assert not svc.is_connected

    run(main())


def test_coroutine_handler_and_request_reply(props, uid: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with AsyncMessagingService.builder().from_properties(props).build() as svc:
            async def respond(message: InboundMessage, replier: Replier | None) -> None:
                await asyncio.sleep(0)  # a handler may await
                assert replier is not None
                replier.reply(svc.message_builder().build(f"re: {message.get_payload_as_string()}"))

            responder = await svc.request_reply().create_request_reply_message_receiver_builder() \
                .build(TopicSubscription.of(f"{uid}/svc")).start()
            responder.receive_async(respond)
            requester = await svc.request_reply() \
                .create_request_reply_message_publisher_builder().build().start()
            replies = await asyncio.gather(*(
                requester.publish_await_response(str(i), Topic.of(f"{uid}/svc"), 5000)
                for i in range(20)
            ))
            assert [r.get_payload_as_string() for r in replies] == [f"re: {i}" for i in range(20)]
            with pytest.raises(PubSubTimeoutError):
                await requester.publish_await_response("?", Topic.of(f"{uid}/void"), 30)
            await responder.terminate(1000)
            await requester.terminate()

    run(main())


def test_async_and_threaded_services_talk(props, service, uid: str) -> None:  # type: ignore[no-untyped-def]
    threaded = service()
    receiver = threaded.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/mix")]).build()
    receiver.start()

    async def main() -> None:
        async with AsyncMessagingService.builder().from_properties(props).build() as svc:
            publisher = await svc.create_direct_message_publisher_builder().build().start()
            publisher.publish(svc.message_builder().with_priority(2).build("from asyncio"),
                              Topic.of(f"{uid}/mix"))
            await publisher.terminate()

    run(main())
    message = receiver.receive_message(5000)
    assert message is not None and message.get_payload_as_string() == "from asyncio"
    assert message.get_priority() == 2


def test_flow_control_window_is_returned_as_consumed(props, uid: str) -> None:  # type: ignore[no-untyped-def]
    # A window of 4 messages: 40 messages still all arrive, as credit goes back.
    async def main() -> None:
        config = {**props, "warren.messaging.transport.receive-window": 4}
        async with AsyncMessagingService.builder().from_properties(config).build() as svc:
            receiver = await svc.create_direct_message_receiver_builder() \
                .with_subscriptions([TopicSubscription.of(f"{uid}/w")]).build().start()
            publisher = await svc.create_direct_message_publisher_builder().build().start()
            for i in range(40):
                publisher.publish(str(i), Topic.of(f"{uid}/w"))
            got = [await receiver.receive_message(5000) for _ in range(40)]
            assert [m.get_payload_as_string() for m in got if m] == [str(i) for i in range(40)]

    run(main())


def test_drop_oldest_back_pressure(props, uid: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with AsyncMessagingService.builder().from_properties(props).build() as svc:
            receiver = await svc.create_direct_message_receiver_builder() \
                .with_subscriptions([TopicSubscription.of(f"{uid}/d")]) \
                .on_back_pressure_drop_oldest(3).build().start()
            sentinel = await svc.create_direct_message_receiver_builder() \
                .with_subscriptions([TopicSubscription.of(f"{uid}/d")]).build().start()
            publisher = await svc.create_direct_message_publisher_builder().build().start()
            for i in range(10):
                publisher.publish(str(i), Topic.of(f"{uid}/d"))
            for _ in range(10):  # all ten are in once the other receiver has them
                assert await sentinel.receive_message(5000) is not None
            got = [await receiver.receive_message(0) for _ in range(4)]
            assert [m.get_payload_as_string() if m else None for m in got] == [
                "7", "8", "9", None,
            ]

    run(main())
