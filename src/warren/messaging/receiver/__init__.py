"""Receivers (module path of ``solace.messaging.receiver``)."""
