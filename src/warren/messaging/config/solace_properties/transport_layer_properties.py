"""Transport property keys."""

HOST = "solace.messaging.transport.host"
"""Broker address(es): ``tcp://host:55555``, ``ws://host:port/path``, comma-separated."""
CONNECTION_ATTEMPTS_TIMEOUT = "solace.messaging.transport.connection-attempts-timeout"
"""Milliseconds to wait for one connection attempt."""
CONNECTION_RETRIES = "solace.messaging.transport.connection-retries"
"""Retries of the first connect (-1: forever)."""
RECONNECTION_ATTEMPTS = "solace.messaging.transport.reconnection-attempts"
"""Reconnection attempts after a connection is lost (-1: forever)."""
RECONNECTION_ATTEMPTS_WAIT_INTERVAL = (
    "solace.messaging.transport.reconnection-attempts-wait-interval"
)
"""Milliseconds between attempts."""
KEEP_ALIVE_INTERVAL = "solace.messaging.transport.keep-alive-interval"
"""Milliseconds; sent to the broker as the keepalive period (rounded up to seconds)."""
