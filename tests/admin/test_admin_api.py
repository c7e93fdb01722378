"""The management API against a real `warren serve` (tests/conftest.py, admin on port 0)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Broker

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return dict(body)


def test_ready_file_lists_the_admin_listener(broker: Broker) -> None:
    info = json.loads((broker.workdir / "ready.json").read_text())
    admin = [li for li in info["listeners"] if li["protocol"] == "admin"]
    assert admin == [{"protocol": "admin", "host": "127.0.0.1", "port": broker.admin_port}]


def test_openapi_and_docs(broker: Broker, api: httpx.Client) -> None:
    base = f"http://{broker.host}:{broker.admin_port}"
    spec = httpx.get(f"{base}/api/openapi.json").json()
    assert spec["info"]["title"] == "Warren management API"
    paths = spec["paths"]
    for path in ("/api/v1/broker", "/api/v1/broker/stats", "/api/v1/vpns",
                 "/api/v1/vpns/{vpn}/sessions/{client_id}", "/api/v1/vpns/{vpn}/queues",
                 "/api/v1/vpns/{vpn}/queues/{queue}/messages"):
        assert path in paths
    assert set(paths["/api/v1/vpns/{vpn}/queues/{queue}"]) == {"get", "delete"}
    docs = httpx.get(f"{base}/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_broker_info_and_stats(broker: Broker, api: httpx.Client) -> None:
    info = api.get("/broker").json()
    assert info["vpns"] == ["default"]
    protocols = {li["protocol"]: li for li in info["listeners"]}
    assert protocols["mqtt"]["port"] == broker.mqtt_port
    assert protocols["admin"]["url"] == f"http://127.0.0.1:{broker.admin_port}"
    assert info["pid"] == broker.proc.pid
    stats = api.get("/broker/stats").json()
    assert stats["uptime_seconds"] >= 0
    assert stats["clients_connected"] >= 0


def test_vpns(api: httpx.Client) -> None:
    vpns = api.get("/vpns").json()
    assert [v["name"] for v in vpns] == ["default"]
    assert vpns[0]["acl_default"] == "allow"
    assert api.get("/vpns/default").json()["name"] == "default"
    body = _problem(api.get("/vpns/nope"), 404)
    assert "'nope'" in str(body["detail"]) and "default" in str(body["detail"])


def test_queue_lifecycle(api: httpx.Client, uid: str) -> None:
    created = api.post("/vpns/default/queues", json={
        "name": uid, "subscriptions": [f"{uid}/+/x"],
        "limits": {"max_length": 100, "message_ttl_ms": 60000},
    })
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/vpns/default/queues/{uid}"
    body = created.json()
    assert body["subscriptions"] == [f"{uid}/+/x"]
    assert body["limits"]["max_length"] == 100
    assert body["limits"]["message_ttl_ms"] == 60000
    assert body["durable"] is True and body["exclusive"] is False
    assert uid in [q["name"] for q in api.get("/vpns/default/queues").json()]
    shown = api.get(f"/vpns/default/queues/{uid}").json()
    assert shown["messages"] == 0 and shown["consumers"] == 0
    assert api.get(f"/vpns/default/queues/{uid}/messages").json()["messages"] == []
    assert api.delete(f"/vpns/default/queues/{uid}/messages").json()["purged"] == 0
    deleted = api.delete(f"/vpns/default/queues/{uid}", params={"if_empty": "true"})
    assert deleted.json() == {"vpn": "default", "queue": uid, "deleted_messages": 0}
    _problem(api.get(f"/vpns/default/queues/{uid}"), 404)


def test_queue_errors(api: httpx.Client, uid: str) -> None:
    assert api.post("/vpns/default/queues", json={"name": uid}).status_code == 201
    exists = _problem(api.post("/vpns/default/queues", json={"name": uid}), 409)
    assert "already exists" in str(exists["detail"])
    bad_filter = _problem(api.post("/vpns/default/queues", json={
        "name": uid + "b", "subscriptions": ["a/#/b"]}), 422)
    assert "subscriptions[0]" in str(bad_filter["detail"])
    bad_field = _problem(api.post("/vpns/default/queues", json={
        "name": uid + "c", "limits": {"max_length": -1}}), 422)
    assert "body.limits.max_length" in str(bad_field["detail"])
    assert bad_field["errors"]
    unknown = _problem(api.post("/vpns/default/queues", json={"name": uid + "d", "bogus": 1}),
                       422)
    assert "bogus" in str(unknown["detail"])
    bad_name = _problem(api.post("/vpns/default/queues", json={"name": "a/b"}), 422)
    assert "letters, digits" in str(bad_name["detail"])
    missing = _problem(api.get(f"/vpns/default/queues/{uid}x"), 404)
    assert "POST" in str(missing["detail"])
    _problem(api.get("/nowhere"), 404)
    wrong_method = _problem(api.put(f"/vpns/default/queues/{uid}"), 405)
    assert "use DELETE, GET" in str(wrong_method["detail"])
    assert api.put(f"/vpns/default/queues/{uid}").headers["allow"] == "DELETE, GET"
    not_json = _problem(api.post("/vpns/default/queues", content=b"\xff{",
                                 headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in str(not_json["detail"])
    _problem(api.get(f"/vpns/default/queues/{uid}/messages", params={"limit": 0}), 422)
    assert api.delete(f"/vpns/default/queues/{uid}").status_code == 200


def test_sessions_list_show_delete(api: httpx.Client, broker: Broker, uid: str) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uid,
                         protocol=mqtt.MQTTv311, clean_session=False)
    client.connect(broker.host, broker.mqtt_port)
    client.loop_start()
    try:
        client.subscribe(f"{uid}/t", qos=1)
        # The broker handles one connection's packets in order: once this PUBACK is
        # back, the SUBSCRIBE before it has been processed.
        info = client.publish(f"{uid}/ping", b"", qos=1)
        info.wait_for_publish(20)
        sessions = {s["client_id"]: s for s in api.get("/vpns/default/sessions").json()}
        assert sessions[uid]["connected"] is True
        assert sessions[uid]["persistent"] is True
        shown = api.get(f"/vpns/default/sessions/{uid}").json()
        assert shown["subscriptions"] == [f"{uid}/t"]
        refused = _problem(api.delete(f"/vpns/default/sessions/{uid}"), 409)
        assert "disconnect=true" in str(refused["detail"])
        gone = api.delete(f"/vpns/default/sessions/{uid}", params={"disconnect": "true"})
        assert gone.status_code == 204
        _problem(api.get(f"/vpns/default/sessions/{uid}"), 404)
    finally:
        client.loop_stop()
        client.disconnect()
    _problem(api.delete(f"/vpns/default/sessions/{uid}"), 404)
