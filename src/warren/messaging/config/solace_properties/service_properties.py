"""Service property keys."""

VPN_NAME = "solace.messaging.service.vpn-name"
"""The VPN to join."""
GENERATE_SENDER_ID = "solace.messaging.service.generate-sender-id"
"""Put the client name in every published message's sender id."""
