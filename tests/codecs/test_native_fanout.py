"""The fan-out path: DELIVER frames built from messages encoded once.

``encode_message`` + ``NativeConnection.send_deliver`` must give exactly the bytes of
``send(Deliver(...))``, with the same state, credit and frame-size checks.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from native_support import connected_pair, delivers

from warren.codecs.native import (
    Connect,
    Deliver,
    ErrorCode,
    Message,
    NativeConnection,
    Role,
    deliver_size_bound,
    encode_message,
)
from warren.errors import LocalProtocolError


@given(delivers())
def test_same_bytes_as_sending_the_event(deliver: Deliver) -> None:
    _, server = connected_pair()
    _, other = connected_pair()
    encoded = [encode_message(m) for m in deliver.messages]
    data = server.send_deliver(
        deliver.subscription_ids, encoded, deliver.first_id, deliver.redelivered
    )
    assert data == other.send(deliver)
    assert server.credit == other.credit
    assert len(data) <= deliver_size_bound(len(deliver.subscription_ids), sum(map(len, encoded)))


@given(st.integers(16, 70_000))
def test_large_batches_use_long_array_headers(count: int) -> None:
    client, server = connected_pair()
    encoded = [encode_message(Message("t"))] * count
    data = server.send_deliver((1,), encoded)
    [deliver] = client.receive(data)
    assert isinstance(deliver, Deliver) and len(deliver.messages) == count


def test_checks_like_send() -> None:
    one = [encode_message(Message("t", b"x"))]
    fresh = NativeConnection(Role.SERVER)
    with pytest.raises(LocalProtocolError) as info:
        fresh.send_deliver((1,), one)  # not connected
    assert info.value.reason_code == ErrorCode.PROTOCOL_ERROR
    _, server = connected_pair(Connect(initial_credit=1))
    with pytest.raises(LocalProtocolError) as info:
        server.send_deliver((1,), one * 2)
    assert info.value.reason_code == ErrorCode.CREDIT_EXCEEDED
    with pytest.raises(LocalProtocolError):
        server.send_deliver((), one)
    with pytest.raises(LocalProtocolError):
        server.send_deliver((1,), [])
    _, small = connected_pair(Connect(max_frame_size=1024))
    with pytest.raises(LocalProtocolError) as info:
        small.send_deliver((1,), [encode_message(Message("t", b"x" * 2000))])
    assert info.value.reason_code == ErrorCode.FRAME_TOO_LARGE
    server.send_deliver((1,), one)
    assert server.credit == 0
