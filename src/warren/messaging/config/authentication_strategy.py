"""Authentication (module path of ``solace.messaging.config.authentication_strategy``)."""

from warren.messaging._service import BasicUserNamePassword

__all__ = ["BasicUserNamePassword"]
