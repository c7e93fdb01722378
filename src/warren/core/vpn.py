"""A VPN: an isolated topic space with its own sessions, ACL and retained messages."""

from __future__ import annotations

from warren.core.acl import AccessControl
from warren.core.queues import QueueRegistry
from warren.core.router import Router
from warren.core.sessions import Session
from warren.core.stats import BrokerStats
from warren.store.journal import Journal
from warren.store.records import DeleteSession

__all__ = ["Vpn"]


class Vpn:
    """Sessions by client id, and the router that connects them."""

    def __init__(
        self,
        name: str,
        stats: BrokerStats,
        acl: AccessControl | None = None,
    ) -> None:
        self.name = name
        self.stats = stats
        self.acl = acl if acl is not None else AccessControl()
        self.router = Router(self.acl, stats)
        self.sessions: dict[str, Session] = {}
        self.queues = QueueRegistry(self.router)  # guaranteed delivery (core/queues.py)
        # Where durable state changes are journalled; None: nothing is stored.
        self.journal: Journal | None = None

    def attach_journal(self, journal: Journal) -> None:
        """Journal this VPN's durable state (persistent sessions, retained messages)."""
        self.journal = journal
        self.router.attach_journal(journal, self.name)
        self.queues.journal = journal
        self.queues.vpn_name = self.name

    def __repr__(self) -> str:
        return f"<Vpn {self.name!r} sessions={len(self.sessions)}>"

    def find_session(self, client_id: str) -> Session | None:
        return self.sessions.get(client_id)

    def add_session(self, session: Session) -> None:
        if session.client_id not in self.sessions:
            self.stats.clients_total += 1
        self.sessions[session.client_id] = session

    def end_session(self, session: Session) -> None:
        """Remove the session and all its subscriptions (clean start, expiry)."""
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            self.stats.clients_total -= 1
        self.router.remove_all(session)
        session.discard_state()
        if session.store_id and self.journal is not None:
            self.journal.append(DeleteSession(session.store_id))  # STORE: delete session
            session.store_id = 0
