"""Termination (module path of ``solace.messaging.utils.life_cycle_control``)."""

from warren.messaging._listeners import TerminationEvent, TerminationNotificationListener

__all__ = ["TerminationEvent", "TerminationNotificationListener"]
