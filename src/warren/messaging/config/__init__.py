"""Configuration (module path of ``solace.messaging.config``)."""
