"""Destinations (module path of ``solace.messaging.resources``)."""
