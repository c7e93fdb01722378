"""Errors (module path of ``solace.messaging.errors``)."""
