"""13 - State across restarts: retained messages and persistent sessions survive
a graceful restart and a crash (kill -9) once acknowledged (DESIGN: Storage), and
SIGTERM says goodbye to clients and exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest
from mqtt_peers import Peers
from mqtt_wire import PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient, ack, publish


def _session(version: int) -> dict[str, object]:
    if version == 5:
        return {"properties": {"SessionExpiryInterval": 3600}}
    return {"clean": False}


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_13_retained_and_queued_messages_survive_restart(make_broker, uid, crash, version):
    b = make_broker()
    before = Peers(b, uid)
    sid = f"{uid}p"
    try:
        sub = before.paho(version=version, client_id=sid, **_session(version))
        sub.subscribe(f"{uid}/q", 1)
        sub.disconnect()
        pub = before.paho(version=5)
        pub.publish(f"{uid}/r", b"retained", 1, retain=True)  # PUBACK: stored
        for i in range(3):
            pub.publish(f"{uid}/q", f"queued-{i}".encode(), 1)  # PUBACK: stored
        pub.publish(f"{uid}/q", b"qos2", 2)  # PUBCOMP: stored
    finally:
        before.close_all()
    b2 = make_broker.launcher.restart(b, crash=crash)  # type: ignore[attr-defined]
    after = Peers(b2, uid)
    lost = []
    try:
        late = after.paho(version=4)
        late.subscribe(f"{uid}/r", 1)
        late.barrier()
        got_retained = [(m.payload, m.retain) for m in late.pending()]
        if got_retained != [(b"retained", True)]:
            lost.append(f"retained message: got {got_retained}")
        kw = _session(version)
        kw["clean"] = False
        back = after.paho(version=version, client_id=sid, connect=False, **kw)
        if not back.connect().session_present:
            lost.append("persistent session (CONNACK session present 0)")
        else:
            back.barrier()
            queued = [m.payload for m in back.pending()]
            if queued != [b"queued-0", b"queued-1", b"queued-2", b"qos2"]:
                lost.append(f"queued messages: got {queued}")
    finally:
        after.close_all()
    assert not lost, "lost across restart: " + "; ".join(lost)


def test_13_subscriptions_survive_restart(make_broker, uid):
    b = make_broker()
    before = Peers(b, uid)
    sid = f"{uid}p"
    try:
        sub = before.paho(version=4, client_id=sid, clean=False)
        sub.subscribe([f"{uid}/a", f"{uid}/b/#"], 2)
        sub.disconnect()
    finally:
        before.close_all()
    b2 = make_broker.launcher.restart(b)  # type: ignore[attr-defined]
    after = Peers(b2, uid)
    try:
        back = after.paho(version=4, client_id=sid, clean=False)
        pub = after.paho(version=4)
        pub.publish(f"{uid}/a", b"1", 2)
        pub.publish(f"{uid}/b/c", b"2", 1)
        got = back.expect(2)
        assert [(m.payload, m.qos) for m in got] == [(b"1", 2), (b"2", 1)]
    finally:
        after.close_all()


def test_13_kill_9_during_qos1_publishing_loses_no_acknowledged_message(make_broker, uid):
    """Sustained QoS 1 publishing (paho) to an offline persistent subscriber, so each
    message exists only in its session; the broker is SIGKILLed after 2,000 PUBACKs.
    After the restart, every PUBACKed message reaches the subscriber (duplicates are
    allowed, and counted).

    Before the kill the store's writer is frozen (SIGSTOP) while the publisher goes
    on: no message published after that can be committed, so none may be PUBACKed
    (a broker that acknowledged before its commit fails here, and would lose them)."""
    b = make_broker("[mqtt]\nmax_queued_messages = 100000\n")
    topic = f"{uid}/crash"
    sid = f"{uid}s"
    before = Peers(b, uid)
    after = None
    mids: dict[int, bytes] = {}
    order: list[int] = []  # mids in publish order
    stop = threading.Event()
    try:
        sub = before.paho(version=4, client_id=sid, clean=False)
        sub.subscribe(topic, 1)
        sub.disconnect()
        pub = before.paho(version=4)

        def publish() -> None:
            # Keep at most 200 messages unacknowledged: sustained, never unbounded.
            for i in range(60_000):
                if stop.is_set():
                    return
                info = pub.client.publish(topic, str(i).encode(), 1)
                if info.rc != 0:
                    return  # the broker is gone
                mids[info.mid] = str(i).encode()
                order.append(info.mid)
                if i >= 200:
                    with pub._lock:
                        pub._lock.notify_all()  # the test waits for a full window too
                        while len(pub._pubacks) < i - 200 and not stop.is_set():
                            pub._lock.wait(1.0)

        publisher = threading.Thread(target=publish, name="qos1-publisher", daemon=True)
        publisher.start()
        pub._wait(lambda: True if len(pub._pubacks) >= 2000 else None, "2,000 PUBACKs", 60)
        os.kill(b.store_writer_pid(), signal.SIGSTOP)
        frozen = len(order)  # published from here on: after the writer stopped

        def acked_after_freeze() -> list[int] | None:
            acked = [m for m in order[frozen:] if pub._pubacks.get(m) is not None]
            return acked or None

        # The one bounded wait of this test: an absence (of PUBACKs) is what it checks.
        with contextlib.suppress(AssertionError):
            pub._wait(acked_after_freeze, "PUBACK after the freeze", 1.0)
        early = acked_after_freeze()
        assert early is None, f"{len(early)} PUBACKs for messages the store could not keep"
        b2 = make_broker.launcher.restart(b, crash=True)  # type: ignore[attr-defined]
        stop.set()
        with pub._lock:
            pub._lock.notify_all()
        publisher.join(30)
        assert not publisher.is_alive()
        acknowledged = {mids[mid] for mid, rc in list(pub._pubacks.items()) if rc == 0}
        assert len(acknowledged) >= 2000
        received_before: list[bytes] = []

        after = Peers(b2, uid)
        back = after.paho(version=4, client_id=sid, clean=False, connect=False)
        assert back.connect().session_present

        def missing() -> set[bytes]:
            got = set(received_before)
            got.update(m.payload for m in back._msgs)
            return acknowledged - got

        deadline = time.monotonic() + 30
        with back._cond:
            while missing() and time.monotonic() < deadline:
                back._cond.wait(deadline - time.monotonic())
            lost = missing()
            received = received_before + [m.payload for m in back._msgs]
        duplicates = len(received) - len(set(received))
        print(f"acknowledged {len(acknowledged)}, received {len(received)} "
              f"({duplicates} duplicates), lost {len(lost)}")
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:10]}"
    finally:
        stop.set()
        if b.proc.poll() is None:  # failed before the restart: its writer is frozen
            b.kill()
        before.close_all()
        if after is not None:
            after.close_all()


def test_13_in_flight_state_survives_kill_9(make_broker, uid):
    """Sent-but-unacknowledged deliveries and inbound QoS 2 ids are kept: after a
    crash, a QoS 1 PUBLISH is resent with DUP and its packet id, a PUBREC'd QoS 2
    gets only its PUBREL [MQTT-4.4.0-1], and a resent inbound QoS 2 PUBLISH whose
    PUBREC was sent is not routed twice [MQTT-4.3.3-9]."""
    b = make_broker()
    sid, pid_ = f"{uid}s", f"{uid}p"
    c = RawClient.to(b)
    c.connect(sid, clean=False)
    c.subscribe(1, [(f"{uid}/q1", 1), (f"{uid}/q2", 2), (f"{uid}/in", 2)])
    p = RawClient.to(b)
    p.connect(pid_, clean=False)
    p.send(publish(f"{uid}/q1", b"one", qos=1, pid=1))
    p.expect(4)
    p.send(publish(f"{uid}/q2", b"two", qos=2, pid=2))
    p.expect(PUBREC)
    p.send(ack(PUBREL, 2))
    p.expect(PUBCOMP)
    first = c.expect(PUBLISH)  # q1, never acknowledged
    second = c.expect(PUBLISH)  # q2
    c.send(ack(PUBREC, second.fields["pid"]))
    c.expect(PUBREL)  # never completed
    p.send(publish(f"{uid}/in", b"once", qos=2, pid=42))
    p.expect_bytes(b"\x50\x02\x00\x2a")  # PUBREC after the commit; no PUBREL yet
    inbound = c.expect(PUBLISH)
    c.send(ack(PUBREC, inbound.fields["pid"]))
    c.expect(PUBREL)
    c.send(ack(PUBCOMP, inbound.fields["pid"]))
    c.ping()  # the PUBCOMP is handled (journalled) ...
    p.send(publish(f"{uid}/sync", b"x", qos=1, retain=True, pid=3))
    p.expect(4)  # ... and committed: this PUBACK waits for a later commit
    b2 = make_broker.launcher.restart(b, crash=True)  # type: ignore[attr-defined]

    back = RawClient.to(b2)
    assert back.connect(sid, clean=False).fields["session_present"]
    re = back.expect(PUBLISH)
    assert re.fields["pid"] == first.fields["pid"] and re.fields["dup"] is True, (first, re)
    assert re.raw[1:] == first.raw[1:], (first, re)
    pid2 = second.fields["pid"]
    back.expect_bytes(bytes([0x62, 0x02, pid2 >> 8, pid2 & 0xFF]))  # PUBREL only
    back.send(ack(4, re.fields["pid"]))
    back.send(ack(PUBCOMP, pid2))
    back.ping()  # nothing else is owed

    pub = RawClient.to(b2)
    assert pub.connect(pid_, clean=False).fields["session_present"]
    pub.send(publish(f"{uid}/in", b"once", qos=2, pid=42, dup=True))
    pub.expect_bytes(b"\x50\x02\x00\x2a")  # acknowledged again ...
    pub.send(ack(PUBREL, 42))
    pub.expect_bytes(b"\x70\x02\x00\x2a")
    back.ping()  # ... and not routed a second time
    for client in (back, pub):
        client.close()


def test_13_session_expiry_counts_across_restart(make_broker, uid):
    """A stored session's expiry runs from its disconnect, not from the restart."""
    b = make_broker()
    before = Peers(b, uid)
    try:
        sub = before.paho(version=5, client_id=f"{uid}e",
                          properties={"SessionExpiryInterval": 1})
        sub.subscribe(f"{uid}/e", 1)
        sub.disconnect()
        gone = time.monotonic()
    finally:
        before.close_all()
    b2 = make_broker.launcher.restart(b)  # type: ignore[attr-defined]
    # The feature under test is wall time: let the 1 s expiry pass.
    time.sleep(max(0.0, gone + 1.5 - time.monotonic()))
    after = Peers(b2, uid)
    try:
        back = after.paho(version=5, client_id=f"{uid}e", clean=False, connect=False)
        assert back.connect().session_present is False, "session outlived its expiry"
    finally:
        after.close_all()


def test_13_sigterm_disconnects_clients_and_exits_0(make_broker, uid):
    b = make_broker()
    v5 = RawClient.to(b, version=5)
    v5.connect(f"{uid}a")
    v4 = RawClient.to(b)
    v4.connect(f"{uid}b")
    make_broker.launcher.stop(b)  # type: ignore[attr-defined]  # asserts exit status 0
    # MQTT 5 clients are told why: DISCONNECT 0x8B Server shutting down.
    v5.expect_disconnect_and_close({0x8B})
    assert v4.expect_closed() == b""


def test_13_full_store_refuses_instead_of_acknowledging(make_broker, uid):
    """The data file reaches its cap (as on a full disk): QoS 1 messages owed to a
    persistent session get PUBACK 0x80, never a success; traffic that needs no
    storage goes on."""
    b = make_broker("[server]\nstorage_max_bytes = 1048576\n")
    peers = Peers(b, uid)
    try:
        sub = peers.paho(version=5, client_id=f"{uid}s",
                         properties={"SessionExpiryInterval": 3600})
        sub.subscribe(f"{uid}/kept", 1)
        sub.disconnect()
        pub = peers.paho(version=5)
        codes = []
        for _ in range(40):  # 40 x 64 KiB: well past the 1 MiB cap
            codes.append(pub.publish(f"{uid}/kept", bytes(65536), 1))
            if codes[-1] != 0:
                break
        assert codes[0] == 0 and codes[-1] == 0x80, codes
        # Refusing from now on, with no success in between.
        assert pub.publish(f"{uid}/kept", b"small", 1) == 0x80
        # Nothing to store: acknowledged as before.
        assert pub.publish(f"{uid}/nobody-keeps-this", b"x", 1) == 0
        assert "refusing persistent writes" in b.log()
    finally:
        peers.close_all()
