"""Configuration properties of a messaging service, and what they turn into.

Keys are those of the Solace PubSub+ API, accepted with or without their
``solace.messaging.`` prefix (``transport.host`` and
``solace.messaging.transport.host`` are the same key); the older
``authentication.scheme.basic.*`` spellings are accepted too. Values may be strings
(``"3"``) where a number is meant, as in property files.

``transport.host`` is one address or a comma-separated list, tried in order:
``tcp://host:port`` (port 55555 when left out; a bare ``host`` or ``host:port`` means
tcp) or ``ws://host:port/path`` (the native protocol over WebSocket).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from warren.messaging._errors import InvalidConfigurationError
from warren.messaging._retry import DEFAULT_RETRY_INTERVAL_MS, RetryStrategy

__all__ = [
    "DEFAULT_NATIVE_PORT",
    "Endpoint",
    "ServiceConfig",
    "canonical_key",
    "parse_hosts",
    "service_config",
]

log = logging.getLogger("warren.messaging")

DEFAULT_NATIVE_PORT: Final = 55555
PREFIXES: Final = ("solace.messaging.", "warren.messaging.")

# Canonical keys (prefix removed) -> the ServiceConfig setting they feed.
HOST: Final = "transport.host"
VPN_NAME: Final = "service.vpn-name"
USERNAME: Final = "authentication.basic.username"
PASSWORD: Final = "authentication.basic.password"
SCHEME: Final = "authentication.scheme"
CLIENT_NAME: Final = "client.name"
RECONNECTION_ATTEMPTS: Final = "transport.reconnection-attempts"
RECONNECTION_WAIT: Final = "transport.reconnection-attempts-wait-interval"
CONNECTION_RETRIES: Final = "transport.connection-retries"
CONNECT_TIMEOUT: Final = "transport.connection-attempts-timeout"
KEEP_ALIVE_INTERVAL: Final = "transport.keep-alive-interval"
GENERATE_SENDER_ID: Final = "service.generate-sender-id"
RECEIVE_WINDOW: Final = "transport.receive-window"  # Warren: flow-control window

_ALIASES: Final = {
    "authentication.scheme.basic.username": USERNAME,
    "authentication.scheme.basic.password": PASSWORD,
}
_BASIC_SCHEMES: Final = ("AUTHENTICATION_SCHEME_BASIC", "basic")


def canonical_key(key: str) -> str:
    """``key`` without its ``solace.messaging.`` prefix, older spellings renamed."""
    for prefix in PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return _ALIASES.get(key, key)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker address: ``tcp`` or ``ws``, host, port and (ws) path."""

    scheme: str
    host: str
    port: int
    path: str = "/"

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.scheme == "ws" else ""
        return f"{self.scheme}://{host}:{self.port}{path}"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything a messaging service needs to connect, parsed and checked."""

    endpoints: tuple[Endpoint, ...]
    vpn: str | None = None
    username: str | None = None
    password: str | None = None
    client_name: str | None = None
    keepalive: int = 60  # seconds, as proposed in CONNECT
    connect_timeout: float = 3.0  # seconds per attempt
    connection_retry: RetryStrategy = field(default_factory=RetryStrategy.never_retry)
    reconnection_retry: RetryStrategy = field(
        default_factory=lambda: RetryStrategy(3, DEFAULT_RETRY_INTERVAL_MS)
    )
    receive_window: int = 4096  # messages the broker may send ahead (0: no flow control)
    generate_sender_id: bool = False

    @property
    def uris(self) -> str:
        return ",".join(e.uri for e in self.endpoints)


def parse_hosts(text: str) -> tuple[Endpoint, ...]:
    """Parse ``transport.host``: one address or a comma-separated list."""
    endpoints = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "://" not in item:
            item = "tcp://" + item
        parts = urlsplit(item)
        scheme = parts.scheme.lower()
        if scheme in ("tcps", "wss", "https"):
            raise InvalidConfigurationError(
                f"{raw.strip()!r}: TLS is not supported by the Warren native client yet; "
                "use tcp:// or ws://"
            )
        if scheme == "http":
            scheme = "ws"
        if scheme not in ("tcp", "ws"):
            raise InvalidConfigurationError(
                f"{raw.strip()!r}: unknown scheme {parts.scheme!r}; use tcp://host:port or "
                "ws://host:port/path"
            )
        if not parts.hostname:
            raise InvalidConfigurationError(f"{raw.strip()!r}: no host name")
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidConfigurationError(f"{raw.strip()!r}: {exc}") from None
        if port is None:
            port = DEFAULT_NATIVE_PORT if scheme == "tcp" else 80
        endpoints.append(Endpoint(scheme, parts.hostname, port, parts.path or "/"))
    if not endpoints:
        raise InvalidConfigurationError(f"transport.host {text!r} names no broker")
    return tuple(endpoints)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidConfigurationError(f"{key} must be a number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidConfigurationError(f"{key} must be a number, not {value!r}") from None


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int):
        return bool(value)
    raise InvalidConfigurationError(f"{key} must be true or false, not {value!r}")


def service_config(
    properties: Mapping[str, Any],
    *,
    reconnection_retry: RetryStrategy | None = None,
    connection_retry: RetryStrategy | None = None,
    client_name: str | None = None,
) -> ServiceConfig:
    """Check ``properties`` and make a :class:`ServiceConfig` (strategies set by the
    builder win over the equivalent properties)."""
    props: dict[str, Any] = {}
    for key, value in properties.items():
        if not isinstance(key, str):
            raise InvalidConfigurationError(f"property keys are strings, not {key!r}")
        props[canonical_key(key)] = value
    if HOST not in props:
        raise InvalidConfigurationError(
            "no broker address: set 'solace.messaging.transport.host' (or 'transport.host'), "
            "e.g. 'tcp://localhost:55555'"
        )
    endpoints = parse_hosts(str(props.pop(HOST)))
    settings: dict[str, Any] = {"endpoints": endpoints}
    for key, name in ((VPN_NAME, "vpn"), (USERNAME, "username"), (PASSWORD, "password"),
                      (CLIENT_NAME, "client_name")):
        if key in props:
            value = props.pop(key)
            settings[name] = None if value is None else str(value)
    scheme = props.pop(SCHEME, None)
    if scheme is not None and str(scheme) not in _BASIC_SCHEMES:
        raise InvalidConfigurationError(
            f"authentication scheme {scheme!r} is not supported; Warren offers basic "
            "(username and password)"
        )
    if KEEP_ALIVE_INTERVAL in props:
        ms = _as_int(KEEP_ALIVE_INTERVAL, props.pop(KEEP_ALIVE_INTERVAL))
        if ms < 0:
            raise InvalidConfigurationError(f"{KEEP_ALIVE_INTERVAL} must be >= 0, not {ms}")
        settings["keepalive"] = min(0xFFFF, math.ceil(ms / 1000))
    if CONNECT_TIMEOUT in props:
        ms = _as_int(CONNECT_TIMEOUT, props.pop(CONNECT_TIMEOUT))
        settings["connect_timeout"] = max(ms, 1) / 1000
    if RECEIVE_WINDOW in props:
        window = _as_int(RECEIVE_WINDOW, props.pop(RECEIVE_WINDOW))
        if not 0 <= window <= 0xFFFF_FFFF:
            raise InvalidConfigurationError(f"{RECEIVE_WINDOW} must be 0..2^32-1, not {window}")
        settings["receive_window"] = window
    if GENERATE_SENDER_ID in props:
        settings["generate_sender_id"] = _as_bool(GENERATE_SENDER_ID, props.pop(GENERATE_SENDER_ID))
    reconnect_attempts = props.pop(RECONNECTION_ATTEMPTS, None)
    reconnect_wait = props.pop(RECONNECTION_WAIT, None)
    connection_retries = props.pop(CONNECTION_RETRIES, None)
    interval = (
        DEFAULT_RETRY_INTERVAL_MS if reconnect_wait is None
        else _as_int(RECONNECTION_WAIT, reconnect_wait)
    )
    if reconnection_retry is None and (
        reconnect_attempts is not None or reconnect_wait is not None
    ):
        attempts = 3 if reconnect_attempts is None else _as_int(
            RECONNECTION_ATTEMPTS, reconnect_attempts
        )
        reconnection_retry = RetryStrategy.parametrized_retry(attempts, interval)
    if connection_retry is None and connection_retries is not None:
        connection_retry = RetryStrategy.parametrized_retry(
            _as_int(CONNECTION_RETRIES, connection_retries), interval
        )
    if reconnection_retry is not None:
        settings["reconnection_retry"] = reconnection_retry
    if connection_retry is not None:
        settings["connection_retry"] = connection_retry
    if client_name is not None:
        settings["client_name"] = client_name
    for key in props:
        log.warning("property %r is not supported by warren.messaging; ignored", key)
    return ServiceConfig(**settings)
