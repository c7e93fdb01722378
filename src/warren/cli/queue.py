"""``warren queue``: list, create, inspect, browse, purge and delete queues.

A client of the management API (``[[listener]] protocol = "admin"``, docs/admin.md)
over HTTP with httpx; the broker must be running. Every command takes ``--url``
(or ``WARREN_ADMIN_URL``), ``--vpn`` and ``--json`` (the API's own JSON, for scripts).

Exit codes: 0 done, 1 error (unreachable API, refused request), 2 usage error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table

__all__ = ["queue"]

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 10.0

F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print the API's JSON instead of a table.")(f)
    f = click.option("--vpn", default="default", show_default=True, envvar="WARREN_VPN",
                     help="The VPN the queue belongs to.")(f)
    f = click.option("--url", default=DEFAULT_URL, show_default=True,
                     envvar="WARREN_ADMIN_URL",
                     help="The broker's management API (an admin listener).")(f)
    return f


class _Api:
    def __init__(self, url: str, vpn: str) -> None:
        self.url = url.rstrip("/")
        self.vpn = vpn

    def queues(self, name: str | None = None, suffix: str = "") -> str:
        path = f"/api/v1/vpns/{quote(self.vpn, safe='')}/queues"
        if name is not None:
            path += "/" + quote(name, safe="")
        return path + suffix

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx  # here: `warren serve`, `pub` and `sub` need not load it

        try:
            with httpx.Client(base_url=self.url, timeout=TIMEOUT) as client:
                response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the management API at {self.url} ({exc}): is `warren serve` "
                "running with an admin listener ([[listener]] protocol = \"admin\")? "
                "Point --url or WARREN_ADMIN_URL at it."
            ) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title") or response.text
            except ValueError:
                detail = (f"{response.status_code} {response.reason_phrase} from {self.url}: "
                          "is this Warren's management API?")
            raise click.ClickException(str(detail))
        return response.json() if response.content else None


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


@click.group()
def queue() -> None:
    """Manage the broker's queues through its management API.

    \b
    Examples:
      warren queue ls
      warren queue create orders -s 'orders/#' --max-length 10000
      warren queue create jobs -s 'jobs/#' --max-redelivery 5 \\
          --dead-letter-queue jobs.dead
      warren queue show orders
      warren queue browse orders -n 5
      warren queue purge orders --yes
      warren queue delete orders --if-empty --yes
    """


@queue.command("ls")
@_common
def ls(url: str, vpn: str, as_json: bool) -> None:
    """List the queues of a VPN with their depth and consumers."""
    api = _Api(url, vpn)
    data = api.call("GET", api.queues())
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"queues in VPN {vpn!r}")
    for column in ("name", "messages", "bytes", "unacked", "consumers", "durable",
                   "exclusive"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for q in data:
        table.add_row(q["name"], str(q["messages"]), str(q["bytes"]), str(q["unacked"]),
                      str(q["consumers"]), _yes(q["durable"]), _yes(q["exclusive"]))
    Console().print(table)


@queue.command()
@click.argument("name")
@click.option("--subscribe", "-s", "subscriptions", multiple=True, metavar="FILTER",
              help="Queue every message published to topics matching FILTER (MQTT "
              "syntax: a/+/c, a/#). Repeatable.")
@click.option("--durable/--transient", default=True, show_default=True,
              help="Whether the queue is kept across restarts.")
@click.option("--exclusive", is_flag=True, help="One consumer at a time.")
@click.option("--max-length", type=click.IntRange(min=0), help="Most ready messages.")
@click.option("--max-length-bytes", type=click.IntRange(min=0), help="Most ready bytes.")
@click.option("--message-ttl", type=click.IntRange(min=0), metavar="MS",
              help="Milliseconds a message may wait.")
@click.option("--expires", type=click.IntRange(min=1), metavar="MS",
              help="Delete the queue after this many idle milliseconds.")
@click.option("--overflow", type=click.Choice(["drop-head", "reject-publish",
                                               "reject-publish-dlx"]),
              default="drop-head", show_default=True, help="What a full queue does.")
@click.option("--max-priority", type=click.IntRange(1, 255), help="Keep priorities apart.")
@click.option("--max-redelivery", type=click.IntRange(min=0), metavar="N",
              help="Redeliveries a message may have (nack, requeue, consumer gone); the "
              "next return dead-letters it. 0: never redelivered. Default: no limit.")
@click.option("--dead-letter-exchange", help="Where expired, rejected or dead messages go.")
@click.option("--dead-letter-routing-key", help="Their routing key there.")
@click.option("--dead-letter-queue", metavar="QUEUE",
              help="Or a queue to send them to (e.g. '#DEAD_MSG_QUEUE').")
@_common
def create(
    name: str, subscriptions: tuple[str, ...], durable: bool, exclusive: bool,
    max_length: int | None, max_length_bytes: int | None, message_ttl: int | None,
    expires: int | None, overflow: str, max_priority: int | None, max_redelivery: int | None,
    dead_letter_exchange: str | None, dead_letter_routing_key: str | None,
    dead_letter_queue: str | None, url: str, vpn: str, as_json: bool,
) -> None:
    """Create queue NAME, optionally subscribed to topics."""
    api = _Api(url, vpn)
    limits = {
        "max_length": max_length,
        "max_length_bytes": max_length_bytes,
        "message_ttl_ms": message_ttl,
        "expires_ms": expires,
        "overflow": overflow,
        "max_priority": max_priority,
        "max_redelivery": max_redelivery,
        "dead_letter_exchange": dead_letter_exchange,
        "dead_letter_routing_key": dead_letter_routing_key,
        "dead_letter_queue": dead_letter_queue,
    }
    body = {
        "name": name,
        "durable": durable,
        "exclusive": exclusive,
        "subscriptions": list(subscriptions),
        "limits": {k: v for k, v in limits.items() if v is not None},
    }
    data = api.call("POST", api.queues(), json=body)
    if as_json:
        _print_json(data)
        return
    subs = ", ".join(data["subscriptions"]) or "no topic subscriptions"
    click.echo(f"created queue {data['name']!r} in VPN {vpn!r} ({subs})")


@queue.command()
@click.argument("name")
@_common
def show(name: str, url: str, vpn: str, as_json: bool) -> None:
    """Show queue NAME: depth, bytes, limits, subscriptions, consumers."""
    api = _Api(url, vpn)
    data = api.call("GET", api.queues(name))
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"queue {name!r} in VPN {vpn!r}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("messages", "bytes", "unacked", "consumers"):
        table.add_row(key, str(data[key]))
    for key in ("durable", "exclusive", "auto_delete"):
        table.add_row(key.replace("_", "-"), _yes(data[key]))
    table.add_row("subscriptions", "\n".join(data["subscriptions"]) or "-")
    limits = {k: v for k, v in data["limits"].items() if v is not None}
    table.add_row("limits", "\n".join(f"{k} = {v}" for k, v in limits.items()))
    for key in ("dead_lettered", "dropped", "redelivery_exceeded"):
        table.add_row(key.replace("_", "-"), str(data[key]))
    consumers = [
        f"{c['tag']} (prefetch {c['prefetch']}, unacked {c['unacked']}"
        f"{', no-ack' if c['no_ack'] else ''})"
        for c in data["consumer_list"]
    ]
    table.add_row("consumer list", "\n".join(consumers) or "-")
    Console().print(table)


@queue.command()
@click.argument("name")
@click.option("--count", "-n", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many messages to show.")
@_common
def browse(name: str, count: int, url: str, vpn: str, as_json: bool) -> None:
    """Show the next messages of queue NAME without consuming them."""
    api = _Api(url, vpn)
    data = api.call("GET", api.queues(name, "/messages"), params={"limit": count})
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"queue {name!r}: {len(data['messages'])} of {data['total']} "
                  "ready messages")
    for column in ("#", "topic", "payload", "size", "redeliveries"):
        table.add_column(column)
    for m in data["messages"]:
        payload = m["payload"] if m["payload_encoding"] == "utf-8" else f"base64:{m['payload']}"
        if len(payload) > 60:
            payload = payload[:57] + "..."
        table.add_row(str(m["position"]), m["topic"], payload, str(m["size"]),
                      str(m["redeliveries"]))
    Console().print(table)


@queue.command()
@click.argument("name")
@click.confirmation_option(prompt="Drop every ready message of this queue?")
@_common
def purge(name: str, url: str, vpn: str, as_json: bool) -> None:
    """Drop every ready message of queue NAME."""
    api = _Api(url, vpn)
    data = api.call("DELETE", api.queues(name, "/messages"))
    if as_json:
        _print_json(data)
        return
    click.echo(f"purged {data['purged']} messages from queue {name!r}")


@queue.command()
@click.argument("name")
@click.option("--if-empty", is_flag=True, help="Refuse if the queue holds messages.")
@click.option("--if-unused", is_flag=True, help="Refuse if the queue has consumers.")
@click.confirmation_option(prompt="Delete this queue and its messages?")
@_common
def delete(name: str, if_empty: bool, if_unused: bool, url: str, vpn: str,
           as_json: bool) -> None:
    """Delete queue NAME (its messages, subscriptions and consumers go with it)."""
    api = _Api(url, vpn)
    params = {"if_empty": str(if_empty).lower(), "if_unused": str(if_unused).lower()}
    data = api.call("DELETE", api.queues(name), params=params)
    if as_json:
        _print_json(data)
        return
    click.echo(f"deleted queue {name!r} ({data['deleted_messages']} messages dropped)")


if __name__ == "__main__":  # pragma: no cover - `python -m warren.cli.queue`
    queue()
