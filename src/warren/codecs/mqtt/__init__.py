"""Sans-I/O MQTT 3.1.1 and 5.0 codec: bytes in, packets out; packets in, bytes out.

Usage, on the broker side::

    conn = MQTTConnection(Role.SERVER)
    for packet in conn.receive(data):      # raises RemoteProtocolError(reason_code)
        ...
    transport.write(conn.send(ConnAck()))  # raises LocalProtocolError

Packets are the dataclasses below; :func:`encode_publish` and
:func:`encode_properties` are the pre-encoded fast path for fan-out. Errors come from
:mod:`warren.errors` and always carry an MQTT 5 reason code, also on 3.1.1.
"""

from ._connection import MQTTConnection, Role
from ._encode import encode_publish
from ._packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
)
from ._properties import encode_properties
from ._reason import ReasonCode

__all__ = [
    "NO_PROPERTIES",
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "MQTTConnection",
    "Packet",
    "PacketType",
    "PingReq",
    "PingResp",
    "Properties",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "ReasonCode",
    "Role",
    "SubAck",
    "Subscribe",
    "SubscriptionRequest",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "encode_properties",
    "encode_publish",
]
