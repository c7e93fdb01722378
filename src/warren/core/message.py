"""The protocol-neutral message every adapter converts to and from.

Adapters translate their protocol's topic syntax and properties into a
:class:`Message` exactly once, at the edge (DESIGN.md, "Message properties across
protocols"). The core only ever sees this type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warren.store.records import StoredMessage

__all__ = ["Message"]


@dataclass(slots=True, eq=False)
class Message:
    """One published event.

    ``qos`` is the delivery guarantee the publisher asked for: 0 at most once
    (direct), 1 at least once, 2 exactly once (guaranteed). ``expires_at`` is a
    ``time.monotonic()`` deadline, or None for no expiry.

    ``wire`` is a scratch cache owned by adapters: encoded forms of this message
    keyed by whatever the adapter needs (protocol version, flags), so a message
    fanned out to many subscribers of one protocol is encoded once.

    ``stored`` is the message as the store keeps it, once it has been stored (or
    recovered): one body however many sessions or queues refer to it.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    content_type: str | None = None
    correlation_data: bytes | None = None
    response_topic: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    payload_format_utf8: bool = False
    expires_at: float | None = None
    priority: int | None = None
    message_id: str | None = None
    sender_id: str | None = None
    wire: dict[Any, Any] | None = field(default=None, repr=False)
    stored: StoredMessage | None = field(default=None, repr=False)

    @property
    def has_properties(self) -> bool:
        """True when the message carries anything beyond topic and payload."""
        return bool(
            self.content_type is not None
            or self.correlation_data is not None
            or self.response_topic is not None
            or self.user_properties
            or self.payload_format_utf8
            or self.expires_at is not None
        )

    def expired(self, now: float | None = None) -> bool:
        """Whether the message's expiry deadline has passed."""
        if self.expires_at is None:
            return False
        return (time.monotonic() if now is None else now) >= self.expires_at

    def remaining_expiry(self, now: float | None = None) -> int | None:
        """Whole seconds left before expiry (at least 1 while not expired), or None."""
        if self.expires_at is None:
            return None
        left = self.expires_at - (time.monotonic() if now is None else now)
        return max(1, int(left + 0.999))

    def as_retained(self, retain: bool) -> Message:
        """A copy with the retain flag set as given (shares the payload bytes)."""
        if self.retain == retain:
            return self
        return Message(
            topic=self.topic,
            payload=self.payload,
            qos=self.qos,
            retain=retain,
            content_type=self.content_type,
            correlation_data=self.correlation_data,
            response_topic=self.response_topic,
            user_properties=self.user_properties,
            payload_format_utf8=self.payload_format_utf8,
            expires_at=self.expires_at,
            priority=self.priority,
            message_id=self.message_id,
            sender_id=self.sender_id,
        )
