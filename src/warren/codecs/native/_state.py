"""The native connection state machine: everything that affects which frame may be
received or sent next lives in this file.

Receive side, per role::

    SERVER  AWAIT_PREAMBLE --'WRN'+version--> AWAIT_CONNECT --CONNECT--> CONNECTED
    CLIENT  IDLE --send(Connect)--> AWAIT_CONNECTED --CONNECTED--> CONNECTED
                                                    --ERROR (a refusal)--> CLOSED
    both    CONNECTED --DISCONNECT, or ERROR with close--> CLOSED

Send side, per role::

    CLIENT  BEFORE_CONNECT --send(Connect)--> CONNECTED
    SERVER  BEFORE_CONNECTED --send(Connected)--> CONNECTED   (only once CONNECT arrived)
                             --send(Error)--> CLOSED          (a refusal: always closes)
    both    CONNECTED --send(Disconnect), or send(Error) with close--> CLOSED

A client may send frames right after CONNECT, before CONNECTED arrives
(pipelining); the server decodes them once it has read CONNECT. In CLOSED nothing
more is parsed: the peer said it sends nothing more, so later bytes stay
``trailing_data``. Which side may send which frame once connected is the
"Direction" column of docs/protocol.md.
"""

from __future__ import annotations

import enum
from typing import Final

from ._events import Error, Event, FrameType

_F = FrameType


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "client"
    SERVER = "server"


class Phase(enum.Enum):
    """Where one direction of a connection stands."""

    # receive side
    AWAIT_PREAMBLE = enum.auto()  # server: nothing received yet
    AWAIT_CONNECT = enum.auto()  # server: preamble read, CONNECT not yet
    IDLE = enum.auto()  # client: CONNECT not sent yet, nothing may arrive
    AWAIT_CONNECTED = enum.auto()  # client: CONNECT sent, answer not received
    # send side
    BEFORE_CONNECT = enum.auto()  # client: CONNECT not sent yet
    BEFORE_CONNECTED = enum.auto()  # server: CONNECTED not sent yet
    # both
    CONNECTED = enum.auto()
    CLOSED = enum.auto()


_BOTH: Final = {_F.ACK, _F.NACK, _F.PING, _F.PONG, _F.ERROR, _F.DISCONNECT}
FROM_CLIENT: Final = frozenset(
    {_F.CONNECT, _F.PUBLISH, _F.SUBSCRIBE, _F.UNSUBSCRIBE, _F.CREDIT, _F.BIND, _F.UNBIND,
     *_BOTH}
)
FROM_SERVER: Final = frozenset({_F.CONNECTED, _F.DELIVER, _F.RESULT, *_BOTH})

# (role, receive phase) -> frame types that may arrive.
RECEIVABLE: Final[dict[tuple[Role, Phase], frozenset[FrameType]]] = {
    (Role.SERVER, Phase.AWAIT_PREAMBLE): frozenset(),  # the preamble is read first
    (Role.SERVER, Phase.AWAIT_CONNECT): frozenset({_F.CONNECT}),  # the first frame
    (Role.SERVER, Phase.CONNECTED): FROM_CLIENT - {_F.CONNECT},
    (Role.SERVER, Phase.CLOSED): frozenset(),
    (Role.CLIENT, Phase.IDLE): frozenset(),
    (Role.CLIENT, Phase.AWAIT_CONNECTED): frozenset({_F.CONNECTED, _F.ERROR}),
    (Role.CLIENT, Phase.CONNECTED): FROM_SERVER - {_F.CONNECTED},
    (Role.CLIENT, Phase.CLOSED): frozenset(),
}

# (role, send phase) -> frame types we may send.
SENDABLE: Final[dict[tuple[Role, Phase], frozenset[FrameType]]] = {
    (Role.CLIENT, Phase.BEFORE_CONNECT): frozenset({_F.CONNECT}),
    (Role.CLIENT, Phase.CONNECTED): FROM_CLIENT - {_F.CONNECT},
    (Role.CLIENT, Phase.CLOSED): frozenset(),
    (Role.SERVER, Phase.BEFORE_CONNECTED): frozenset({_F.CONNECTED, _F.ERROR}),
    (Role.SERVER, Phase.CONNECTED): FROM_SERVER - {_F.CONNECTED},
    (Role.SERVER, Phase.CLOSED): frozenset(),
}

INITIAL: Final[dict[Role, tuple[Phase, Phase]]] = {
    # role -> (receive phase, send phase)
    Role.SERVER: (Phase.AWAIT_PREAMBLE, Phase.BEFORE_CONNECTED),
    Role.CLIENT: (Phase.IDLE, Phase.BEFORE_CONNECT),
}

MOVES_STATE: Final = frozenset(
    {int(_F.CONNECT), int(_F.CONNECTED), int(_F.ERROR), int(_F.DISCONNECT)}
)
"""Frame types after which :func:`after_receive` / :func:`after_send` must run."""


def after_receive(phase: Phase, event: Event) -> Phase:
    """The receive phase once ``event`` (of a type in MOVES_STATE) has arrived."""
    frame_type = event.frame_type
    if frame_type is _F.CONNECT or frame_type is _F.CONNECTED:
        return Phase.CONNECTED
    if frame_type is _F.DISCONNECT:
        return Phase.CLOSED  # the peer sends nothing more
    assert isinstance(event, Error)
    return Phase.CLOSED if event.close else phase


def after_send(phase: Phase, event: Event) -> Phase:
    """The send phase once ``event`` (of a type in MOVES_STATE) has been sent."""
    return after_receive(phase, event)


def refusal_problem(phase: Phase, event: Event) -> str | None:
    """Why an ERROR may not be sent or received in ``phase``, or None if it may.

    Before CONNECTED an ERROR is the server's refusal, after which it closes the
    connection: one that keeps it open would leave the client waiting forever.
    """
    if (
        phase in (Phase.AWAIT_CONNECTED, Phase.BEFORE_CONNECTED)
        and isinstance(event, Error)
        and not event.close
    ):
        return "an ERROR before CONNECTED is a refusal and must close the connection"
    return None
