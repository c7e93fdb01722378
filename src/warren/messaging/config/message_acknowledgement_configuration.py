"""Module path of ``solace.messaging.config.message_acknowledgement_configuration``."""

from warren.messaging._persistent import Outcome

__all__ = ["Outcome"]
