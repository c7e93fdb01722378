"""Whole applications: one written for the Solace PubSub+ Python API, run with only
its imports changed; and processes (multiprocessing) with services of their own."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from warren.messaging import IllegalStateError, MessagingService, TopicSubscription

APP = Path(__file__).resolve().parent / "solace_style" / "pubsub_request_reply.py"


def test_solace_style_app_runs_unmodified_but_for_imports(broker, tmp_path: Path, uid: str) -> None:  # type: ignore[no-untyped-def]
    source = APP.read_text()
    # Only the import statements change; property keys keep their solace names.
    ported = re.sub(r"^(from|import) solace\.messaging", r"\1 warren.messaging", source,
                    flags=re.M)
    changed = [
        (a, b) for a, b in zip(source.splitlines(), ported.splitlines(), strict=True) if a != b
    ]
    assert changed and all(re.match(r"from \S+ import ", b) for _, b in changed), changed
    app = tmp_path / "app.py"
    app.write_text(ported)
    env = {
        **os.environ,
        "SOLACE_HOST": f"tcp://{broker.host}:{broker.native_port}",
        "SOLACE_VPN": "default",
        "SOLACE_USERNAME": "sample",
        "SOLACE_PASSWORD": "sample",
        "TOPIC_PREFIX": f"{uid}/samples",
    }
    done = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Messaging Service connected? True" in out
    assert "Direct Subscriber is running? True" in out
    assert "Direct Publisher ready? True" in out
    for n in range(1, 6):
        assert f"this is the body of the msg + {n} (id NEW {n}, language Python)" in out
    assert "Received reply (body): Greetings Python!" in out


def _child_publishes(host: str, topic: str) -> None:
    service = MessagingService.builder().from_properties({"transport.host": host}).build()
    service.connect()
    publisher = service.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(f"from pid {os.getpid()}", topic)
    publisher.terminate()
    service.disconnect()


def _child_uses_inherited(service: MessagingService, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        service.create_direct_message_publisher_builder().build().start()
        result.put("no error")
    except IllegalStateError as exc:
        result.put(f"IllegalStateError: {exc}")


def test_processes_make_their_own_services(service, broker, uid: str) -> None:  # type: ignore[no-untyped-def]
    parent = service()
    receiver = parent.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/procs")]).build()
    receiver.start()
    host = f"tcp://{broker.host}:{broker.native_port}"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_child_publishes, args=(host, f"{uid}/procs"))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    got = {receiver.receive_message(5000).get_payload_as_string() for _ in workers}  # type: ignore[union-attr]
    assert got == {f"from pid {w.pid}" for w in workers}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_service_inherited_through_fork_refuses_clearly(service) -> None:  # type: ignore[no-untyped-def]
    parent = service()
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(target=_child_uses_inherited, args=(parent, result))
    child.start()
    child.join(30)
    message = result.get(timeout=5)
    assert message.startswith("IllegalStateError") and "fork" in message
    assert parent.is_connected  # the parent's service is untouched
