"""Configuration: one TOML file validated into typed models.

Precedence: command-line flags > environment (``WARREN_...``) > file > defaults.
An unknown key or a bad value stops start-up with the file, the key and what would
be valid (:class:`warren.errors.ConfigError`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from warren.core.acl import AclRule, Operation
from warren.core.topics import InvalidTopic, parse_mqtt_filter
from warren.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "AclRuleConfig",
    "AmqpConfig",
    "ListenerConfig",
    "MqttConfig",
    "ServerConfig",
    "VpnConfig",
    "WarrenConfig",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    data_dir: Path = Path("./warren-data")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    sys_interval: float = Field(10.0, ge=0, description="seconds between $SYS updates; 0 = off")
    # Where durable state lives (docs/storage.md): "sqlite" keeps it in one file in
    # data_dir and survives restarts and crashes; "memory" keeps nothing across a
    # restart (tests, throwaway brokers).
    storage: Literal["sqlite", "memory"] = "sqlite"
    # SQLite only: "full" fsyncs every commit (survives power loss); "normal" does
    # not (survives kill -9, may lose the last commits on an OS crash).
    synchronous: Literal["full", "normal"] = "full"
    # SQLite only: the largest the data file may grow, in bytes (None: the disk's
    # size). Beyond it the store refuses new persistent messages, as on a full disk.
    storage_max_bytes: int | None = Field(None, ge=65536)


class ListenerConfig(_Strict):
    protocol: Literal["mqtt", "mqtt-ws", "native", "native-ws", "amqp", "admin"]
    # Loopback by default, as Mosquitto 2 does: nothing authenticates clients yet, so
    # exposing the broker is a decision (--host 0.0.0.0 or host = "0.0.0.0").
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    path: str = "/mqtt"
    vpn: str = "default"

    @model_validator(mode="before")
    @classmethod
    def _admin_defaults(cls, data: Any) -> Any:
        # The management API has no authentication yet: loopback unless asked.
        if isinstance(data, dict) and data.get("protocol") == "admin":
            data = {"host": "127.0.0.1", "port": 8080, **data}
        return data

    @field_validator("path")
    @classmethod
    def _path_absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("path must start with '/', e.g. '/mqtt'")
        return v


class MqttConfig(_Strict):
    max_packet_size: int = Field(1_048_576, ge=64, le=268_435_455)
    server_keep_alive: int = Field(0, ge=0, le=65535, description="0 = honour the client's")
    receive_maximum: int = Field(1024, ge=1, le=65535)
    topic_alias_maximum: int = Field(16, ge=0, le=65535)
    max_queued_messages: int = Field(1000, ge=0)
    queue_qos0_messages: bool = False
    max_session_expiry: int = Field(4_294_967_295, ge=0, le=4_294_967_295)
    max_outbound_bytes: int = Field(
        8 * 1024 * 1024,
        ge=4096,
        description="per-connection write buffer before the slow-consumer policy applies",
    )
    slow_consumer: Literal["queue", "disconnect"] = "queue"
    max_client_id_length: int = Field(128, ge=23, le=65535)
    # Reason code of an ACL-refused SUBSCRIBE in MQTT 5: "not-authorized" (0x87) tells
    # the client why; "unspecified" (0x80) does not disclose that a rule exists.
    acl_refusal: Literal["not-authorized", "unspecified"] = "not-authorized"


class AmqpConfig(_Strict):
    """``[amqp]``: AMQP 0-9-1 listeners' tuning and the memory alarm (docs/amqp.md)."""

    heartbeat: int = Field(60, ge=0, le=65535, description="seconds offered in connection.tune")
    # Ready message bytes in all queues of all VPNs above which AMQP publishers get
    # connection.blocked and are no longer read, until the bytes fall to the low
    # watermark (RabbitMQ's memory alarm). 0 = never block.
    high_watermark_bytes: int = Field(512 * 1024 * 1024, ge=0)
    low_watermark_bytes: int | None = Field(
        None, ge=0, description="default: half the high watermark"
    )

    @model_validator(mode="after")
    def _low_below_high(self) -> AmqpConfig:
        low = self.low_watermark_bytes
        if low is not None and low > self.high_watermark_bytes:
            raise ValueError(
                f"low_watermark_bytes ({low}) must not be above high_watermark_bytes "
                f"({self.high_watermark_bytes})"
            )
        return self

    @property
    def low_watermark(self) -> int:
        low = self.low_watermark_bytes
        return self.high_watermark_bytes // 2 if low is None else low


class AclRuleConfig(_Strict):
    action: Literal["allow", "deny"]
    operation: Literal["publish", "subscribe", "all"] = "all"
    topic: str
    user: str = "*"

    @field_validator("topic")
    @classmethod
    def _topic_is_filter(cls, v: str) -> str:
        try:
            parse_mqtt_filter(v)
        except InvalidTopic as exc:
            raise ValueError(f"not a valid MQTT topic filter: {exc}") from exc
        return v

    def to_rule(self, source: str) -> AclRule:
        return AclRule(
            allow=self.action == "allow",
            operation=Operation(self.operation),
            filter=parse_mqtt_filter(self.topic),
            user=self.user,
            source=source,
        )


class VpnConfig(_Strict):
    acl_default: Literal["allow", "deny"] = "allow"
    acl_file: Path | None = None
    acl: list[AclRuleConfig] = Field(default_factory=list)


class AclFile(_Strict):
    acl: list[AclRuleConfig] = Field(default_factory=list)


def _default_listeners() -> list[ListenerConfig]:
    return [
        ListenerConfig(protocol="mqtt", port=1883),
        ListenerConfig(protocol="mqtt-ws", port=8000, path="/mqtt"),
        ListenerConfig(protocol="native", port=55555),
        ListenerConfig(protocol="amqp", port=5672),
    ]


class WarrenConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    listener: list[ListenerConfig] = Field(default_factory=_default_listeners)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    amqp: AmqpConfig = Field(default_factory=AmqpConfig)
    vpn: dict[str, VpnConfig] = Field(default_factory=lambda: {"default": VpnConfig()})

    # Where relative paths in the file are resolved from (not a TOML key).
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _listeners_name_known_vpns(self) -> WarrenConfig:
        for i, listener in enumerate(self.listener):
            if listener.vpn not in self.vpn:
                known = ", ".join(sorted(self.vpn)) or "none"
                raise ValueError(
                    f"listener #{i + 1} names vpn {listener.vpn!r}, which is not defined "
                    f"(defined: {known}); add a [vpn.{listener.vpn}] table"
                )
        return self

    def acl_rules(self, vpn_name: str) -> list[AclRule]:
        """Inline rules first, then the ACL file's, in file order."""
        vpn = self.vpn[vpn_name]
        rules = [r.to_rule(f"[vpn.{vpn_name}.acl] #{i + 1}") for i, r in enumerate(vpn.acl)]
        if vpn.acl_file is not None:
            path = vpn.acl_file if vpn.acl_file.is_absolute() else self.base_dir / vpn.acl_file
            acl = _load_model(AclFile, path)
            rules += [r.to_rule(f"{path} rule #{i + 1}") for i, r in enumerate(acl.acl)]
        return rules


def _format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `warren serve --help` for the file format)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _load_model(model: type[M], path: Path, **extra: Any) -> M:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(str(path), exc)) from exc


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> WarrenConfig:
    """Load ``path`` (or defaults), then apply ``overrides``.

    ``overrides`` keys: ``host``, ``mqtt_port``, ``ws_port``, ``native_port``, ``amqp_port``,
    ``data_dir``, ``log_level`` (from flags or the environment; None values are ignored).
    """
    if path is not None:
        config = _load_model(WarrenConfig, path, base_dir=path.parent)
    else:
        config = WarrenConfig()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not overrides:
        return config
    server = config.server
    if "data_dir" in overrides:
        server = server.model_copy(update={"data_dir": Path(overrides["data_dir"])})
    if "log_level" in overrides:
        server = server.model_copy(update={"log_level": overrides["log_level"]})
    listeners = []
    for listener in config.listener:
        update: dict[str, Any] = {}
        if "host" in overrides:
            update["host"] = overrides["host"]
        if listener.protocol == "mqtt" and "mqtt_port" in overrides:
            update["port"] = int(overrides["mqtt_port"])
        if listener.protocol == "mqtt-ws" and "ws_port" in overrides:
            update["port"] = int(overrides["ws_port"])
        if listener.protocol == "native" and "native_port" in overrides:
            update["port"] = int(overrides["native_port"])
        if listener.protocol == "amqp" and "amqp_port" in overrides:
            update["port"] = int(overrides["amqp_port"])
        listeners.append(listener.model_copy(update=update))
    return config.model_copy(update={"server": server, "listener": listeners})
