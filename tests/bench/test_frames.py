"""The generator's packet counter: exact counts however the bytes arrive."""

from __future__ import annotations

import time

import pytest

from warren.bench.frames import PINGREQ, PUBACK, PUBLISH, FrameRing, PacketScanner
from warren.bench.results import LatencySummary
from warren.codecs.mqtt import encode_publish

PINGRESP = b"\xd0\x00"


def _stream(frames: int, payload: int, level: int = 4) -> tuple[bytes, int]:
    """``frames`` QoS 0 PUBLISH with a PINGRESP after every 7th, and the PUBLISH count."""
    frame = encode_publish(b"bench/x/p00001", b"\xa5" * payload, 0, False, False, None, None,
                           level)
    parts = []
    for index in range(frames):
        parts.append(frame)
        if index % 7 == 6:
            parts.append(PINGRESP)
    return b"".join(parts), frames


@pytest.mark.parametrize("payload", [0, 64, 1024])
@pytest.mark.parametrize("level", [4, 5])
def test_counts_whole_bytewise_and_in_odd_chunks(payload: int, level: int) -> None:
    data, expected = _stream(100, payload, level)
    for chunk in (len(data), 1, 5, 997):
        scanner = PacketScanner(PUBLISH, protocol_level=level, capacity=4096)
        for start in range(0, len(data), chunk):
            scanner.feed(data[start : start + chunk])
        assert scanner.count == expected
        assert scanner.others == 100 // 7


def test_bulk_path_rejects_frames_of_another_size() -> None:
    short = encode_publish(b"a/b", b"x" * 10, 0, False, False, None, None, 4)
    longer = encode_publish(b"a/b", b"x" * 11, 0, False, False, None, None, 4)
    scanner = PacketScanner(PUBLISH)
    scanner.feed(short * 50 + longer + short * 50 + longer * 3)
    assert scanner.count == 104


def test_counts_pubacks() -> None:
    scanner = PacketScanner(PUBACK)
    acks = b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in range(1, 301))
    scanner.feed(acks[:300] + PINGRESP + acks[300:])  # after the 75th
    assert scanner.count == 300
    assert scanner.others == 1


def test_qos1_publish_is_acknowledged() -> None:
    ring = FrameRing.build("t/1", 16, 1, 4, 20)
    scanner = PacketScanner(PUBLISH, ack=True)
    scanner.feed(bytes(ring.data))
    assert scanner.count == 20
    assert scanner.acks == b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in range(1, 21))


@pytest.mark.parametrize("level", [4, 5])
def test_latency_from_the_stamped_payload(level: int) -> None:
    ring = FrameRing.build("t/1", 64, 0, level, 10)
    sent = time.monotonic_ns()
    ring.stamp(0, 10, sent)
    scanner = PacketScanner(PUBLISH, protocol_level=level, stamps=True)
    scanner.record = True
    scanner.feed(bytes(ring.data))
    assert scanner.count == 10
    assert len(scanner.latencies) == 10
    assert all(latency >= 0 for latency in scanner.latencies)


def test_ring_frames_have_one_size_and_sequential_ids() -> None:
    ring = FrameRing.build("bench/p00000", 1024, 1, 4, 300)
    assert len(ring.data) == ring.frame_size * 300
    scanner = PacketScanner(PUBLISH, ack=True)
    scanner.feed(bytes(ring.data))
    assert scanner.acks[-2:] == (300).to_bytes(2, "big")
    assert PINGREQ == b"\xc0\x00"


def test_latency_percentiles_use_nearest_rank() -> None:
    summary = LatencySummary.from_ns([i * 1000 for i in range(1, 1001)])
    assert summary is not None
    assert (summary.p50, summary.p99, summary.p99_9, summary.max) == (500, 990, 999, 1000)
    assert LatencySummary.from_ns([]) is None
