"""Client property keys."""

NAME = "solace.messaging.client.name"
"""The client name (unique in the VPN; the broker assigns one when absent)."""
