"""Native protocol, publish and subscribe: filters, ids, batching, retained, errors."""

from __future__ import annotations

import pytest

from warren.codecs.native import (
    Deliver,
    Error,
    ErrorCode,
    Message,
    Nack,
    Publish,
    Result,
)


def test_subscribe_and_receive_exact_fields(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    assert sub.subscribe(7, f"{uid}/a/>") == Result(1)
    pub = wire()
    sent = Message(
        f"{uid}/a/b", b"hi", content_type="text/plain", correlation_data=b"\x01\x02",
        response_topic=f"{uid}/reply", user_properties=(("k", "v"), ("k", "w")),
        payload_format_utf8=True, priority=7, message_id="m-1", sender_id="s-1",
    )
    pub.publish(sent)
    [(ids, got)] = sub.messages(1)
    assert ids == (7,)
    assert got == sent  # every field crosses unchanged


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a/*/c", "a/x/c", True),
        ("a/*/c", "a/x/y/c", False),
        ("a/ab*", "a/abc", True),
        ("a/ab*", "a/ab/c", False),
        ("a/>", "a/b/c", True),
        ("a/>", "a", False),
        ("a/#", "a/#", True),  # '#' is an ordinary character in native filters
    ],
)
def test_native_filter_syntax(wire, uid: str, pattern: str, topic: str, matches: bool) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    assert sub.subscribe(1, f"{uid}/{pattern}").code == 0
    pub = wire()
    pub.publish(Message(f"{uid}/{topic}", b"x"))
    pub.barrier()
    frames = sub.barrier()
    assert bool(frames) is matches, frames


def test_one_delivery_lists_every_matching_subscription(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    sub.subscribe(1, f"{uid}/a/>")
    sub.subscribe(2, f"{uid}/*/b")
    sub.subscribe(3, f"{uid}/a/>")  # the same filter under another id
    wire().publish(Message(f"{uid}/a/b", b"x"))
    [(ids, _)] = sub.messages(1)
    assert ids == (1, 2, 3)


def test_messages_of_one_publish_arrive_in_order_batched(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    sub.subscribe(1, f"{uid}/>")
    pub = wire()
    pub.send(Publish(tuple(Message(f"{uid}/{i}", str(i).encode()) for i in range(50))))
    deliver = sub.expect(Deliver)
    got = list(deliver.messages)
    while len(got) < 50:
        got.extend(sub.expect(Deliver).messages)
    assert [m.payload for m in got] == [str(i).encode() for i in range(50)]
    assert len(deliver.messages) > 1  # one wake-up, one DELIVER for the batch


def test_unsubscribe_one_filter_or_all(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    sub.subscribe(1, f"{uid}/a")
    sub.subscribe(1, f"{uid}/b")
    assert sub.unsubscribe(1, f"{uid}/a").code == 0
    pub = wire()
    pub.publish(Message(f"{uid}/a", b"1"), Message(f"{uid}/b", b"2"))
    [(_, m)] = sub.messages(1)
    assert m.topic == f"{uid}/b"
    assert sub.unsubscribe(1).code == 0
    pub.publish(Message(f"{uid}/b", b"3"))
    pub.barrier()
    sub.assert_nothing()


def test_unsubscribe_unknown(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    assert sub.unsubscribe(9).code == ErrorCode.UNKNOWN_SUBSCRIPTION
    sub.subscribe(9, f"{uid}/a")
    assert sub.unsubscribe(9, f"{uid}/zzz").code == ErrorCode.UNKNOWN_SUBSCRIPTION


@pytest.mark.parametrize("bad", ["a/>/b", "a/b>", "a/*b", "#share/g", "#share//a"])
def test_invalid_filters_get_a_result_and_the_connection_stays(wire, bad: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    result = sub.subscribe(1, bad)
    assert result.code == ErrorCode.INVALID_FILTER and result.text
    sub.assert_nothing()


def test_shared_subscription_gives_each_message_to_one_member(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    members = [wire(), wire()]
    for m in members:
        assert m.subscribe(4, f"#share/{uid}/{uid}/jobs/>").code == 0
    pub = wire()
    pub.send(Publish(tuple(Message(f"{uid}/jobs/{i}", b"j") for i in range(10))))
    pub.barrier()
    counts = []
    for m in members:
        frames = m.barrier()
        counts.append(sum(len(f.messages) for f in frames if isinstance(f, Deliver)))
        assert all(f.subscription_ids == (4,) for f in frames if isinstance(f, Deliver))
    assert sum(counts) == 10 and all(counts)  # round robin over both members


def test_retained_messages_follow_the_result(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    pub = wire()
    pub.publish(Message(f"{uid}/state", b"on", retain=True))
    pub.barrier()
    sub = wire()
    sub.subscribe(2, f"{uid}/>")
    [(ids, m)] = sub.messages(1)
    assert ids == (2,) and m.retain and m.payload == b"on"
    pub.publish(Message(f"{uid}/state", b"off", retain=True))
    [(_, live)] = sub.messages(1)
    assert not live.retain  # live messages are not flagged retained
    pub.publish(Message(f"{uid}/state", b"", retain=True))  # clears it


def test_expiry_travels_as_time_left(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire()
    sub.subscribe(1, f"{uid}/t")
    wire().publish(Message(f"{uid}/t", b"x", ttl_ms=60_000))
    [(_, m)] = sub.messages(1)
    assert m.ttl_ms is not None and 0 < m.ttl_ms <= 60_000


def test_persistent_publish_is_nacked_not_supported(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    pub = wire()
    pub.send(Publish((Message(f"{uid}/p", b"1"), Message(f"{uid}/p", b"2")), first_id=5))
    nack = pub.expect(Nack)
    assert nack.ranges == ((5, 6),) and nack.code == ErrorCode.NOT_SUPPORTED


def test_sys_topics_are_refused_and_the_connection_goes_on(wire) -> None:  # type: ignore[no-untyped-def]
    pub = wire()
    pub.publish(Message("$SYS/broker/x", b"1"))
    error = pub.expect(Error)
    assert error.code == ErrorCode.NOT_AUTHORIZED and not error.close
    assert error.topic == "$SYS/broker/x"
    pub.assert_nothing()


def test_nul_in_a_topic_is_refused(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    pub = wire()
    pub.publish(Message(f"{uid}/a\0b", b"1"))
    error = pub.expect(Error)
    assert error.code == ErrorCode.INVALID_TOPIC and not error.close


def test_settling_without_guaranteed_is_a_protocol_error(wire) -> None:  # type: ignore[no-untyped-def]
    from warren.codecs.native import Ack

    w = wire()
    w.send(Ack(((1, 1),)))
    error = w.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.PROTOCOL_ERROR
