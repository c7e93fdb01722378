"""Warren: an event broker and event mesh for Python people."""

__version__ = "0.1.0"
