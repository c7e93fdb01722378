"""Payload converters (module path of ``solace.messaging.utils.converter``)."""

from warren.messaging._message import BytesToObject, ObjectToBytes

__all__ = ["BytesToObject", "ObjectToBytes"]
