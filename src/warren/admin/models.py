"""Request and response models of the management API (they are its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BrokerInfo",
    "BrokerStatsModel",
    "BrowsedMessage",
    "ConsumerInfo",
    "ListenerInfo",
    "Problem",
    "QueueBrowse",
    "QueueCreate",
    "QueueDeleted",
    "QueueDetail",
    "QueueLimitsModel",
    "QueuePurged",
    "QueueSummary",
    "SessionInfo",
    "VpnInfo",
]

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-][A-Za-z0-9_.:@-]{0,254}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Model):
    """An error, as RFC 7807 ``application/problem+json``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = Field(description="what went wrong and how to fix it")
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="validation errors (422 only): location and message of each"
    )


class ListenerInfo(_Model):
    protocol: str
    host: str
    port: int
    path: str | None = None
    url: str


class BrokerInfo(_Model):
    version: str
    pid: int
    uptime_seconds: int
    listeners: list[ListenerInfo]
    vpns: list[str]


class BrokerStatsModel(_Model):
    uptime_seconds: int
    clients_connected: int
    clients_maximum: int
    sessions: int = Field(description="sessions known, connected or persistent offline")
    connections_refused: int
    protocol_errors: int
    messages_received: int = Field(description="packets of any kind read from clients")
    messages_sent: int
    publish_received: int = Field(description="application messages in")
    publish_sent: int = Field(description="application messages out")
    dropped: int
    bytes_received: int
    bytes_sent: int
    subscriptions: int
    retained_messages: int
    queues: int
    queued_messages: int
    queued_bytes: int


class VpnInfo(_Model):
    name: str
    acl_default: Literal["allow", "deny"]
    sessions: int
    connected_sessions: int
    subscriptions: int
    retained_messages: int
    queues: int


class SessionInfo(_Model):
    client_id: str
    username: str | None
    connected: bool
    persistent: bool
    expiry_interval: int = Field(description="seconds an offline session is kept")
    subscriptions: list[str]
    queued: int = Field(description="messages waiting to be sent")
    inflight: int = Field(description="messages sent, awaiting acknowledgement")
    dropped: int


class QueueLimitsModel(_Model):
    message_ttl_ms: int | None = Field(None, ge=0, description="how long a message may wait")
    expires_ms: int | None = Field(None, ge=1, description="delete the queue after this idle time")
    max_length: int | None = Field(None, ge=0, description="ready messages")
    max_length_bytes: int | None = Field(None, ge=0, description="ready payload bytes")
    overflow: Literal["drop-head", "reject-publish", "reject-publish-dlx"] = "drop-head"
    max_priority: int | None = Field(None, ge=1, le=255)
    max_redelivery: int | None = Field(
        None, ge=0,
        description="redeliveries a message may have (a consumer's nack or requeue, or its "
        "connection ending with the message unacknowledged); the return after the last "
        "dead-letters it with reason delivery_limit. 0: never redelivered; null: no limit. "
        "AMQP: x-delivery-limit",
    )
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    dead_letter_queue: str | None = Field(
        None, min_length=1,
        description="where dead messages go when there is no dead_letter_exchange: a queue "
        "of the same VPN, by name (the native protocol's dead-message queue is "
        "'#DEAD_MSG_QUEUE'); without either they are dropped and counted",
    )


class QueueCreate(_Model):
    name: str = Field(pattern=QUEUE_NAME_PATTERN, examples=["orders"])
    durable: bool = True
    exclusive: bool = Field(
        False, description="exclusive access: one consumer at a time; a second is refused"
    )
    limits: QueueLimitsModel = Field(default_factory=QueueLimitsModel)
    subscriptions: list[str] = Field(
        default_factory=list,
        description="topic filters in MQTT syntax ('orders/+/new', 'audit/#'): every "
        "message published to a matching topic, by any protocol, is queued",
        examples=[["orders/#"]],
    )


class ConsumerInfo(_Model):
    tag: str
    no_ack: bool
    prefetch: int
    unacked: int
    exclusive: bool


class QueueSummary(_Model):
    vpn: str
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    messages: int = Field(description="ready messages")
    bytes: int = Field(description="ready payload bytes")
    unacked: int
    consumers: int


class QueueDetail(QueueSummary):
    limits: QueueLimitsModel
    dead_lettered: int = Field(description="messages handed to the dead-letter target")
    dropped: int = Field(description="dead messages dropped: the queue has no dead-letter "
                         "target, or it does not exist or refused them")
    redelivery_exceeded: int = Field(
        description="messages that reached max_redelivery (dead-lettered or dropped)"
    )
    subscriptions: list[str]
    consumer_list: list[ConsumerInfo]


class BrowsedMessage(_Model):
    position: int = Field(description="0 = next to be delivered")
    topic: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    size: int
    content_type: str | None
    priority: int
    redelivered: bool
    redeliveries: int = Field(description="times it came back to the queue after a delivery")
    message_id: str | None
    expires_in_ms: int | None
    properties: dict[str, str]


class QueueBrowse(_Model):
    vpn: str
    queue: str
    total: int = Field(description="ready messages in the queue")
    messages: list[BrowsedMessage]


class QueuePurged(_Model):
    vpn: str
    queue: str
    purged: int


class QueueDeleted(_Model):
    vpn: str
    queue: str
    deleted_messages: int
