"""Inbound messages (module path of ``solace.messaging.receiver.inbound_message``)."""

from warren.messaging._message import InboundMessage

__all__ = ["InboundMessage"]
