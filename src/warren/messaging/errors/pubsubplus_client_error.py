"""Errors (module path of ``solace.messaging.errors.pubsubplus_client_error``)."""

from warren.messaging._errors import (
    AuthenticationError,
    AuthorizationError,
    IllegalArgumentError,
    IllegalStateError,
    IncompatibleServiceError,
    InvalidConfigurationError,
    InvalidDataTypeError,
    MessageTooBigError,
    PublisherOverflowError,
    PubSubPlusClientError,
    PubSubPlusClientIOError,
    PubSubTimeoutError,
    ServiceUnreachableError,
)

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "IllegalArgumentError",
    "IllegalStateError",
    "IncompatibleServiceError",
    "InvalidConfigurationError",
    "InvalidDataTypeError",
    "MessageTooBigError",
    "PubSubPlusClientError",
    "PubSubPlusClientIOError",
    "PubSubTimeoutError",
    "PublisherOverflowError",
    "ServiceUnreachableError",
]
