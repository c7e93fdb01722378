"""The errors of ``warren.messaging``, named as in the Solace PubSub+ Python API.

    WarrenError
    └── PubSubPlusClientError (alias MessagingError)   every failure of this API
        ├── ServiceUnreachableError       no broker at the address, or the link broke
        ├── AuthenticationError           refused login: bad credentials, unknown VPN
        ├── AuthorizationError            the ACL denies a connect, publish or subscribe
        ├── IllegalStateError             not connected, not started, terminated, ...
        ├── InvalidConfigurationError     a property is missing or has a bad value
        ├── PubSubTimeoutError            no reply / no answer within the timeout
        ├── PublisherOverflowError        the publisher's buffer is full (back pressure)
        ├── MessageTooBigError            larger than the broker accepts
        ├── IncompatibleServiceError      the broker does not speak this protocol version
        └── PubSubPlusClientIOError       the broker broke the protocol
    IllegalArgumentError (ValueError)     a bad argument value
    InvalidDataTypeError (TypeError)      an argument of the wrong type

Errors that come from the broker carry its :class:`~warren.codecs.native.ErrorCode`
as ``code`` (None otherwise).
"""

from __future__ import annotations

from warren.codecs.native import ErrorCode
from warren.errors import WarrenError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "IllegalArgumentError",
    "IllegalStateError",
    "IncompatibleServiceError",
    "InvalidConfigurationError",
    "InvalidDataTypeError",
    "MessageTooBigError",
    "MessagingError",
    "PubSubPlusClientError",
    "PubSubPlusClientIOError",
    "PubSubTimeoutError",
    "PublisherOverflowError",
    "ServiceUnreachableError",
    "error_for_code",
]


class PubSubPlusClientError(WarrenError):
    """Base class of the messaging API's errors; ``code`` is the broker's, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code) if code is not None and code in _KNOWN_CODES else code

    @property
    def message(self) -> str:
        return str(self.args[0])


MessagingError = PubSubPlusClientError
"""Warren's name for :class:`PubSubPlusClientError`."""


class ServiceUnreachableError(PubSubPlusClientError):
    """No broker answered at the configured address, or the connection broke."""


class AuthenticationError(PubSubPlusClientError):
    """The broker refused the login (bad credentials, unknown VPN)."""


class AuthorizationError(PubSubPlusClientError):
    """The broker's ACL denies this connect, publish or subscribe."""


class IllegalStateError(PubSubPlusClientError):
    """The object cannot do this now (not connected, not started, terminated ...)."""


class InvalidConfigurationError(PubSubPlusClientError):
    """A configuration property is missing or has a value that cannot be used."""


class PubSubTimeoutError(PubSubPlusClientError):
    """Nothing came back within the timeout (a reply, a connection, an answer)."""


class PublisherOverflowError(PubSubPlusClientError):
    """The publisher's buffer is full and its back-pressure strategy is *reject*."""


class MessageTooBigError(PubSubPlusClientError):
    """The message is larger than the broker accepts."""


class IncompatibleServiceError(PubSubPlusClientError):
    """The broker does not speak this client's protocol version."""


class PubSubPlusClientIOError(PubSubPlusClientError):
    """The broker sent something the protocol does not allow."""


class IllegalArgumentError(WarrenError, ValueError):
    """An argument has a value that cannot be used."""


class InvalidDataTypeError(WarrenError, TypeError):
    """An argument has the wrong type."""


_KNOWN_CODES = frozenset(int(code) for code in ErrorCode)

_BY_CODE: dict[int, type[PubSubPlusClientError]] = {
    ErrorCode.NOT_AUTHORIZED: AuthorizationError,
    ErrorCode.BAD_CREDENTIALS: AuthenticationError,
    ErrorCode.UNKNOWN_VPN: AuthenticationError,
    ErrorCode.CLIENT_NAME_IN_USE: AuthenticationError,
    ErrorCode.INVALID_CLIENT_NAME: InvalidConfigurationError,
    ErrorCode.UNSUPPORTED_VERSION: IncompatibleServiceError,
    ErrorCode.MESSAGE_TOO_LARGE: MessageTooBigError,
    ErrorCode.FRAME_TOO_LARGE: MessageTooBigError,
    ErrorCode.SERVER_SHUTTING_DOWN: ServiceUnreachableError,
    ErrorCode.SERVER_BUSY: ServiceUnreachableError,
    ErrorCode.KEEPALIVE_TIMEOUT: ServiceUnreachableError,
    ErrorCode.PROTOCOL_ERROR: PubSubPlusClientIOError,
    ErrorCode.MALFORMED_FRAME: PubSubPlusClientIOError,
    ErrorCode.CREDIT_EXCEEDED: PubSubPlusClientIOError,
}


def error_for_code(code: int, text: str) -> PubSubPlusClientError:
    """The error to raise for a code the broker sent (ERROR, RESULT, DISCONNECT)."""
    name = ErrorCode(code).name if code in _KNOWN_CODES else f"code {code}"
    cls = _BY_CODE.get(code, PubSubPlusClientError)
    detail = f": {text}" if text else ""
    return cls(f"the broker answered {name}{detail}", code)
