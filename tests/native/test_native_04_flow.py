"""Flow control (credit) and the slow-consumer policy of the bounded session queue."""

from __future__ import annotations

from warren.codecs.native import Credit, Deliver, Error, ErrorCode, Message, Publish


def _delivered(frames: list[object]) -> list[bytes]:
    return [m.payload for f in frames if isinstance(f, Deliver) for m in f.messages]


def test_no_more_deliveries_than_credit(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = wire(initial_credit=2)
    sub.subscribe(1, f"{uid}/c")
    pub = wire()
    pub.send(Publish(tuple(Message(f"{uid}/c", bytes([i])) for i in range(5))))
    pub.barrier()
    assert _delivered(sub.barrier()) == [b"\x00", b"\x01"]
    sub.send(Credit(2))
    assert _delivered(sub.barrier()) == [b"\x02", b"\x03"]
    sub.send(Credit(100))
    assert _delivered(sub.barrier()) == [b"\x04"]
    pub.publish(Message(f"{uid}/c", b"more"))
    pub.barrier()
    assert _delivered(sub.barrier()) == [b"more"]  # 99 credits left


def test_credit_without_flow_control_is_a_protocol_error(wire) -> None:  # type: ignore[no-untyped-def]
    w = wire()  # no initial_credit: flow control is off
    w.send_raw(bytes.fromhex("08 00 00 00 00 04 81 a1 6e 05"))
    error = w.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.PROTOCOL_ERROR


def test_a_full_queue_drops_new_messages(make_broker, wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    b = make_broker('[mqtt]\nmax_queued_messages = 3\n')
    sub = wire(target=b, initial_credit=0)
    sub.subscribe(1, f"{uid}/q")
    pub = wire(target=b)
    pub.send(Publish(tuple(Message(f"{uid}/q", bytes([i])) for i in range(6))))
    pub.barrier()
    sub.send(Credit(10))
    assert _delivered(sub.barrier()) == [b"\x00", b"\x01", b"\x02"]


def test_slow_consumer_disconnect_policy(make_broker, wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    b = make_broker('[mqtt]\nmax_queued_messages = 3\nslow_consumer = "disconnect"\n')
    sub = wire(target=b, initial_credit=0)
    sub.subscribe(1, f"{uid}/q")
    pub = wire(target=b)
    pub.send(Publish(tuple(Message(f"{uid}/q", b"x") for _ in range(5))))
    error = sub.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.LIMIT_EXCEEDED
    pub.assert_nothing()  # the publisher is not affected
