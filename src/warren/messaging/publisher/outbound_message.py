"""Outbound messages (module path of ``solace.messaging.publisher.outbound_message``)."""

from warren.messaging._message import OutboundMessage, OutboundMessageBuilder

__all__ = ["OutboundMessage", "OutboundMessageBuilder"]
