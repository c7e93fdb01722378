"""Utilities (module path of ``solace.messaging.utils``)."""
