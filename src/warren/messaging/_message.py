"""Messages: built for publishing (OutboundMessage) and received (InboundMessage).

Both are views of the native protocol's message (``warren.codecs.native.Message``),
whose fields are Warren's protocol-neutral message fields (DESIGN.md, "Message
properties across protocols"). The Solace-style names map as follows:

=============================  ==========================  ======================
builder / getter               native field                MQTT 5 / AMQP 0-9-1
=============================  ==========================  ======================
payload                        ``p`` (``u8`` for a str)    payload / body
with_http_content_header       ``ct`` content type         Content Type
with_correlation_id            ``cd`` (UTF-8 bytes)        Correlation Data
(request/reply)                ``rt`` reply-to             Response Topic
with_property(k, v)            ``up`` user properties      User Property / headers
with_expiration (epoch ms)     ``ttl`` (time left, ms)     Message Expiry (s)
with_priority                  ``pr``                      - / priority
with_application_message_id    ``mid``                     - / message_id
with_sender_id                 ``sid``                     -
=============================  ==========================  ======================

User property values travel as strings (MQTT and AMQP peers see the same).
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar

from warren.codecs.native import Message as NativeMessage
from warren.messaging._errors import IllegalArgumentError, InvalidDataTypeError

__all__ = [
    "BytesToObject",
    "InboundMessage",
    "MessageDiscardNotification",
    "ObjectToBytes",
    "OutboundMessage",
    "OutboundMessageBuilder",
]

log = logging.getLogger("warren.messaging")

T = TypeVar("T")

# Message property keys of the Solace API that map to message fields.
_PREFIX: Final = "solace.messaging.message."
PRIORITY: Final = _PREFIX + "priority"
CORRELATION_ID: Final = _PREFIX + "correlation-id"
APPLICATION_MESSAGE_ID: Final = _PREFIX + "application-message-id"
SENDER_ID: Final = _PREFIX + "sender-id"
HTTP_CONTENT_TYPE: Final = _PREFIX + "http-content"
TIME_TO_LIVE: Final = _PREFIX + "persistent.time-to-live"
EXPIRATION: Final = _PREFIX + "persistent.expiration"
_FIELD_KEYS: Final = {
    PRIORITY: "priority",
    CORRELATION_ID: "correlation_id",
    _PREFIX + "correlationId": "correlation_id",  # the API's older spelling
    APPLICATION_MESSAGE_ID: "message_id",
    SENDER_ID: "sender_id",
    HTTP_CONTENT_TYPE: "content_type",
    TIME_TO_LIVE: "ttl_ms",
    EXPIRATION: "expiration",
}


class ObjectToBytes(abc.ABC, Generic[T]):
    """Turns an application object into a payload (``build(obj, converter=...)``)."""

    @abc.abstractmethod
    def to_bytes(self, src: T) -> bytes:
        """The payload for ``src``."""


class BytesToObject(abc.ABC, Generic[T]):
    """Turns a payload into an application object (``get_and_convert_payload``)."""

    @abc.abstractmethod
    def convert(self, src: bytearray) -> T:
        """The object for the payload ``src``."""


def _property_text(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InvalidDataTypeError(
        f"user property {key!r}: a {type(value).__name__} cannot be carried; user properties "
        "are strings on the wire (str, int, float and bool are converted)"
    )


def _correlation_bytes(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidDataTypeError(f"a correlation id is a str, not {type(value).__name__}")


def _check_str(name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidDataTypeError(f"{name} must be a str, not {type(value).__name__}")


class _Fields:
    """The settable fields of an outbound message (builder state, then frozen)."""

    __slots__ = (
        "content_type", "correlation_data", "expiration", "message_id", "priority",
        "properties", "reply_to", "retain", "sender_id", "ttl_ms",
    )  # fmt: skip

    def __init__(self) -> None:
        self.properties: dict[str, str] = {}
        self.content_type: str | None = None
        self.correlation_data: bytes | None = None
        self.reply_to: str | None = None
        self.expiration: int | None = None  # epoch ms
        self.ttl_ms: int | None = None
        self.priority: int | None = None
        self.message_id: str | None = None
        self.sender_id: str | None = None
        self.retain = False

    def copy(self) -> _Fields:
        other = _Fields()
        for name in _Fields.__slots__:
            setattr(other, name, getattr(self, name))
        other.properties = dict(self.properties)
        return other

    def set(self, key: str, value: Any) -> None:
        """Set ``key``: a message property of the API, or else a user property."""
        name = _FIELD_KEYS.get(key)
        if name is None:
            if key.startswith(_PREFIX):
                log.warning("message property %r cannot be carried by Warren; ignored", key)
            elif value is None:
                self.properties.pop(key, None)
            else:
                self.properties[key] = _property_text(key, value)
            return
        if name == "priority":
            self.set_priority(value)
        elif name == "correlation_id":
            self.correlation_data = None if value is None else _correlation_bytes(value)
        elif name in ("ttl_ms", "expiration"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidDataTypeError(f"{key} must be an int (milliseconds)")
            setattr(self, name, value)
        else:
            setattr(self, name, _check_str(key, value))

    def set_priority(self, priority: object) -> None:
        if priority is None:
            self.priority = None
            return
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidDataTypeError(f"a priority is an int 0..9, not {priority!r}")
        if priority < 0:
            raise IllegalArgumentError(f"a priority is 0..9, not {priority}")
        self.priority = min(priority, 9)  # above 9 counts as 9, as in the Solace API


class OutboundMessage:
    """A message ready to publish: payload and properties, no destination yet."""

    __slots__ = ("_fields", "_payload", "_utf8")

    def __init__(self, payload: bytes, utf8: bool, fields: _Fields) -> None:
        self._payload = payload
        self._utf8 = utf8
        self._fields = fields

    def to_native(
        self,
        topic: str,
        *,
        extra: Mapping[str, Any] | None = None,
        reply_to: str | None = None,
        correlation_data: bytes | None = None,
        sender_id: str | None = None,
    ) -> NativeMessage:
        """The wire message for a publish to ``topic`` (fields given here win)."""
        f = self._fields
        if extra:
            f = f.copy()
            for key, value in extra.items():
                f.set(key, value)
        ttl = f.ttl_ms
        if f.expiration is not None:
            ttl = max(0, f.expiration - int(time.time() * 1000))
        return NativeMessage(
            topic,
            self._payload,
            retain=f.retain,
            content_type=f.content_type,
            correlation_data=correlation_data if correlation_data is not None
            else f.correlation_data,
            response_topic=reply_to if reply_to is not None else f.reply_to,
            user_properties=tuple(f.properties.items()),
            payload_format_utf8=self._utf8,
            ttl_ms=ttl,
            priority=f.priority,
            message_id=f.message_id,
            sender_id=f.sender_id if f.sender_id is not None else sender_id,
        )

    @staticmethod
    def from_native(m: NativeMessage) -> OutboundMessage:
        """The outbound form of a wire message (for failure reports)."""
        f = _Fields()
        f.properties = dict(m.user_properties)
        f.content_type = m.content_type
        f.correlation_data = m.correlation_data
        f.reply_to = m.response_topic
        f.ttl_ms = m.ttl_ms
        f.priority = m.priority
        f.message_id = m.message_id
        f.sender_id = m.sender_id
        f.retain = m.retain
        return OutboundMessage(m.payload, m.payload_format_utf8, f)

    # -- getters (as on InboundMessage) ----------------------------------------------

    def get_payload_as_bytes(self) -> bytearray:
        return bytearray(self._payload)

    def get_payload_as_string(self) -> str | None:
        try:
            return self._payload.decode()
        except UnicodeDecodeError:
            return None

    def get_properties(self) -> dict[str, str]:
        return dict(self._fields.properties)

    def has_property(self, name: str) -> bool:
        return name in self._fields.properties

    def get_property(self, name: str) -> str | None:
        return self._fields.properties.get(name)

    def get_correlation_id(self) -> str | None:
        data = self._fields.correlation_data
        return None if data is None else data.decode(errors="backslashreplace")

    def get_expiration(self) -> int | None:
        return self._fields.expiration

    def get_priority(self) -> int | None:
        return self._fields.priority

    def get_application_message_id(self) -> str | None:
        return self._fields.message_id

    def get_sender_id(self) -> str | None:
        return self._fields.sender_id

    def get_content_type(self) -> str | None:
        return self._fields.content_type

    def __str__(self) -> str:
        return _describe(self, None, self._payload)


class OutboundMessageBuilder:
    """Builds messages; settings stay for the next ``build`` (reuse it in a loop).

    ``service.message_builder().with_property("k", "v").with_priority(3)
    .build("payload")``.
    """

    def __init__(self) -> None:
        self._fields = _Fields()

    def from_properties(self, configuration: Mapping[str, Any]) -> OutboundMessageBuilder:
        """Set several properties at once (message property keys or user properties)."""
        for key, value in configuration.items():
            self._fields.set(key, value)
        return self

    def with_property(self, property_key: str, property_value: Any) -> OutboundMessageBuilder:
        """A user property (value carried as a string), or a message property key."""
        if not isinstance(property_key, str) or not property_key:
            raise IllegalArgumentError(f"a property key is a non-empty str, not {property_key!r}")
        self._fields.set(property_key, property_value)
        return self

    def with_expiration(self, timestamp: int | None) -> OutboundMessageBuilder:
        """Expire at ``timestamp`` (milliseconds since the Unix epoch); None: never."""
        self._fields.set(EXPIRATION, timestamp)
        return self

    def with_time_to_live(self, ttl_ms: int | None) -> OutboundMessageBuilder:
        """Expire ``ttl_ms`` milliseconds after publishing; None: never (Warren)."""
        self._fields.set(TIME_TO_LIVE, ttl_ms)
        return self

    def with_priority(self, priority: int) -> OutboundMessageBuilder:
        """Priority 0 (lowest) .. 9; larger values count as 9."""
        self._fields.set_priority(priority)
        return self

    def with_application_message_id(self, application_message_id: str | None) -> (
        OutboundMessageBuilder
    ):
        """The application's message identifier (None removes it)."""
        self._fields.message_id = _check_str("an application message id", application_message_id)
        return self

    def with_sender_id(self, sender_id: str | None) -> OutboundMessageBuilder:
        """The sender identifier (None removes it)."""
        self._fields.sender_id = _check_str("a sender id", sender_id)
        return self

    def with_http_content_header(
        self, content_type: str | None, content_encoding: str | None = None
    ) -> OutboundMessageBuilder:
        """The content type (e.g. ``application/json``). A content encoding has no
        field in Warren's message and is not carried."""
        self._fields.content_type = _check_str("a content type", content_type)
        if content_encoding:
            log.warning("content encoding %r cannot be carried by Warren; ignored",
                        content_encoding)
        return self

    def with_correlation_id(self, correlation_id: str | None) -> OutboundMessageBuilder:
        """The correlation id (travels as MQTT 5 Correlation Data, AMQP correlation_id)."""
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise InvalidDataTypeError(
                f"a correlation id is a str, not {type(correlation_id).__name__}"
            )
        self._fields.set(CORRELATION_ID, correlation_id)
        return self

    def with_correlation_data(self, data: bytes | None) -> OutboundMessageBuilder:
        """Binary correlation data, as MQTT 5 carries it (Warren)."""
        self._fields.correlation_data = None if data is None else _correlation_bytes(data)
        return self

    def with_reply_to(self, topic: str | None) -> OutboundMessageBuilder:
        """A reply-to topic (MQTT 5 Response Topic), for hand-made requests (Warren).

        ``request_reply()`` publishers set it themselves."""
        self._fields.reply_to = _check_str("a reply-to topic", topic)
        return self

    def with_retain(self, retain: bool = True) -> OutboundMessageBuilder:
        """Keep the message as its topic's last value for new subscribers (Warren;
        MQTT's retain)."""
        self._fields.retain = bool(retain)
        return self

    def build(
        self,
        payload: Any,
        additional_message_properties: Mapping[str, Any] | None = None,
        converter: ObjectToBytes[Any] | None = None,
    ) -> OutboundMessage:
        """A message with ``payload`` (str: UTF-8 text; bytes-like: binary)."""
        fields = self._fields.copy()
        if additional_message_properties:
            for key, value in additional_message_properties.items():
                fields.set(key, value)
        if converter is not None:
            payload = converter.to_bytes(payload)
        utf8 = False
        if isinstance(payload, str):
            data, utf8 = payload.encode(), True
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, bytearray | memoryview):
            data = bytes(payload)
        elif payload is None:
            data = b""
        else:
            raise InvalidDataTypeError(
                f"a payload is str or bytes, not {type(payload).__name__}: pass a converter "
                "(ObjectToBytes) to publish other objects"
            )
        return OutboundMessage(data, utf8, fields)


class MessageDiscardNotification:
    """Whether messages were discarded before this one (always no, on Warren's direct
    path: a slow consumer's queue limit is the broker's business)."""

    __slots__ = ()

    def has_broker_discard_indication(self) -> bool:
        return False

    def has_internal_discard_indication(self) -> bool:
        return False


_NO_DISCARDS: Final = MessageDiscardNotification()


class InboundMessage:
    """A received message. Getters follow the Solace API; ``get_*`` return None for a
    field the message does not have."""

    __slots__ = ("_m", "_received_ms")

    def __init__(self, message: NativeMessage, received_ms: int) -> None:
        self._m = message
        self._received_ms = received_ms

    @property
    def native(self) -> NativeMessage:
        """The message as the native protocol carried it."""
        return self._m

    @property
    def payload(self) -> bytes:
        """The payload bytes, without copying."""
        return self._m.payload

    def get_destination_name(self) -> str:
        """The topic it was published to."""
        return self._m.topic

    def get_payload_as_bytes(self) -> bytearray:
        return bytearray(self._m.payload)

    def get_payload_as_string(self) -> str | None:
        """The payload as text, or None if it is not valid UTF-8."""
        try:
            return self._m.payload.decode()
        except UnicodeDecodeError:
            return None

    def get_and_convert_payload(self, converter: BytesToObject[T], output_type: type) -> T:
        """The payload turned into an object by ``converter``."""
        value = converter.convert(bytearray(self._m.payload))
        if not isinstance(value, output_type):
            raise InvalidDataTypeError(
                f"the converter returned a {type(value).__name__}, not {output_type.__name__}"
            )
        return value

    def get_properties(self) -> dict[str, str]:
        """The user properties (a repeated name keeps its last value)."""
        return dict(self._m.user_properties)

    def get_user_properties(self) -> tuple[tuple[str, str], ...]:
        """The user properties as ordered pairs; names may repeat (Warren)."""
        return self._m.user_properties

    def has_property(self, name: str) -> bool:
        return any(key == name for key, _ in self._m.user_properties)

    def get_property(self, name: str) -> str | None:
        value = None
        for key, v in self._m.user_properties:
            if key == name:
                value = v
        return value

    def get_correlation_id(self) -> str | None:
        data = self._m.correlation_data
        return None if data is None else data.decode(errors="backslashreplace")

    def get_correlation_data(self) -> bytes | None:
        """The correlation data as bytes (Warren; MQTT 5 peers may send any bytes)."""
        return self._m.correlation_data

    def get_reply_to(self) -> str | None:
        """The reply-to topic of a request (Warren)."""
        return self._m.response_topic

    def get_content_type(self) -> str | None:
        """The content type (Warren; ``get_http_content_type`` in the Solace API)."""
        return self._m.content_type

    get_http_content_type = get_content_type

    def get_expiration(self) -> int | None:
        """When it expires, in milliseconds since the Unix epoch (None: never)."""
        ttl = self._m.ttl_ms
        return None if ttl is None else self._received_ms + ttl

    def get_priority(self) -> int | None:
        return self._m.priority

    def get_application_message_id(self) -> str | None:
        return self._m.message_id

    def get_application_message_type(self) -> str | None:
        return None  # no such field in Warren's message

    def get_sender_id(self) -> str | None:
        return self._m.sender_id

    def get_sequence_number(self) -> int | None:
        return None

    def get_class_of_service(self) -> int | None:
        return None

    def get_time_stamp(self) -> int:
        """When this client received it, in milliseconds since the Unix epoch."""
        return self._received_ms

    def get_sender_timestamp(self) -> int | None:
        return None

    def is_redelivered(self) -> bool:
        return False

    def is_retained(self) -> bool:
        """Whether it is a retained message sent on subscribing (Warren)."""
        return self._m.retain

    def get_message_discard_notification(self) -> MessageDiscardNotification:
        return _NO_DISCARDS

    def __repr__(self) -> str:
        return f"<InboundMessage {self._m.topic!r} {len(self._m.payload)} bytes>"

    def __str__(self) -> str:
        return _describe(self, self._m.topic, self._m.payload)


def _describe(message: InboundMessage | OutboundMessage, topic: str | None, payload: bytes) -> str:
    lines = [f"Destination: {topic}"] if topic is not None else []
    for label, value in (
        ("Application Message ID", message.get_application_message_id()),
        ("Correlation ID", message.get_correlation_id()),
        ("Priority", message.get_priority()),
        ("Sender ID", message.get_sender_id()),
        ("Expiration", message.get_expiration()),
        ("Content Type", message.get_content_type()),
    ):
        if value is not None:
            lines.append(f"{label}: {value}")
    if isinstance(message, InboundMessage) and message.get_reply_to() is not None:
        lines.append(f"Reply To: {message.get_reply_to()}")
    for key, value in message.get_properties().items():
        lines.append(f"User Property {key}: {value}")
    preview = payload[:64].decode(errors="replace")
    more = "..." if len(payload) > 64 else ""
    lines.append(f"Payload ({len(payload)} bytes): {preview}{more}")
    return "\n".join(lines)
