"""14 - Random input after CONNECT: the broker closes or answers, never hangs or
dies, and a well-behaved client connected meanwhile notices nothing."""

from __future__ import annotations

import contextlib
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_peers import Peers
from mqtt_wire import RawClient, connect, packet, varint

# Either pure noise, or a packet with a plausible fixed header and random body.
noise = st.binary(min_size=1, max_size=300)
shaped = st.builds(
    lambda first, body: packet(first, body),
    st.integers(min_value=0, max_value=255),
    st.binary(max_size=200),
)
lying_length = st.builds(
    lambda first, claimed, body: bytes([first]) + varint(claimed) + body,
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=268_435_455),
    st.binary(max_size=50),
)
inputs = st.one_of(noise, shaped, lying_length)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same inputs every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=inputs, version=st.sampled_from([4, 5]))
def test_14_garbage_after_connect(broker, uid, data, version):
    c = RawClient.to(broker, version=version)
    try:
        c.send(connect(f"{uid}f", version=version))
        c.recv(what="CONNACK")
        try:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)  # EOF: nothing may wait for more bytes
        except OSError:
            pass  # already closed by the broker: fine
        with contextlib.suppress(ConnectionResetError):
            c.expect_closed(timeout=5)
    finally:
        c.close()
    assert broker.alive(), f"broker died on input {data.hex(' ')}"


def test_14_witness_after_fuzzing(broker, peers: Peers, uid):
    # Runs after the fuzz examples in this module (same shared broker).
    sub = peers.paho(version=5)
    sub.subscribe(f"{uid}/w", 1)
    pub = peers.paho(version=4)
    pub.publish(f"{uid}/w", b"alive", 1)
    assert sub.expect_one().payload == b"alive"
