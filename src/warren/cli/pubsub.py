"""``warren pub`` and ``warren sub``: MQTT command-line clients modelled on mosquitto_pub/sub.

Both speak MQTT 3.1.1 and 5.0 (default 5.0) over TCP, TLS and WebSocket through
:mod:`warren.cli.mqtt_client`. Options keep mosquitto's letters, so scripts and fingers
carry over; where this tool differs it says so in ``--help``.

Exit codes: 0 done, 1 error (connection, refusal, all subscriptions refused), 2 usage
error, 27 ``-W`` timed out (as mosquitto), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import click
from click.core import ParameterSource

from warren.cli.mqtt_client import (
    Endpoint,
    MQTTClient,
    MQTTClientError,
    PublishRefused,
    reason_text,
)
from warren.codecs.mqtt import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
)

__all__ = ["pub", "sub"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_TIMEOUT = 27  # mosquitto_sub's code for -W (MOSQ_ERR_TIMEOUT)
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a C tool piped into `head` would end

_SESSION_NEVER_EXPIRES = 0xFFFF_FFFF
_CONTEXT_SETTINGS: dict[str, Any] = {
    # -h is --host, as in mosquitto_pub/sub.
    "help_option_names": ["--help"],
    "max_content_width": 100,
}

F = TypeVar("F", bound=Callable[..., Any])


# --- where to connect ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: Literal["mqtt", "mqtts", "ws", "wss"]
    host: str | None
    port: int | None
    path: str
    topic: str | None
    username: str | None
    password: str | None


def _parse_url(text: str) -> _Url:
    """Split ``-L``: mqtt(s)://[user[:password]@]host[:port][/topic], ws(s)://...[/path]."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc}", param_hint="-L/--url") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "ws", "wss"):
        raise click.BadParameter(
            f"{text!r}: the scheme must be mqtt://, mqtts://, ws:// or wss://",
            param_hint="-L/--url",
        )
    path = parts.path
    if "#" in text:
        # '#' is MQTT's multi-level wildcard, not a URL fragment: mqtt://h/a/# means "a/#".
        path = f"{path}#{parts.fragment}"
    topic: str | None = None
    if scheme in ("mqtt", "mqtts"):
        topic = path[1:] or None
        path = ""
    elif not path:
        path = "/mqtt"  # Warren's default WebSocket path
    return _Url(
        scheme=scheme,  # type: ignore[arg-type]
        host=parts.hostname,
        port=port,
        path=path,
        topic=topic,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(slots=True)
class _Common:
    """The options ``pub`` and ``sub`` share, resolved (URL, environment, defaults)."""

    endpoint: Endpoint
    url_topic: str | None
    protocol_level: int
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    qos: int
    will: Will | None
    timeout: float | None
    debug: bool


def _from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _ssl_context(
    cafile: str | None, capath: str | None, cert: str | None, key: str | None, insecure: bool
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.UsageError(f"cannot load the TLS files: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _resolve_common(ctx: click.Context, kind: str, params: dict[str, Any]) -> _Common:
    url = _parse_url(params["url"]) if params["url"] else None

    def pick(name: str, from_url: Any) -> Any:
        # Precedence: an option on the command line > the -L URL > environment > default.
        if from_url is None or _from_command_line(ctx, name):
            return params[name]
        return from_url

    host = pick("host", url.host if url else None)
    username = pick("username", url.username if url else None)
    password = pick("password", url.password if url else None)
    port = pick("port", url.port if url else None)

    cafile, capath, cert, key = params["cafile"], params["capath"], params["cert"], params["key"]
    insecure: bool = params["insecure"]
    if key is not None and cert is None:
        raise click.UsageError("--key needs --cert")
    use_tls = bool(
        (url and url.scheme in ("mqtts", "wss"))
        or params["tls"]
        or insecure
        or any(value is not None for value in (cafile, capath, cert))
    )
    transport: Literal["tcp", "websockets"] = (
        "websockets" if url and url.scheme in ("ws", "wss") else "tcp"
    )
    if port is None:
        default_ports = {"tcp": (1883, 8883), "websockets": (80, 443)}
        port = default_ports[transport][use_tls]
    endpoint = Endpoint(
        host=host,
        port=port,
        transport=transport,
        ws_path=url.path if url and transport == "websockets" else "/mqtt",
        ssl_context=_ssl_context(cafile, capath, cert, key, insecure) if use_tls else None,
    )

    version: str = params["protocol_version"].lower()
    protocol_level = 4 if version in ("mqttv311", "311") else 5
    if protocol_level == 4 and password is not None and username is None:
        raise click.UsageError(
            "MQTT 3.1.1 sends a password only with a user name [MQTT-3.1.2-22]: add -u"
        )

    will: Will | None = None
    if params["will_topic"] is not None:
        _check_topic_name(params["will_topic"], "--will-topic")
        will = Will(
            params["will_topic"],
            os.fsencode(params["will_payload"] or ""),
            params["will_qos"],
            params["will_retain"],
        )
    elif (
        params["will_payload"] is not None
        or params["will_retain"]
        or _from_command_line(ctx, "will_qos")
    ):
        raise click.UsageError("--will-payload, --will-qos and --will-retain need --will-topic")

    return _Common(
        endpoint=endpoint,
        url_topic=url.topic if url else None,
        protocol_level=protocol_level,
        client_id=params["client_id"] or f"warren-{kind}-{secrets.token_hex(4)}",
        username=username,
        password=password.encode() if password is not None else None,
        keepalive=params["keepalive"],
        qos=params["qos"],
        will=will,
        timeout=params["timeout"],
        debug=params["debug"],
    )


def _check_topic_name(topic: str, what: str = "-t/--topic") -> None:
    # MQTT-3.3.2-2 (no wildcards in a topic name), MQTT-4.7.3-1 (at least one character),
    # MQTT-1.5.4-2 (no U+0000). Caught here, the user gets a sentence instead of a
    # dropped connection.
    if not topic:
        raise click.UsageError(f"{what}: the topic is empty")
    if "+" in topic or "#" in topic:
        raise click.UsageError(
            f"{what}: cannot publish to {topic!r}: '+' and '#' are only for subscribing"
        )
    if "\0" in topic:
        raise click.UsageError(f"{what}: the topic contains U+0000")


def _check_topic_filter(topic_filter: str) -> None:
    # MQTT-4.7.1-1/-2: '#' only as the whole last level, '+' only as a whole level.
    if not topic_filter:
        raise click.UsageError("-t/--topic: the topic filter is empty")
    if "\0" in topic_filter:
        raise click.UsageError("-t/--topic: the topic filter contains U+0000")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise click.UsageError(
                f"-t/--topic: invalid filter {topic_filter!r}: '#' must be the whole last level"
            )
        if "+" in level and level != "+":
            raise click.UsageError(
                f"-t/--topic: invalid filter {topic_filter!r}: '+' must be a whole level"
            )


# --- options --------------------------------------------------------------------------


def _parse_session_expiry(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> int | None:
    if value is None:
        return None
    if value in ("-1", "inf", "∞"):
        return _SESSION_NEVER_EXPIRES
    try:
        seconds = int(value)
    except ValueError:
        raise click.BadParameter("give seconds, or -1 / inf for never") from None
    if not 0 <= seconds <= _SESSION_NEVER_EXPIRES:
        raise click.BadParameter("must be between 0 and 4294967295 (or -1 for never)")
    return seconds


def _common_options(kind: str) -> Callable[[F], F]:
    """Options shared by pub and sub, in the order --help shows them."""
    topic_help = (
        "Topic filter to subscribe to; repeat for more. '+' matches one level, '#' the rest."
        if kind == "sub"
        else "Topic to publish to."
    )
    options = [
        click.option(
            "-h",
            "--host",
            default="localhost",
            show_default=True,
            envvar="WARREN_HOST",
            show_envvar=True,
            help="Broker host name or address.",
        ),
        click.option(
            "-p",
            "--port",
            type=click.IntRange(1, 65535),
            envvar="WARREN_PORT",
            show_envvar=True,
            help="Broker port.  [default: 1883, or 8883 with TLS]",
        ),
        click.option(
            "-L",
            "--url",
            metavar="URL",
            help="Broker as a URL: mqtt://[user[:password]@]host[:port]/topic, mqtts://..., "
            "ws://host[:port]/path or wss://... (path defaults to /mqtt; ports to 1883, "
            "8883, 80, 443). Options given on the command line win over parts of the URL.",
        ),
        click.option(
            "-t", "--topic", "topic", multiple=kind == "sub", metavar="TOPIC", help=topic_help
        ),
        click.option(
            "-q",
            "--qos",
            type=click.IntRange(0, 2),
            default=0,
            show_default=True,
            help="Quality of service: 0 at most once, 1 at least once, 2 exactly once.",
        ),
        click.option(
            "-i", "--id", "client_id", help=f"Client identifier.  [default: warren-{kind}-<random>]"
        ),
        click.option(
            "-u", "--username", envvar="WARREN_USERNAME", show_envvar=True, help="User name."
        ),
        click.option(
            "-P", "--password", envvar="WARREN_PASSWORD", show_envvar=True, help="Password."
        ),
        click.option(
            "-k",
            "--keepalive",
            type=click.IntRange(0, 65535),
            default=60,
            show_default=True,
            help="Seconds between PINGREQs when idle; 0 turns keep-alive off.",
        ),
        click.option(
            "-V",
            "--protocol-version",
            type=click.Choice(["mqttv5", "mqttv311", "5", "311"], case_sensitive=False),
            default="mqttv5",
            show_default=True,
            help="MQTT protocol version.",
        ),
        click.option("--will-topic", metavar="TOPIC", help="Topic of the will message."),
        click.option(
            "--will-payload",
            metavar="TEXT",
            help="Payload of the will message (empty if omitted).",
        ),
        click.option(
            "--will-qos",
            type=click.IntRange(0, 2),
            default=0,
            show_default=True,
            help="QoS of the will message.",
        ),
        click.option("--will-retain", is_flag=True, help="Retain the will message."),
        click.option(
            "--cafile",
            type=click.Path(exists=True, dir_okay=False),
            help="Trust the CA certificates in this PEM file (turns TLS on).",
        ),
        click.option(
            "--capath",
            type=click.Path(exists=True, file_okay=False),
            help="Trust the CA certificates in this directory (turns TLS on).",
        ),
        click.option(
            "--cert",
            type=click.Path(exists=True, dir_okay=False),
            help="Client certificate (PEM) for TLS client authentication.",
        ),
        click.option(
            "--key",
            type=click.Path(exists=True, dir_okay=False),
            help="Private key (PEM) of --cert, if not in the same file.",
        ),
        click.option(
            "--tls", is_flag=True, help="Use TLS with the system's trusted CA certificates."
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Use TLS but check neither the certificate nor the host name (like curl "
            "-k; mosquitto's --insecure skips only the host name check). For testing only.",
        ),
        click.option(
            "-W",
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Give up after this many seconds and exit with code 27.",
        ),
        click.option(
            "-d", "--debug", is_flag=True, help="Print the packets sent and received on stderr."
        ),
    ]

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _connect_packet(
    common: _Common,
    *,
    clean_start: bool = True,
    session_expiry: int | None = None,
) -> Connect:
    properties = NO_PROPERTIES
    if common.protocol_level == 5 and session_expiry:
        properties = Properties(session_expiry_interval=session_expiry)
    return Connect(
        client_id=common.client_id,
        protocol_level=common.protocol_level,
        clean_start=clean_start,
        keep_alive=common.keepalive,
        username=common.username,
        password=common.password,
        will=common.will,
        properties=properties,
    )


# --- running --------------------------------------------------------------------------


def _error(message: str) -> None:
    click.echo(f"Error: {message}", err=True)


def _run(main: Coroutine[Any, Any, int], timeout: float | None) -> NoReturn:
    """Run ``main`` to an exit code; Ctrl-C, -W and client errors end without a traceback."""

    async def guarded() -> int:
        if timeout is None:
            return await main
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await main
        except TimeoutError:
            if deadline.expired():
                _error("Timed out")
                return EXIT_TIMEOUT
            raise

    try:
        code = asyncio.run(guarded())
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except MQTTClientError as exc:
        _error(str(exc))
        code = EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def _silence_stdout() -> None:
    # The reader of our stdout went away (`warren sub ... | head`). Point stdout at
    # /dev/null so the interpreter's final flush does not complain.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())


class _Debug:
    """-d: one line per packet on stderr, in the spirit of mosquitto's -d."""

    def __init__(self) -> None:
        self.client: MQTTClient | None = None

    def __call__(self, direction: str, packet: Packet) -> None:
        client_id = self.client.client_id if self.client is not None else "?"
        click.echo(f"Client {client_id} {direction} {describe_packet(packet)}", err=True)


def _describe_properties(properties: Properties) -> str:
    """ ", props: name=value, ..." for the MQTT 5 properties that are present."""
    present = [
        f"{name}={value!r}"
        for name in Properties.__dataclass_fields__
        if (value := getattr(properties, name)) is not None and value != ()
    ]
    return f", props: {', '.join(present)}" if present else ""


def describe_packet(packet: Packet) -> str:
    """A one-line summary of a packet for -d output."""
    match packet:
        case Connect():
            parts = [
                f"v{'5' if packet.protocol_level == 5 else '3.1.1'}",
                f"id: {packet.client_id!r}",
                f"clean: {int(packet.clean_start)}",
                f"keepalive: {packet.keep_alive}",
            ]
            if packet.username is not None:
                parts.append(f"user: {packet.username!r}")
            if packet.will is not None:
                parts.append(f"will: {packet.will.topic!r} q{packet.will.qos}")
            expiry = packet.properties.session_expiry_interval
            if expiry:
                parts.append(f"session expiry: {expiry}")
            return f"CONNECT ({', '.join(parts)})"
        case ConnAck():
            return (
                f"CONNACK (0x{packet.reason_code:02X}, "
                f"session present: {int(packet.session_present)}"
                f"{_describe_properties(packet.properties)})"
            )
        case Publish():
            return (
                f"PUBLISH (d{int(packet.dup)}, q{packet.qos}, r{int(packet.retain)}, "
                f"m{packet.packet_id or 0}, {packet.topic!r}, ... ({len(packet.payload)} bytes)"
                f"{_describe_properties(packet.properties)})"
            )
        case PubAck() | PubRec() | PubRel() | PubComp():
            name = type(packet).__name__.upper()
            return f"{name} (m{packet.packet_id}, 0x{packet.reason_code:02X})"
        case Subscribe():
            requests = ", ".join(f"{s.topic_filter!r} q{s.qos}" for s in packet.subscriptions)
            return f"SUBSCRIBE (m{packet.packet_id}, {requests})"
        case SubAck():
            codes = ", ".join(f"0x{code:02X}" for code in packet.reason_codes)
            return f"SUBACK (m{packet.packet_id}, [{codes}])"
        case Unsubscribe():
            return f"UNSUBSCRIBE (m{packet.packet_id}, {list(packet.topic_filters)!r})"
        case UnsubAck():
            codes = ", ".join(f"0x{code:02X}" for code in packet.reason_codes)
            return f"UNSUBACK (m{packet.packet_id}{f', [{codes}]' if codes else ''})"
        case PingReq():
            return "PINGREQ"
        case PingResp():
            return "PINGRESP"
        case Disconnect():
            return (
                f"DISCONNECT (0x{packet.reason_code:02X}{_describe_properties(packet.properties)})"
            )
        case Auth():
            return f"AUTH (0x{packet.reason_code:02X})"
        case _:
            return type(packet).__name__.upper()


# --- pub ------------------------------------------------------------------------------

_PUB_EPILOG = """\b
Give the payload with exactly one of -m, -f, -s, -l or -n.

\b
Examples:
  warren pub -t sensors/t1 -m 21.5                  publish one message
  warren pub -t cfg/mode -m eco -r -q 1             retained, QoS 1
  warren pub -t cfg/mode -r -n                      clear the retained message
  tail -f app.log | warren pub -t logs/app -l       one message per line
  warren pub -t img/cam1 -f snapshot.jpg            a file as the payload
  warren pub -L mqtt://user:secret@broker:1883/a/b -m hi
  warren pub -L mqtts://broker/a/b --cafile ca.pem -m hi
  warren pub -L ws://localhost:8000/mqtt -t a/b -m hi
  warren pub -t rpc/req -m '{"n": 1}' --content-type application/json \\
      --response-topic rpc/resp --correlation-data 42 --user-property trace abc

\b
Exit codes: 0 published (and acknowledged for QoS 1/2), 1 error, 2 usage error,
27 timed out (-W), 130 interrupted.
"""


@click.command("pub", context_settings=_CONTEXT_SETTINGS, epilog=_PUB_EPILOG)
@_common_options("pub")
@click.option("-r", "--retain", is_flag=True, help="Ask the broker to retain the message.")
@click.option("-m", "--message", metavar="TEXT", help="The payload, from the command line.")
@click.option(
    "-f",
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Send the contents of this file ('-' = stdin) as one message.",
)
@click.option(
    "-l",
    "--stdin-line",
    is_flag=True,
    help="Send each line of stdin as a message (line end removed; empty lines are empty "
    "messages) until end of input.",
)
@click.option("-s", "--stdin-file", is_flag=True, help="Send all of stdin as one message.")
@click.option("-n", "--null-message", is_flag=True, help="Send an empty message (with -r: clears).")
@click.option(
    "-M",
    "--max-inflight",
    type=click.IntRange(1, 65535),
    default=20,
    show_default=True,
    help="QoS 1/2 messages on their way at once (-l); the broker may allow fewer.",
)
@click.option("--content-type", metavar="TEXT", help="MQTT 5: content type, e.g. a MIME type.")
@click.option("--response-topic", metavar="TOPIC", help="MQTT 5: topic for the reply.")
@click.option("--correlation-data", metavar="TEXT", help="MQTT 5: correlation data (UTF-8 text).")
@click.option(
    "--message-expiry",
    type=click.IntRange(0, 0xFFFF_FFFF),
    metavar="SECONDS",
    help="MQTT 5: the broker drops the message after this many seconds.",
)
@click.option(
    "--user-property",
    nargs=2,
    multiple=True,
    metavar="KEY VALUE",
    help="MQTT 5: a user property; repeat for more (order and repeated keys are kept).",
)
@click.option(
    "--payload-format-utf8",
    is_flag=True,
    help="MQTT 5: mark the payload as UTF-8 text (checked before sending).",
)
@click.pass_context
def pub(ctx: click.Context, /, **params: Any) -> None:
    """Publish messages to an MQTT broker (like mosquitto_pub)."""
    try:
        common = _resolve_common(ctx, "pub", params)
        topic: str | None = params["topic"] if params["topic"] is not None else common.url_topic
        if topic is None:
            raise click.UsageError("give a topic with -t or in the -L URL")
        _check_topic_name(topic)
        properties = _publish_properties(common, params)
        payload = _read_payload(params)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    if properties.payload_format_indicator == 1 and payload is not None:
        _require_utf8(payload)
    job = _Publisher(common, topic, properties, params["retain"], params["max_inflight"])
    _run(job.run(payload), common.timeout)


_V5_PUBLISH_OPTIONS = {
    "content_type": "--content-type",
    "response_topic": "--response-topic",
    "correlation_data": "--correlation-data",
    "message_expiry": "--message-expiry",
    "user_property": "--user-property",
    "payload_format_utf8": "--payload-format-utf8",
}


def _publish_properties(common: _Common, params: dict[str, Any]) -> Properties:
    given = [flag for name, flag in _V5_PUBLISH_OPTIONS.items() if params[name]]
    if not given:
        return NO_PROPERTIES
    if common.protocol_level != 5:
        # MQTT 3.1.1 has no properties; dropping them silently would lie to the user.
        raise click.UsageError(f"{', '.join(given)} need MQTT 5: drop -V mqttv311")
    if params["response_topic"] is not None:
        _check_topic_name(params["response_topic"], "--response-topic")
    correlation = params["correlation_data"]
    return Properties(
        payload_format_indicator=1 if params["payload_format_utf8"] else None,
        message_expiry_interval=params["message_expiry"],
        content_type=params["content_type"],
        response_topic=params["response_topic"],
        correlation_data=os.fsencode(correlation) if correlation is not None else None,
        user_properties=tuple((key, value) for key, value in params["user_property"]),
    )


def _read_payload(params: dict[str, Any]) -> bytes | None:
    """The single payload, read before connecting; None means -l (lines from stdin)."""
    sources = [
        flag
        for flag, given in (
            ("-m", params["message"] is not None),
            ("-f", params["file"] is not None),
            ("-s", params["stdin_file"]),
            ("-l", params["stdin_line"]),
            ("-n", params["null_message"]),
        )
        if given
    ]
    if len(sources) != 1:
        raise click.UsageError(
            "give the payload with exactly one of -m, -f, -s, -l or -n"
            + (f" (got {', '.join(sources)})" if sources else "")
        )
    if params["message"] is not None:
        # fsencode keeps bytes that are not valid UTF-8 in argv as they were.
        return os.fsencode(params["message"])
    if params["file"] is not None:
        if params["file"] == "-":
            return sys.stdin.buffer.read()
        try:
            with open(params["file"], "rb") as file:
                return file.read()
        except OSError as exc:
            raise click.FileError(params["file"], exc.strerror) from exc
    if params["stdin_file"]:
        return sys.stdin.buffer.read()
    if params["null_message"]:
        return b""
    return None


def _require_utf8(payload: bytes) -> None:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(
            f"--payload-format-utf8: the payload is not valid UTF-8 (byte {exc.start})"
        ) from None


class _StdinLines:
    """Lines of stdin, read in a daemon thread so that keep-alive goes on while it waits.

    A thread rather than ``connect_read_pipe`` because stdin may be a regular file,
    which epoll cannot watch. The thread uses ``os.read`` on the descriptor, not
    ``sys.stdin``: a daemon thread blocked inside a buffered reader holds its lock, and
    the interpreter aborts at exit (Ctrl-C) when it finds that lock taken. The thread
    stays at most ``window`` chunks ahead.
    """

    def __init__(self, fd: int, window: int = 16) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._room = threading.Semaphore(window)
        self._buffer = bytearray()
        self._eof = False
        threading.Thread(target=self._read, name="warren-pub-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, 65_536):
                self._room.acquire()
                self._loop.call_soon_threadsafe(self._chunks.put_nowait, chunk)
        except (OSError, RuntimeError):  # stdin error, or the event loop is gone
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._chunks.put_nowait, None)

    async def next_line(self) -> bytes | None:
        """The next line without its line end (LF or CRLF); None at end of input."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)  # a last line without a line end
                self._buffer.clear()
                return line
            chunk = await self._chunks.get()
            if chunk is None:
                self._eof = True
            else:
                self._room.release()
                self._buffer += chunk


@dataclass(slots=True)
class _Publisher:
    common: _Common
    topic: str
    properties: Properties
    retain: bool
    max_inflight: int
    refused: int = field(default=0)

    async def run(self, payload: bytes | None) -> int:
        trace = _Debug() if self.common.debug else None
        client = MQTTClient(
            self.common.endpoint,
            _connect_packet(self.common),
            max_inflight=self.max_inflight,
            trace=trace,
        )
        if trace is not None:
            trace.client = client
        async with client:
            if payload is not None:
                await self._publish(client, payload)
            else:
                lines = _StdinLines(sys.stdin.fileno())
                number = 0
                while (line := await lines.next_line()) is not None:
                    number += 1
                    if self.properties.payload_format_indicator == 1 and not _is_utf8(line):
                        _error(f"line {number} is not valid UTF-8; not sent")
                        self.refused += 1
                        continue
                    await self._publish(client, line)
            await client.wait_published()
            if client.error is not None:
                raise client.error
        return EXIT_ERROR if self.refused else EXIT_OK

    async def _publish(self, client: MQTTClient, payload: bytes) -> None:
        done = await client.start_publish(
            self.topic,
            payload,
            qos=self.common.qos,
            retain=self.retain,
            properties=self.properties,
        )
        done.add_done_callback(self._report)

    def _report(self, done: asyncio.Future[None]) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if isinstance(exc, PublishRefused):
            self.refused += 1
            _error(str(exc))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- sub: output formats ----------------------------------------------------------------

_FORMAT_TOKEN = re.compile(
    r"%(?P<flags>[-0]*)(?P<width>\d*)(?:\.(?P<max>\d+))?(?P<conv>.)|@(?P<time>.)|\\(?P<esc>.)",
    re.DOTALL,
)
_ESCAPES = {
    "\\": b"\\",
    "0": b"\0",
    "a": b"\a",
    "e": b"\x1b",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
}
_FORMAT_CONVERSIONS = "%tpqrlmxXjJIUCDEFPRSA"
_NUMERIC_CONVERSIONS = "lmxXEFSA"  # the ones the 0 flag pads with zeros


@dataclass(frozen=True, slots=True)
class _Field:
    conversion: str
    left: bool = False
    zero: bool = False
    width: int = 0
    max_width: int | None = None


@dataclass(frozen=True, slots=True)
class _TimeField:
    code: str


class _JSONPayloadError(Exception):
    """%J: the payload is not JSON."""


@dataclass(frozen=True, slots=True)
class _Received:
    message: Publish
    received_ns: int


def _parse_format(text: str) -> list[bytes | _Field | _TimeField]:
    """Compile a -F format once; unknown %-sequences are a usage error."""
    parts: list[bytes | _Field | _TimeField] = []
    position = 0
    for match in _FORMAT_TOKEN.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()].encode())
        position = match.end()
        if match["conv"] is not None:
            conversion = match["conv"]
            if conversion not in _FORMAT_CONVERSIONS:
                raise click.BadParameter(
                    f"unknown sequence %{conversion} (see --help)", param_hint="-F/--format"
                )
            if conversion == "%":
                parts.append(b"%")
                continue
            flags = match["flags"]
            parts.append(
                _Field(
                    conversion,
                    left="-" in flags,
                    zero="0" in flags and "-" not in flags,
                    width=int(match["width"] or 0),
                    max_width=int(match["max"]) if match["max"] else None,
                )
            )
        elif match["time"] is not None:
            parts.append(b"@" if match["time"] == "@" else _TimeField(match["time"]))
        else:
            escape = match["esc"]
            parts.append(_ESCAPES.get(escape, b"\\" + escape.encode()))
    if position < len(text):
        parts.append(text[position:].encode())
    return parts


def _render_format(parts: list[bytes | _Field | _TimeField], received: _Received) -> bytes:
    out: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            out.append(part)
        elif isinstance(part, _TimeField):
            out.append(_render_time(part.code, received.received_ns))
        else:
            value = _field_value(part.conversion, received)
            if part.max_width is not None:
                value = value[: part.max_width]
            if len(value) < part.width:
                pad = part.width - len(value)
                if part.left:
                    value = value + b" " * pad
                elif part.zero and part.conversion in _NUMERIC_CONVERSIONS:
                    value = b"0" * pad + value
                else:
                    value = b" " * pad + value
            out.append(value)
    return b"".join(out)


def _render_time(code: str, received_ns: int) -> bytes:
    if code == "N":
        return f"{received_ns % 1_000_000_000:09d}".encode()
    return time.strftime(f"%{code}", time.localtime(received_ns / 1e9)).encode()


def _field_value(conversion: str, received: _Received) -> bytes:
    message = received.message
    props = message.properties
    match conversion:
        case "t":
            return message.topic.encode()
        case "p":
            return message.payload
        case "q":
            return str(message.qos).encode()
        case "r":
            return b"1" if message.retain else b"0"
        case "l":
            return str(len(message.payload)).encode()
        case "m":
            return str(message.packet_id or 0).encode()
        case "x":
            return message.payload.hex().encode()
        case "X":
            return message.payload.hex().upper().encode()
        case "j":
            return _json_record(received, embed_payload=False)
        case "J":
            return _json_record(received, embed_payload=True)
        case "I":
            stamp = time.localtime(received.received_ns / 1e9)
            return time.strftime("%Y-%m-%dT%H:%M:%S%z", stamp).encode()
        case "U":
            seconds, nanos = divmod(received.received_ns, 1_000_000_000)
            return f"{seconds}.{nanos:09d}".encode()
        case "C":
            return (props.content_type or "").encode()
        case "D":
            return props.correlation_data or b""
        case "E":
            return _optional_number(props.message_expiry_interval)
        case "F":
            return _optional_number(props.payload_format_indicator)
        case "P":
            return " ".join(f"{key}:{value}" for key, value in props.user_properties).encode()
        case "R":
            return (props.response_topic or "").encode()
        case "S":
            return ",".join(str(number) for number in props.subscription_identifiers).encode()
        case "A":
            return _optional_number(props.topic_alias)
    raise AssertionError(conversion)  # _parse_format admits only known conversions


def _optional_number(value: int | None) -> bytes:
    return b"" if value is None else str(value).encode()


def _text_or_base64(record: dict[str, Any], key: str, data: bytes) -> None:
    try:
        record[key] = data.decode("utf-8")
    except UnicodeDecodeError:
        record[f"{key}_base64"] = base64.b64encode(data).decode("ascii")


def _json_record(received: _Received, *, embed_payload: bool) -> bytes:
    """One JSON object per message; valid JSON even for binary payloads (then base64)."""
    message = received.message
    stamp = datetime.datetime.fromtimestamp(received.received_ns / 1e9, tz=datetime.UTC)
    record: dict[str, Any] = {
        "tst": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "topic": message.topic,
        "qos": message.qos,
        "retain": int(message.retain),
        "payloadlen": len(message.payload),
    }
    if message.packet_id is not None:
        record["mid"] = message.packet_id
    props = message.properties
    if props != NO_PROPERTIES:
        properties: dict[str, Any] = {}
        if props.payload_format_indicator is not None:
            properties["payload-format-indicator"] = props.payload_format_indicator
        if props.message_expiry_interval is not None:
            properties["message-expiry-interval"] = props.message_expiry_interval
        if props.content_type is not None:
            properties["content-type"] = props.content_type
        if props.response_topic is not None:
            properties["response-topic"] = props.response_topic
        if props.correlation_data is not None:
            _text_or_base64(properties, "correlation-data", props.correlation_data)
        if props.subscription_identifiers:
            properties["subscription-identifiers"] = list(props.subscription_identifiers)
        if props.topic_alias is not None:
            properties["topic-alias"] = props.topic_alias
        if props.user_properties:
            # A list of [key, value] pairs: MQTT keeps order and allows repeated keys.
            properties["user-properties"] = [list(pair) for pair in props.user_properties]
        record["properties"] = properties
    if embed_payload:
        try:
            record["payload"] = json.loads(message.payload)
        except (ValueError, UnicodeDecodeError):
            raise _JSONPayloadError(
                f"the payload on topic {message.topic!r} is not valid JSON"
            ) from None
    else:
        _text_or_base64(record, "payload", message.payload)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _output_format(
    verbose: bool, format_text: str | None, as_json: bool
) -> list[bytes | _Field | _TimeField]:
    if as_json and format_text is not None:
        raise click.UsageError("use either --json or -F, not both")
    if as_json:
        return _parse_format("%j")
    if format_text is not None:
        return _parse_format(format_text)
    return _parse_format("%t %p" if verbose else "%p")


# --- sub ------------------------------------------------------------------------------

_SUB_EPILOG = """\b
Examples:
  warren sub -t 'sensors/#' -v                      print "topic payload"
  warren sub -t a/b -C 1 -W 5                       wait up to 5 s for one message
  warren sub -t 'cfg/#' --retained-only -v          print the retained messages, then exit
  warren sub -t 'x/#' --json | jq -r .payload       JSON lines
  warren sub -t 'x/#' -F '%I %t q%q %p'             a format of your own
  warren sub -c -i audit -q 1 -t 'orders/#' -E      create a persistent session and exit
  warren sub -c -i audit -U 'orders/#'              remove that subscription again
  warren sub -L ws://localhost:8000/mqtt -t 'a/#'   over WebSocket
  warren sub -L mqtts://broker/a/b --cafile ca.pem  over TLS

\b
-F sequences (mosquitto_sub's): %t topic, %p payload, %q QoS, %r retained (0/1),
%l payload length, %m message id, %x / %X payload in hex, %j JSON line, %J JSON line
with the payload embedded as JSON, %I ISO-8601 time, %U Unix time, %% a %.
MQTT 5 properties: %C content type, %D correlation data, %E message expiry,
%F payload format, %P user properties (key:value ...), %R response topic,
%S subscription identifiers, %A topic alias.
Width and flags as in printf: %-20t, %08l, %.10t. @X is strftime's %X (@@ = @,
@N = nanoseconds). Escapes: \\n \\t \\r \\0 \\e \\a \\v \\\\.

\b
JSON lines (--json, %j): {"tst", "topic", "qos", "retain", "payloadlen", "mid" (QoS>0),
"properties" (MQTT 5: "content-type", "correlation-data", "response-topic",
"message-expiry-interval", "payload-format-indicator", "user-properties" as a list of
[key, value] pairs), "payload"}. A payload or correlation data that is not UTF-8
comes as "payload_base64" / "correlation-data_base64".

\b
Exit codes: 0 done, 1 error (or every subscription refused), 2 usage error,
27 timed out (-W), 130 interrupted.
"""


@click.command("sub", context_settings=_CONTEXT_SETTINGS, epilog=_SUB_EPILOG)
@_common_options("sub")
@click.option(
    "-c",
    "--disable-clean-session",
    is_flag=True,
    help="Keep the session (subscriptions, queued QoS 1/2 messages) after disconnecting; needs -i.",
)
@click.option(
    "-x",
    "--session-expiry",
    callback=_parse_session_expiry,
    metavar="SECONDS",
    help="MQTT 5: seconds the broker keeps the session after a disconnect; -1 or inf "
    "for never.  [default: never with -c, else 0]",
)
@click.option(
    "-C",
    "--count",
    type=click.IntRange(min=1),
    help="Exit after printing this many messages.",
)
@click.option(
    "-R",
    "--no-retained",
    is_flag=True,
    help="Do not print retained (stale) messages, only new ones.",
)
@click.option(
    "--retained-only",
    is_flag=True,
    help="Print only retained messages; exit at the first message that is not.",
)
@click.option(
    "-E",
    "--exit-on-subscribe",
    is_flag=True,
    help="Exit once the broker has acknowledged the subscriptions (e.g. with -c).",
)
@click.option(
    "-U",
    "--unsubscribe",
    "unsubscribe",
    multiple=True,
    metavar="FILTER",
    help="Unsubscribe from this filter (after -t); repeat for more. With -c it edits a "
    "stored session; without -t the command exits afterwards.",
)
@click.option("-v", "--verbose", is_flag=True, help='Print "topic payload".')
@click.option(
    "-F",
    "--format",
    "format_text",
    metavar="FORMAT",
    help="Output format, e.g. '%t %p'; sequences below.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@click.option("-N", "--no-eol", is_flag=True, help="Print no newline after each message.")
@click.pass_context
def sub(ctx: click.Context, /, **params: Any) -> None:
    """Subscribe to topics and print the messages (like mosquitto_sub)."""
    common = _resolve_common(ctx, "sub", params)
    topics: list[str] = ([common.url_topic] if common.url_topic else []) + list(params["topic"])
    unsubscribe: tuple[str, ...] = params["unsubscribe"]
    if not topics and not unsubscribe:
        raise click.UsageError("give at least one topic filter with -t (or in the -L URL)")
    for topic_filter in (*topics, *unsubscribe):
        _check_topic_filter(topic_filter)
    if params["no_retained"] and params["retained_only"]:
        raise click.UsageError("-R and --retained-only exclude each other")
    persistent: bool = params["disable_clean_session"]
    if persistent and params["client_id"] is None:
        raise click.UsageError("-c needs a fixed client id: add -i")
    expiry: int | None = params["session_expiry"]
    if expiry is not None and common.protocol_level != 5:
        raise click.UsageError("-x needs MQTT 5: drop -V mqttv311")
    if expiry is None:
        expiry = _SESSION_NEVER_EXPIRES if persistent else 0
    output = _output_format(params["verbose"], params["format_text"], params["as_json"])
    job = _Subscriber(
        common=common,
        connect=_connect_packet(common, clean_start=not persistent, session_expiry=expiry),
        topics=tuple(topics),
        unsubscribe=unsubscribe,
        output=output,
        end=b"" if params["no_eol"] else b"\n",
        count=params["count"],
        no_retained=params["no_retained"],
        retained_only=params["retained_only"],
        exit_on_subscribe=params["exit_on_subscribe"],
    )
    _run(job.run(), common.timeout)


@dataclass(slots=True)
class _Subscriber:
    common: _Common
    connect: Connect
    topics: tuple[str, ...]
    unsubscribe: tuple[str, ...]
    output: list[bytes | _Field | _TimeField]
    end: bytes
    count: int | None
    no_retained: bool
    retained_only: bool
    exit_on_subscribe: bool

    async def run(self) -> int:
        trace = _Debug() if self.common.debug else None
        client = MQTTClient(self.common.endpoint, self.connect, trace=trace)
        if trace is not None:
            trace.client = client
        async with client:
            if self.topics:
                requests = tuple(SubscriptionRequest(t, self.common.qos) for t in self.topics)
                suback = await client.subscribe(requests)
                if not self._check_suback(suback, client.protocol_level):
                    return EXIT_ERROR
            if self.unsubscribe:
                unsuback = await client.unsubscribe(self.unsubscribe)
                self._check_unsuback(unsuback)
            if self.exit_on_subscribe or not self.topics:
                return EXIT_OK
            return await self._print_messages(client)

    def _check_suback(self, suback: SubAck, protocol_level: int) -> bool:
        """Report refused subscriptions; False when every one was refused."""
        granted = 0
        for topic_filter, code in zip(self.topics, suback.reason_codes, strict=False):
            if code < 0x80:
                granted += 1
                continue
            # 3.1.1 has one failure code, 0x80 [MQTT-3.9.3-2]; MQTT 5 says why.
            why = "refused by the broker" if protocol_level == 4 else reason_text(code)
            _error(f"subscription to {topic_filter!r} failed: {why}")
        if granted == 0:
            _error("every subscription was refused")
            return False
        return True

    def _check_unsuback(self, unsuback: UnsubAck) -> None:
        # MQTT 5 says per filter what happened; 3.1.1's UNSUBACK has no payload.
        for topic_filter, code in zip(self.unsubscribe, unsuback.reason_codes, strict=False):
            if code == 0x11:
                click.echo(f"Note: there was no subscription to {topic_filter!r}", err=True)
            elif code >= 0x80:
                _error(f"unsubscribing from {topic_filter!r} failed: {reason_text(code)}")

    async def _print_messages(self, client: MQTTClient) -> int:
        stdout = sys.stdout.buffer
        printed = 0
        while True:
            message = await client.next_message()
            received = _Received(message, time.time_ns())
            if self.no_retained and message.retain:
                continue
            if self.retained_only and not message.retain:
                return EXIT_OK
            try:
                line = _render_format(self.output, received)
            except _JSONPayloadError as exc:
                _error(str(exc))
                continue
            stdout.write(line + self.end)
            stdout.flush()
            printed += 1
            if self.count is not None and printed >= self.count:
                return EXIT_OK


# --- python -m warren.cli.pubsub ------------------------------------------------------


@click.group(context_settings=_CONTEXT_SETTINGS)
def _standalone() -> None:
    """Warren's MQTT clients (``pub``, ``sub``) without the ``warren`` entry point."""


_standalone.add_command(pub)
_standalone.add_command(sub)

if __name__ == "__main__":
    _standalone(prog_name="warren")
