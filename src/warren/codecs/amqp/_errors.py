"""The AMQP codec's errors: a :class:`RemoteProtocolError` that says how to close.

Every error the codec raises for the peer's bytes is a connection exception
(the spec's "hard errors"): the connection must be closed. The adapter sends
:meth:`AMQPRemoteError.close_method` on channel 0 and waits for close-ok — or,
for :class:`ProtocolHeaderMismatch`, writes :attr:`~ProtocolHeaderMismatch.response`
and closes the socket at once (4.2.2), since no frame may be sent then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warren.errors import RemoteProtocolError

from ._constants import ReplyCode

if TYPE_CHECKING:
    from ._methods import ConnectionClose


class AMQPRemoteError(RemoteProtocolError):
    """The peer broke AMQP 0-9-1; ``reason_code`` is the connection.close reply code.

    ``class_id`` and ``method_id`` name the method being decoded when it failed
    (0 and 0 when the fault is not in a method), as connection.close reports them.
    """

    def __init__(
        self, message: str, reason_code: int, class_id: int = 0, method_id: int = 0
    ) -> None:
        super().__init__(message, reason_code)
        self.class_id = class_id
        self.method_id = method_id

    def close_method(self) -> ConnectionClose:
        """The connection.close to send on channel 0 before closing the connection."""
        from ._methods import ConnectionClose

        text = f"{ReplyCode(self.reason_code).name} - {self.message}"
        raw = text.encode()
        if len(raw) > 255:  # a shortstr; cut on a character boundary, as RabbitMQ does
            text = raw[:252].decode(errors="ignore") + "..."
        return ConnectionClose(self.reason_code, text, self.class_id, self.method_id)


class ProtocolHeaderMismatch(AMQPRemoteError):
    """The peer's protocol header is not AMQP 0-9-1 (4.2.2).

    A server writes :attr:`response` (our own protocol header, telling the client
    which version we speak) and closes the socket; no connection.close is sent.
    A client has nothing to write: :attr:`response` is empty. :attr:`received`
    holds the header bytes that arrived (fewer than 8 when they went wrong early).
    """

    def __init__(self, message: str, received: bytes, response: bytes) -> None:
        super().__init__(message, ReplyCode.FRAME_ERROR)
        self.received = received
        self.response = response
