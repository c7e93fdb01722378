"""`warren queue ...` as a subprocess against the shared broker's admin listener."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from admin_support import WAIT, admin_url
from pika.adapters.blocking_connection import BlockingChannel

if TYPE_CHECKING:
    from conftest import Broker

SRC = Path(__file__).resolve().parents[2] / "src"


def warren(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"}
    env.pop("WARREN_ADMIN_URL", None)
    if url is not None:
        env["WARREN_ADMIN_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "warren.cli.main", "queue", *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=WAIT,
        check=False,
    )


def test_queue_commands_end_to_end(broker: Broker, amqp: BlockingChannel, uid: str) -> None:
    url = admin_url(broker)
    made = warren("create", uid, "-s", f"{uid}/#", "--max-length", "10", url=url)
    assert made.returncode == 0, made.stderr
    assert f"created queue '{uid}'" in made.stdout

    amqp.basic_publish("amq.topic", f"{uid}.a", b"hello")
    amqp.basic_publish("amq.topic", f"{uid}.b", b"world")

    listed = warren("ls", "--url", url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if uid in line)
    assert row.split("│")[2].strip() == "2"  # the messages column
    as_json = json.loads(warren("ls", "--json", url=url).stdout)
    assert {"name": uid, "messages": 2}.items() <= next(
        q for q in as_json if q["name"] == uid).items()

    shown = warren("show", uid, url=url)
    assert shown.returncode == 0, shown.stderr
    assert f"{uid}/#" in shown.stdout and "max_length = 10" in shown.stdout
    assert json.loads(warren("show", uid, "--json", url=url).stdout)["bytes"] == 10

    browsed = warren("browse", uid, "-n", "1", url=url)
    assert browsed.returncode == 0, browsed.stderr
    assert "hello" in browsed.stdout and "world" not in browsed.stdout
    peek = json.loads(warren("browse", uid, "--json", url=url).stdout)
    assert [m["payload"] for m in peek["messages"]] == ["hello", "world"]

    refused = warren("delete", uid, "--if-empty", "--yes", url=url)
    assert refused.returncode == 1
    assert "purge it first" in refused.stderr

    purged = warren("purge", uid, "--yes", url=url)
    assert purged.returncode == 0 and "purged 2 messages" in purged.stdout
    deleted = warren("delete", uid, "--if-empty", "--yes", "--json", url=url)
    assert json.loads(deleted.stdout)["queue"] == uid
    assert httpx.get(f"{url}/api/v1/vpns/default/queues/{uid}").status_code == 404


def test_queue_create_with_max_redelivery_then_show(broker: Broker, amqp: BlockingChannel,
                                                   uid: str) -> None:
    url = admin_url(broker)
    dead = f"{uid}.dead"
    assert warren("create", dead, url=url).returncode == 0
    made = warren("create", uid, "--max-redelivery", "1", "--dead-letter-queue", dead,
                  url=url)
    assert made.returncode == 0, made.stderr
    limits = json.loads(warren("show", uid, "--json", url=url).stdout)["limits"]
    assert (limits["max_redelivery"], limits["dead_letter_queue"]) == (1, dead)

    amqp.basic_publish("", uid, b"poison")
    method, _, _ = amqp.basic_get(uid)
    amqp.basic_nack(method.delivery_tag, requeue=True)
    browsed = warren("browse", uid, url=url)
    assert browsed.returncode == 0, browsed.stderr
    row = next(line for line in browsed.stdout.splitlines() if "poison" in line)
    assert row.split("│")[-2].strip() == "1"  # the redeliveries column
    method, _, _ = amqp.basic_get(uid)
    amqp.basic_nack(method.delivery_tag, requeue=True)  # past the limit: to the dead queue

    shown = warren("show", uid, url=url)
    assert shown.returncode == 0, shown.stderr
    assert "max_redelivery = 1" in shown.stdout and f"dead_letter_queue = {dead}" in shown.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in shown.stdout.splitlines() if line.count("│") == 3}
    assert (rows["dead-lettered"], rows["dropped"], rows["redelivery-exceeded"]) == (
        "1", "0", "1")
    assert json.loads(warren("show", dead, "--json", url=url).stdout)["messages"] == 1

    refused = warren("create", f"{uid}.x", "--max-redelivery", "-1", url=url)
    assert refused.returncode == 2 and "--max-redelivery" in refused.stderr
    for name in (uid, dead):
        assert warren("delete", name, "--yes", url=url).returncode == 0


def test_queue_cli_errors_name_the_fix(broker: Broker, uid: str) -> None:
    url = admin_url(broker)
    missing = warren("show", uid, url=url)
    assert missing.returncode == 1
    assert f"queue '{uid}' does not exist" in missing.stderr
    assert warren("create", uid, url=url).returncode == 0
    again = warren("create", uid, url=url)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_vpn = warren("ls", "--vpn", "nope", url=url)
    assert bad_vpn.returncode == 1 and "the VPNs are: default" in bad_vpn.stderr
    assert warren("delete", uid, "--yes", url=url).returncode == 0

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        unreachable = warren("ls", url=closed)
    assert unreachable.returncode == 1
    assert f"cannot reach the management API at {closed}" in unreachable.stderr
    assert "admin listener" in unreachable.stderr


def test_queue_help() -> None:
    result = warren("--help")
    assert result.returncode == 0
    for command in ("ls", "create", "show", "browse", "purge", "delete"):
        assert command in result.stdout
