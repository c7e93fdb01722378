"""The admin listener: uvicorn serving the management API inside the broker's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from warren.admin.app import BrokerView, create_app

__all__ = ["AdminServer", "start_admin_listener", "warn_if_exposed"]

log = logging.getLogger("warren.admin")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the broker owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """A running admin listener; ``close()`` + ``wait_closed()`` like asyncio servers."""

    def __init__(self, server: _EmbeddedServer, task: asyncio.Task[None],
                 sock: socket.socket) -> None:
        self._server = server
        self._task = task
        self.sockets = [sock]

    def close(self) -> None:
        self._server.should_exit = True

    async def wait_closed(self) -> None:
        await asyncio.shield(self._task)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


async def start_admin_listener(broker: BrokerView, host: str, port: int) -> AdminServer:
    """Bind ``host:port`` now (port 0: any free port), then serve the API as a task."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"cannot listen for the management API on {host}:{port}: {exc.strerror}. "
            "Pick another port with [[listener]] protocol = \"admin\" port = ...",
        ) from exc
    sock.setblocking(False)
    config = uvicorn.Config(
        create_app(broker),
        lifespan="off",
        log_config=None,  # Warren's logging stays as it is
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="warren-admin")
    warn_if_exposed(host, sock.getsockname()[1])
    return AdminServer(server, task, sock)


def warn_if_exposed(host: str, port: int) -> bool:
    """Log a loud warning if the API is reachable beyond loopback; True if it was."""
    if _is_loopback(host):
        return False
    log.warning(
        "THE MANAGEMENT API ON %s:%d HAS NO AUTHENTICATION: anyone who can reach it "
        "can read and delete queues and sessions. Bind the admin listener to "
        "127.0.0.1 unless a firewall or proxy guards it.",
        host, port,
    )
    return True
