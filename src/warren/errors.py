"""Warren's error tree.

    WarrenError
    ├── ProtocolError                 a protocol rule was broken
    │   ├── LocalProtocolError        we misused a codec API (a bug on our side)
    │   └── RemoteProtocolError       the peer broke the protocol: close it
    └── ConfigError                   configuration cannot be used; says where and why

A :class:`ProtocolError` carries ``reason_code``: the protocol's own code for what
went wrong (an MQTT 5 reason code for MQTT, a reply code for AMQP). The adapter turns
it into that protocol's close without further protocol knowledge.
"""

from __future__ import annotations


class WarrenError(Exception):
    """Base class of every error Warren raises on purpose."""


class ProtocolError(WarrenError):
    """A protocol rule was broken; ``reason_code`` is the wire code to report."""

    def __init__(self, message: str, reason_code: int) -> None:
        super().__init__(message)
        self.reason_code = reason_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; close its connection."""


class ConfigError(WarrenError):
    """The configuration cannot be used. The message names the source and the key."""
