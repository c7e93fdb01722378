"""15 - A client that stops reading: its queue is bounded, and nobody else suffers.

A raw subscriber subscribes and then never reads again, with a tiny receive
buffer, while a publisher floods QoS 0 messages. Another subscriber of the same
topic must still get every message, in order; the stuck one costs the broker at
most its bounded queue: its excess messages are dropped and counted (policy
"queue") or it is disconnected (policy "disconnect").
"""

from __future__ import annotations

import pytest
from mqtt_peers import Peers
from mqtt_wire import RawClient

FLOOD = 5000
PAYLOAD = b"x" * 2048  # 10 MB in all: far beyond every buffer on the stuck client's path

LIMITS = """
[server]
sys_interval = 0.2
[mqtt]
max_outbound_bytes = 4096
max_queued_messages = 20
"""


def stuck_subscriber(broker, topic: str, client_id: str, version: int = 4) -> RawClient:
    raw = RawClient.to(broker, version=version, rcvbuf=4096)
    raw.connect(client_id)
    assert raw.subscribe(1, [(topic, 0)]) == [0]
    return raw  # and from now on, never read


def sys_value_reaches(watcher, predicate, what: str, samples: int = 50) -> None:
    """$SYS values arrive every 0.2 s: wait (bounded) for one that satisfies predicate."""
    seen = []
    for _ in range(samples):
        seen.append(int(watcher.expect_one(timeout=5).payload))
        if predicate(seen[-1]):
            return
    raise AssertionError(f"{what}: $SYS values seen {seen}")


def flood(peers: Peers, topic: str) -> None:
    pub = peers.paho(version=5)
    for i in range(FLOOD):
        pub.publish(topic, str(i).encode() + b":" + PAYLOAD, 0)


@pytest.mark.parametrize("policy", ["queue", "disconnect"])
def test_15_stuck_subscriber_does_not_disturb_others(make_broker, uid, policy):
    b = make_broker(LIMITS + f'slow_consumer = "{policy}"\n')
    peers = Peers(b, uid)
    topic = f"{uid}/flood"
    stuck = stuck_subscriber(b, topic, f"{uid}stuck")
    witness = peers.paho(version=5)
    witness.subscribe(topic, 0)
    dropped = peers.paho(version=5)
    dropped.subscribe("$SYS/broker/publish/messages/dropped", 0)
    assert int(dropped.expect_one().payload) == 0  # the retained value before the flood

    flood(peers, topic)

    got = witness.expect(FLOOD, timeout=60)
    assert [int(m.payload.split(b":", 1)[0]) for m in got] == list(range(FLOOD)), (
        "the reading subscriber must get every message, in order"
    )
    if policy == "queue":
        # The broker kept at most the bounded queue for the stuck client and says
        # how many it dropped.
        sys_value_reaches(dropped, lambda n: n > 0, "dropped messages counted")
        assert "is not reading fast enough" in b.log()
    else:
        # Disconnected: the broker no longer counts it among connected clients (the
        # witness, the $SYS watcher and the publisher remain). Reading the stuck
        # socket to its end is no check: through its 4 KiB window the megabytes the
        # kernel already holds would take minutes to arrive.
        connected = peers.paho(version=5)
        connected.subscribe("$SYS/broker/clients/connected", 0)
        # witness, $SYS watcher, publisher and this watcher remain
        sys_value_reaches(connected, lambda n: n == 4, "stuck client disconnected")
        assert "disconnecting (slow_consumer" in b.log()
    stuck.close()
