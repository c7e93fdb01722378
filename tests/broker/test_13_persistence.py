"""13 - Shutdown: SIGTERM says goodbye to clients and exits 0.

Durable state across restarts and kill -9 is issue 6 (storage); its tests were
written with this file and are in git history (see the commit that removed them).
"""

from __future__ import annotations

from mqtt_wire import RawClient


def _session(version: int) -> dict[str, object]:
    if version == 5:
        return {"properties": {"SessionExpiryInterval": 3600}}
    return {"clean": False}


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
