"""Guaranteed messaging on the wire (docs/protocol.md, "Guaranteed messaging"):
persistent PUBLISH answered by ACK/NACK, BIND/UNBIND of queues, guaranteed DELIVER
settled by ACK (accepted), NACK (failed: redelivered, up to the queue's max
redelivery) and NACK rj (rejected: to the dead-message queue); exclusive and
non-exclusive access; browsing; and MQTT into a native queue. Absence is proven
with PING barriers, never with sleeps."""

from __future__ import annotations

from typing import Any

from native_wire import Wire

from warren.codecs.native import (
    Ack,
    Bind,
    Credit,
    Deliver,
    Disconnect,
    ErrorCode,
    Message,
    Nack,
    Publish,
    Result,
    Unbind,
)

G = ("guaranteed",)


def _g(wire: Any) -> Wire:
    w: Wire = wire(capabilities=G)
    assert w.connected is not None and w.connected.capabilities == G
    return w


_requests = iter(range(1000, 10**6))


def _bind(w: Wire, flow: int, queue: str, **fields: Any) -> Result:
    w.send(Bind(next(_requests), flow, queue, **fields))
    return w._result()


def _persist(w: Wire, first_id: int, *messages: Message) -> Ack:
    w.send(Publish(messages, first_id=first_id))
    return w.expect(Ack)


def _deliver(w: Wire) -> Deliver:
    d = w.expect(Deliver)
    assert d.first_id is not None
    return d


def test_capability_is_granted_only_when_asked(wire) -> None:  # type: ignore[no-untyped-def]
    plain = wire()
    assert plain.connected.capabilities == ()
    plain.send(Bind(1, 1, "q"))
    assert plain._result().code == ErrorCode.NOT_SUPPORTED


def test_persistent_publish_is_acked_by_range_even_without_a_queue(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    pub = _g(wire)
    ack = _persist(pub, 7, Message(f"{uid}/nobody", b"1"), Message(f"{uid}/nobody", b"2"))
    assert ack.ranges == ((7, 8),)


def test_persistent_publish_to_queue_then_ack(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = _g(wire)
    q = f"{uid}-q"
    assert _bind(sub, 3, q, create=True, topics=(f"{uid}/orders/>",)).code == 0
    pub = _g(wire)
    assert _persist(pub, 1, Message(f"{uid}/orders/1", b"a"),
                    Message(f"{uid}/orders/2", b"b")).ranges == ((1, 2),)
    got: list[tuple[int, Message]] = []
    while len(got) < 2:
        d = _deliver(sub)
        assert d.subscription_ids == (3,)
        got.extend((d.first_id + i, m) for i, m in enumerate(d.messages))  # type: ignore[operator]
    assert [m.payload for _, m in got] == [b"a", b"b"]
    assert all(m.qos == 1 for _, m in got)
    sub.send(Ack(((got[0][0], got[1][0]),)))
    sub.assert_nothing()
    # Acknowledged messages are gone: the next flow on the queue gets nothing.
    assert sub.send(Unbind(next(_requests), 3)) is None and sub._result().code == 0
    assert _bind(sub, 4, q).code == 0
    sub.assert_nothing()


def test_exclusive_queue_has_one_active_flow_and_standbys(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-excl"
    active, standby = _g(wire), _g(wire)
    assert _bind(active, 1, q, create=True, topics=(f"{uid}/x",)).code == 0
    assert _bind(standby, 2, q).code == 0  # accepted, standing by
    pub = _g(wire)
    _persist(pub, 1, Message(f"{uid}/x", b"1"), Message(f"{uid}/x", b"2"))
    assert [m.payload for _, m in active.messages(2)] == [b"1", b"2"]
    standby.assert_nothing()
    # The active flow goes without settling: the standby takes over and gets both.
    active.send(Disconnect())
    active.expect_closed()
    got = standby.messages(2)
    assert [(ids, m.payload) for ids, m in got] == [((2,), b"1"), ((2,), b"2")]


def test_failed_is_redelivered_and_disconnect_requeues(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-redeliver"
    first = _g(wire)
    assert _bind(first, 1, q, create=True, access="non-exclusive",
                 topics=(f"{uid}/r",)).code == 0
    pub = _g(wire)
    _persist(pub, 1, Message(f"{uid}/r", b"x"))
    d = _deliver(first)
    first.send(Nack(((d.first_id, d.first_id),)))  # type: ignore[arg-type]
    again = _deliver(first)
    assert again.messages[0].payload == b"x" and again.first_id != d.first_id
    assert not d.redelivered and again.redelivered
    # Unsettled when the connection drops: it goes to the other flow.
    second = _g(wire)
    assert _bind(second, 9, q).code == 0
    first.close()
    moved = _deliver(second)
    assert moved.subscription_ids == (9,) and moved.messages[0].payload == b"x"
    second.send(Ack(((moved.first_id, moved.first_id),)))  # type: ignore[arg-type]
    second.assert_nothing()


def test_rejected_goes_to_the_dead_message_queue(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    dmq_reader = _g(wire)
    # The VPN-wide dead-message queue; this test reads only its own message.
    assert _bind(dmq_reader, 1, "#DEAD_MSG_QUEUE", create=True, access="non-exclusive").code == 0
    sub = _g(wire)
    assert _bind(sub, 2, f"{uid}-rej", create=True, topics=(f"{uid}/rej",)).code == 0
    _persist(_g(wire), 1, Message(f"{uid}/rej", b"bad"))
    d = _deliver(sub)
    sub.send(Nack(((d.first_id, d.first_id),), reject=True))  # type: ignore[arg-type]
    sub.assert_nothing()
    dead = _deliver(dmq_reader)
    while dead.messages[0].topic != f"{uid}/rej":  # other tests' dead messages
        dmq_reader.send(Ack(((dead.first_id, dead.first_id),)))  # type: ignore[arg-type]
        dead = _deliver(dmq_reader)
    assert dead.messages[0].payload == b"bad"
    dmq_reader.send(Ack(((dead.first_id, dead.first_id),)))  # type: ignore[arg-type]


def _dead_message(dmq_reader: Wire, topic: str) -> Deliver:
    """The next message of ``topic`` in the shared dead-message queue (others' are
    acknowledged and skipped)."""
    dead = _deliver(dmq_reader)
    while dead.messages[0].topic != topic:
        dmq_reader.send(Ack(((dead.first_id, dead.first_id),)))  # type: ignore[arg-type]
        dead = _deliver(dmq_reader)
    dmq_reader.send(Ack(((dead.first_id, dead.first_id),)))  # type: ignore[arg-type]
    return dead


def test_max_redelivery_moves_a_failing_message_to_the_dead_message_queue(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    dmq_reader = _g(wire)
    assert _bind(dmq_reader, 1, "#DEAD_MSG_QUEUE", create=True, access="non-exclusive").code == 0
    sub = _g(wire)
    q = f"{uid}-limited"
    assert _bind(sub, 2, q, create=True, topics=(f"{uid}/lim",), max_redelivery=2).code == 0
    pub = _g(wire)
    _persist(pub, 1, Message(f"{uid}/lim", b"poison"))
    # Delivered once, then redelivered twice: FAILED, then the flow ends unsettled.
    d = _deliver(sub)
    assert not d.redelivered
    sub.send(Nack(((d.first_id, d.first_id),)))  # type: ignore[arg-type]
    d = _deliver(sub)
    assert d.redelivered
    assert sub.send(Unbind(next(_requests), 2)) is None and sub._result().code == 0
    assert _bind(sub, 3, q).code == 0
    d = _deliver(sub)
    assert d.redelivered and d.messages[0].payload == b"poison"
    sub.send(Nack(((d.first_id, d.first_id),)))  # type: ignore[arg-type]  # the third return
    dead = _dead_message(dmq_reader, f"{uid}/lim")
    assert dead.messages[0].payload == b"poison" and not dead.redelivered
    # Gone from its queue: the next message is the one published after it.
    _persist(pub, 2, Message(f"{uid}/lim", b"next"))
    d = _deliver(sub)
    assert d.messages[0].payload == b"next" and not d.redelivered


def test_max_redelivery_zero_and_a_second_bind_keeps_the_limit(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    dmq_reader = _g(wire)
    assert _bind(dmq_reader, 1, "#DEAD_MSG_QUEUE", create=True, access="non-exclusive").code == 0
    sub = _g(wire)
    q = f"{uid}-once"
    assert _bind(sub, 1, q, create=True, access="non-exclusive", topics=(f"{uid}/once",),
                 max_redelivery=0).code == 0
    # A second BIND naming another limit uses the queue as it is (Solace: the
    # endpoint properties apply when the queue is created).
    assert _bind(sub, 2, q, create=True, max_redelivery=100).code == 0
    _persist(_g(wire), 1, Message(f"{uid}/once", b"a"))
    d = _deliver(sub)
    sub.send(Nack(((d.first_id, d.first_id),)))  # type: ignore[arg-type]
    assert _dead_message(dmq_reader, f"{uid}/once").messages[0].payload == b"a"
    sub.assert_nothing()


def test_non_exclusive_shares_round_robin(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-shared"
    a, b = _g(wire), _g(wire)
    assert _bind(a, 1, q, create=True, access="non-exclusive", topics=(f"{uid}/s",)).code == 0
    assert _bind(b, 1, q).code == 0
    pub = _g(wire)
    _persist(pub, 1, *(Message(f"{uid}/s", bytes([i])) for i in range(4)))
    got_a = [m.payload for _, m in a.messages(2)]
    got_b = [m.payload for _, m in b.messages(2)]
    assert sorted(got_a + got_b) == [bytes([i]) for i in range(4)]


def test_non_durable_queue_belongs_to_its_connection(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-temp"
    owner = _g(wire)
    assert _bind(owner, 1, q, create=True, durable=False).code == 0
    other = _g(wire)
    assert _bind(other, 1, q).code == ErrorCode.QUEUE_IN_USE
    owner.send(Disconnect())
    owner.expect_closed()  # the broker ended the session before closing
    # The queue went with its connection.
    assert _bind(other, 2, q).code == ErrorCode.UNKNOWN_QUEUE


def test_browser_sees_copies_and_ack_removes(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-browse"
    admin = _g(wire)
    assert _bind(admin, 1, q, create=True, topics=(f"{uid}/b",)).code == 0
    assert admin.send(Unbind(next(_requests), 1)) is None and admin._result().code == 0
    _persist(_g(wire), 1, Message(f"{uid}/b", b"1"), Message(f"{uid}/b", b"2"))
    browser = _g(wire)
    assert _bind(browser, 5, q, browse=True).code == 0
    seen = []
    while len(seen) < 2:
        d = _deliver(browser)
        seen.extend((d.first_id + i, m.payload) for i, m in enumerate(d.messages))  # type: ignore[operator]
    assert [p for _, p in seen] == [b"1", b"2"]
    browser.send(Ack(((seen[0][0], seen[0][0]),)))  # remove the first
    browser.assert_nothing()
    consumer = _g(wire)
    assert _bind(consumer, 1, q).code == 0
    [(_, m)] = consumer.messages(1)
    assert m.payload == b"2"


def test_unknown_queue_without_create(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    assert _bind(_g(wire), 1, f"{uid}-missing").code == ErrorCode.UNKNOWN_QUEUE


def test_mqtt_qos1_publish_reaches_a_native_queue(wire, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    sub = _g(wire)
    assert _bind(sub, 1, f"{uid}-mq", create=True, topics=(f"{uid}/mqtt/>",)).code == 0
    mqtt = peers.paho()
    assert mqtt.publish(f"{uid}/mqtt/x", b"from-mqtt", qos=1) == 0
    d = _deliver(sub)
    assert d.messages[0].payload == b"from-mqtt" and d.messages[0].qos == 1
    sub.send(Ack(((d.first_id, d.first_id),)))  # type: ignore[arg-type]
    sub.assert_nothing()


def test_browser_respects_credit(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = f"{uid}-browse-credit"
    admin = _g(wire)
    assert _bind(admin, 1, q, create=True, topics=(f"{uid}/bc",)).code == 0
    assert admin.send(Unbind(next(_requests), 1)) is None and admin._result().code == 0
    _persist(_g(wire), 1, *(Message(f"{uid}/bc", bytes([i])) for i in range(3)))
    browser = wire(capabilities=G, initial_credit=1)
    assert _bind(browser, 1, q, browse=True).code == 0
    [(_, first)] = browser.messages(1)
    browser.assert_nothing()  # no credit left
    browser.send(Credit(2))
    assert [m.payload for _, m in browser.messages(2)] == [b"\x01", b"\x02"]
    assert first.payload == b"\x00"


def test_full_store_nacks_instead_of_acknowledging(make_broker, wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    """The data file reaches its cap (as on a full disk): persistent messages for a
    durable queue are NACKed SERVER_BUSY, never ACKed; messages nothing keeps are
    still ACKed."""
    b = make_broker("[server]\nstorage_max_bytes = 1048576\n")
    sub = wire(target=b, capabilities=G)
    assert _bind(sub, 1, f"{uid}-capped", create=True, topics=(f"{uid}/kept",)).code == 0
    sub.close()  # the durable queue stays, without a consumer
    pub = wire(target=b, capabilities=G)
    answers: list[Ack | Nack] = []
    for pid in range(1, 41):  # 40 x 64 KiB: well past the 1 MiB cap
        pub.send(Publish((Message(f"{uid}/kept", bytes(65536)),), first_id=pid))
        answer = pub.next()
        assert isinstance(answer, (Ack, Nack)), answer
        answers.append(answer)
        if isinstance(answer, Nack):
            break
    assert isinstance(answers[0], Ack) and isinstance(answers[-1], Nack), answers
    refused = answers[-1]
    assert refused.code == ErrorCode.SERVER_BUSY and "could not store" in refused.text
    # Refusing from now on, with no success in between.
    pub.send(Publish((Message(f"{uid}/kept", b"small"),), first_id=100))
    assert pub.expect(Nack).code == ErrorCode.SERVER_BUSY
    # Nothing to store: acknowledged as before.
    assert _persist(pub, 101, Message(f"{uid}/nobody-keeps-this", b"x")).ranges == ((101, 101),)
    assert "refusing persistent writes" in b.log()
