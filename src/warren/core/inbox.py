"""Reply inboxes: the topics under ``$inbox/<client-name>/`` (docs/protocol.md,
"Request/reply").

Every native client has one. Messages published to a topic under it go to that
client only, through a subscription the broker makes for it; nobody may subscribe
into an inbox, whatever the protocol (a wildcard at the first level never reaches it
anyway: topics starting with ``$`` are not matched by leading wildcards).

Anyone may *publish* into an inbox: that is how a reply reaches its requester,
whether the replier speaks the native protocol, MQTT 5 (Response Topic) or AMQP
(``reply_to``).

Examples (``reaches_inbox``)::

    '$inbox/c1/1', '$inbox/+/#', '$inbox/>', '$in*/x'   True
    '#', '+/+', '*/>', '>', 'a/$inbox/#', '$SYS/#'     False
"""

from __future__ import annotations

from typing import Final

from warren.core.topics import MANY1, Filter, Prefix

__all__ = ["INBOX_ROOT", "inbox_filter", "inbox_prefix", "reaches_inbox"]

INBOX_ROOT: Final = "$inbox"
"""The first level of every reply inbox topic."""


def inbox_prefix(client_name: str) -> str:
    """The prefix of ``client_name``'s reply inbox topics, as sent in CONNECTED."""
    return f"{INBOX_ROOT}/{client_name}/"


def inbox_filter(client_name: str) -> Filter:
    """The filter of the subscription the broker makes for a client's inbox."""
    return (INBOX_ROOT, client_name, MANY1)


def reaches_inbox(f: Filter) -> bool:
    """Whether ``f`` can match a topic of some reply inbox (then it is refused)."""
    if not f:
        return False
    first = f[0]
    if isinstance(first, str):
        return first == INBOX_ROOT
    if isinstance(first, Prefix):
        # 'abc*' matches '$inbox' only if it starts with '$' (else the '$' rule
        # keeps it away) and is a prefix of '$inbox'.
        return first.prefix.startswith("$") and INBOX_ROOT.startswith(first.prefix)
    return False  # a leading wildcard never matches a '$' topic [MQTT-4.7.2-1]
