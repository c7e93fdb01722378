"""What every connection does with a new transport, whatever its protocol."""

from __future__ import annotations

import asyncio
from typing import cast

__all__ = ["adopt_transport"]


def adopt_transport(
    transport: asyncio.BaseTransport, high_water: int
) -> tuple[asyncio.Transport, str]:
    """Set the write high-water mark; return the transport and the peer as text.

    Above ``high_water`` buffered bytes the transport calls the protocol's
    ``pause_writing`` (slow consumer). uvloop's transports are not
    ``asyncio.Transport`` subclasses but have the same interface, hence the cast.
    """
    peer = transport.get_extra_info("peername")
    text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
    set_limits = getattr(transport, "set_write_buffer_limits", None)
    if set_limits is not None:
        set_limits(high=high_water)
    return cast(asyncio.Transport, transport), text
