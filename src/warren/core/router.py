"""The router: one published message in, one delivery per matching session out.

``Router.publish`` is synchronous and protocol-neutral (DESIGN.md step 4): ACL check,
retained update, trie match, shared-subscription choice, overlap merging, and one
``Session.deliver`` per target. Nothing here awaits; a slow subscriber can only
make its own session queue (bounded) or drop, never stall the publisher.
"""

from __future__ import annotations

from warren.core.acl import AccessControl, AclDecision
from warren.core.inbox import reaches_inbox
from warren.core.message import Message
from warren.core.persistence import stored_message
from warren.core.retained import RetainedStore
from warren.core.sessions import Session, SharedGroup, Subscriber, Subscription
from warren.core.stats import BrokerStats
from warren.core.topics import Filter
from warren.core.trie import SubscriptionTrie
from warren.errors import WarrenError
from warren.store.journal import Journal
from warren.store.records import DeleteRetained, RetainedRecord, SetRetained

__all__ = ["NotAuthorized", "Router"]


class NotAuthorized(WarrenError):
    """The ACL refused the operation; the message says which rule or default."""


class Router:
    """Subscriptions, retained messages and delivery for one VPN."""

    def __init__(
        self,
        acl: AccessControl,
        stats: BrokerStats,
        retained: RetainedStore[Message] | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.acl = acl
        self.stats = stats
        self.retained: RetainedStore[Message] = (
            retained if retained is not None else RetainedStore()
        )
        self.trie: SubscriptionTrie[Subscription | SharedGroup] = SubscriptionTrie(cache_size)
        self.shared: dict[tuple[str, str], SharedGroup] = {}
        self.subscription_count = 0
        # Backpressure signal: a connected session whose queue passed half full
        # during a publish sets itself here; the publishing adapter reads it, clears
        # it and pauses reading from its client until that session drains.
        self.congested: Session | None = None
        # Retained messages are durable when the VPN has a store (Vpn.attach_journal).
        self.journal: Journal | None = None
        self.vpn_name = ""

    def attach_journal(self, journal: Journal, vpn_name: str) -> None:
        self.journal = journal
        self.vpn_name = vpn_name

    # --- subscriptions ----------------------------------------------------------

    def add(self, sub: Subscription) -> bool:
        """Register ``sub``; returns True if the session had no subscription with this key.

        An existing subscription with the same key is replaced [MQTT-3.8.4-3].
        """
        session = sub.session
        old = session.subscriptions.get(sub.key)
        if old is not None:
            self._remove_from_index(old)
        else:
            self.subscription_count += 1
        session.subscriptions[sub.key] = sub
        if sub.share_group is None:
            self.trie.add(sub.filter, sub)
        else:
            group_key = (sub.share_group, _filter_key(sub))
            group = self.shared.get(group_key)
            if group is None:
                group = SharedGroup(sub.share_group, group_key[1], sub.filter)
                self.shared[group_key] = group
                self.trie.add(sub.filter, group)
            group.members.append(sub)
        return old is None

    def remove(self, session: Subscriber, key: str) -> bool:
        """Remove the session's subscription ``key``; False if it had none."""
        sub = session.subscriptions.pop(key, None)
        if sub is None:
            return False
        self.subscription_count -= 1
        self._remove_from_index(sub)
        return True

    def remove_all(self, session: Subscriber) -> None:
        for key in list(session.subscriptions):
            self.remove(session, key)

    def _remove_from_index(self, sub: Subscription) -> None:
        if sub.share_group is None:
            self.trie.remove(sub.filter, sub)
            return
        group_key = (sub.share_group, _filter_key(sub))
        group = self.shared.get(group_key)
        if group is None:
            return
        group.members = [m for m in group.members if m is not sub]
        if not group.members:
            del self.shared[group_key]
            self.trie.remove(group.filter, group)

    def check_subscribe(self, username: str | None, f: Filter) -> AclDecision:
        """May ``username`` subscribe to ``f``? The broker's own rules, then the ACL.

        Reply inboxes (``$inbox/...``, see :mod:`warren.core.inbox`) belong to the
        broker: no client subscribes into one, whatever the ACL says. Every adapter
        asks here before ``add``.
        """
        if reaches_inbox(f):
            return AclDecision.DENY
        acl = self.acl
        if acl.is_open:
            return AclDecision.ALLOW
        return acl.check_subscribe(username, f)

    def retained_for(self, f: Filter) -> list[Message]:
        """Retained messages matching ``f`` that have not expired, oldest topic first."""
        out = []
        for topic, message in self.retained.match(f):
            if message.expires_at is not None and message.expired():
                self.retained.delete(topic)
                if self.journal is not None:
                    self.journal.append(DeleteRetained(self.vpn_name, topic))  # STORE
                continue
            out.append(message)
        return out

    # --- publishing -----------------------------------------------------------------

    def check_publish(self, username: str | None, topic: str) -> None:
        """Raise NotAuthorized if ``username`` may not publish to ``topic``."""
        acl = self.acl
        if not acl.is_open and not acl.can_publish(username, topic):
            raise NotAuthorized(f"not authorized to publish to {topic!r}")

    def publish(self, message: Message, origin: Session | None = None) -> int:
        """Route ``message``; returns the number of sessions it was handed to.

        The caller has already checked the publisher's ACL (``check_publish``) so it
        can answer with its protocol's refusal before anything is routed.
        """
        topic = message.topic
        self.stats.publish_received += 1
        if message.retain:
            # [MQTT-3.3.1-5..7] a retained message replaces the previous one; an
            # empty payload removes it.
            if message.payload:
                self.retained.set(topic, message)
                if self.journal is not None and not topic.startswith("$SYS/"):
                    # STORE: retain (the broker's own $SYS values are not kept)
                    self.journal.append(SetRetained(RetainedRecord(
                        self.vpn_name, topic, stored_message(message, self.journal)
                    )))
            elif self.retained.delete(topic) and self.journal is not None:
                self.journal.append(DeleteRetained(self.vpn_name, topic))  # STORE
        matches = self.trie.match(topic)
        if not matches:
            return 0
        if len(matches) == 1:
            entry = matches[0]
            if entry.__class__ is SharedGroup:
                return self._deliver_shared(entry, message)
            sub: Subscription = entry  # type: ignore[assignment]
            session = sub.session
            if sub.no_local and session is origin:
                return 0  # [MQTT-3.8.3-3]
            if sub.filtered and not self.acl.can_read(session.username, topic):
                return 0
            qos = message.qos if message.qos < sub.qos else sub.qos
            session.deliver(
                message,
                qos,
                message.retain and sub.retain_as_published,
                (sub.identifier,) if sub.identifier is not None else (),
            )
            return 1
        return self._deliver_many(matches, message, origin)

    def _deliver_many(
        self,
        matches: list[Subscription | SharedGroup],
        message: Message,
        origin: Session | None,
    ) -> int:
        # Common case (fan-out): every match is a plain subscription of a different
        # session, so nothing needs merging; checked with one set of sessions.
        if SharedGroup not in {entry.__class__ for entry in matches}:
            sessions = {entry.session for entry in matches}  # type: ignore[union-attr]
            if len(sessions) == len(matches):
                return self._deliver_distinct(matches, message, origin)  # type: ignore[arg-type]
        # Overlapping subscriptions of one session are merged: one copy at the highest
        # granted QoS carrying every matching subscription identifier [MQTT-3.3.4-2, -3].
        targets: dict[Subscriber, _Merged] = {}
        count = 0
        for entry in matches:
            if entry.__class__ is SharedGroup:
                count += self._deliver_shared(entry, message)
                continue
            sub: Subscription = entry  # type: ignore[assignment]
            session = sub.session
            if sub.no_local and session is origin:
                continue
            if sub.filtered and not self.acl.can_read(session.username, message.topic):
                continue
            qos = message.qos if message.qos < sub.qos else sub.qos
            retain = message.retain and sub.retain_as_published
            target = targets.get(session)
            if target is None:
                targets[session] = _Merged(qos, retain, sub.identifier)
            else:
                target.merge(qos, retain, sub.identifier)
        for session, target in targets.items():
            session.deliver(message, target.qos, target.retain, tuple(target.ids))
        return count + len(targets)

    def _deliver_distinct(
        self, matches: list[Subscription], message: Message, origin: Session | None
    ) -> int:
        count = 0
        mqos = message.qos
        retained = message.retain
        for sub in matches:
            session = sub.session
            if sub.no_local and session is origin:
                continue
            if sub.filtered and not self.acl.can_read(session.username, message.topic):
                continue
            session.deliver(
                message,
                mqos if mqos < sub.qos else sub.qos,
                retained and sub.retain_as_published,
                (sub.identifier,) if sub.identifier is not None else (),
            )
            count += 1
        return count

    def _deliver_shared(self, group: SharedGroup, message: Message) -> int:
        sub = group.choose()
        if sub is None:
            return 0
        session = sub.session
        if sub.filtered and not self.acl.can_read(session.username, message.topic):
            return 0
        qos = message.qos if message.qos < sub.qos else sub.qos
        session.deliver(
            message,
            qos,
            message.retain and sub.retain_as_published,
            (sub.identifier,) if sub.identifier is not None else (),
        )
        return 1


class _Merged:
    """What one session gets when several of its subscriptions match."""

    __slots__ = ("ids", "qos", "retain")

    def __init__(self, qos: int, retain: bool, identifier: int | None) -> None:
        self.qos = qos
        self.retain = retain
        self.ids: list[int] = [] if identifier is None else [identifier]

    def merge(self, qos: int, retain: bool, identifier: int | None) -> None:
        if qos > self.qos:
            self.qos = qos
        if retain:
            self.retain = True
        if identifier is not None:
            self.ids.append(identifier)


def _filter_key(sub: Subscription) -> str:
    """The filter part of a shared subscription key ``$share/<group>/<filter>``."""
    return sub.key.split("/", 2)[2] if sub.share_group is not None else sub.key
