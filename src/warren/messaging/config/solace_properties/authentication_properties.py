"""Authentication property keys."""

SCHEME = "solace.messaging.authentication.scheme"
"""Only ``AUTHENTICATION_SCHEME_BASIC``."""
SCHEME_BASIC_USER_NAME = "solace.messaging.authentication.basic.username"
SCHEME_BASIC_PASSWORD = "solace.messaging.authentication.basic.password"
