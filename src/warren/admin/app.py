"""The management API: a FastAPI application over one running broker.

Handlers are synchronous functions of the core run on the event loop (``async def``
that never awaits), so they see and change broker state between two broker events,
exactly as a protocol adapter does. Errors are RFC 7807 problem documents whose
``detail`` says how to fix the request.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from warren import __version__
from warren.adapters.amqp import queue_arguments
from warren.adapters.amqp_broker import vhost_of
from warren.admin.metrics import metrics_response
from warren.admin.models import (
    BrokerInfo,
    BrokerStatsModel,
    BrowsedMessage,
    ConsumerInfo,
    ListenerInfo,
    Problem,
    QueueBrowse,
    QueueCreate,
    QueueDeleted,
    QueueDetail,
    QueueLimitsModel,
    QueuePurged,
    QueueSummary,
    SessionInfo,
    VpnInfo,
)
from warren.core.queues import Overflow, Queue, QueueLimits
from warren.core.sessions import Session
from warren.core.stats import BrokerStats
from warren.core.topics import InvalidTopic, parse_mqtt_filter
from warren.core.vpn import Vpn

__all__ = ["BrokerView", "ProblemError", "create_app"]

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"


class ListenerView(Protocol):
    @property
    def protocol(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def path(self) -> str | None: ...
    def url(self) -> str: ...


class BrokerView(Protocol):
    """What the API needs of the broker (``warren.server.Broker`` has it)."""

    @property
    def stats(self) -> BrokerStats: ...
    @property
    def vpns(self) -> dict[str, Vpn]: ...
    @property
    def listeners(self) -> Sequence[ListenerView]: ...
    @property
    def connections(self) -> Collection[Any]: ...


class ProblemError(Exception):
    """Answer with a problem document: ``status``, a short ``title`` and a ``detail``."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def _problem(request: Request, status: int, title: str, detail: str,
             errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, instance=request.url.path,
                   errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=PROBLEM_JSON)


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such VPN, session or queue"},
    422: {"model": Problem, "description": "invalid request"},
}


def create_app(broker: BrokerView) -> FastAPI:
    app = FastAPI(
        title="Warren management API",
        version=__version__,
        description="Manage a running Warren broker: VPNs, sessions, queues, statistics. "
        "There is no authentication yet: bind the admin listener to loopback.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )

    @app.exception_handler(ProblemError)
    async def _on_problem(request: Request, exc: ProblemError) -> JSONResponse:
        return _problem(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            msg = str(e.get("msg", ""))
            if e.get("type") == "string_pattern_mismatch" and e.get("loc", ())[-1:] == ("name",):
                msg = ("a queue name is 1 to 255 letters, digits and '_ . : - @' "
                       "(it must fit in a URL path segment)")
            errors.append({"loc": [str(p) for p in e.get("loc", ())], "msg": msg})
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return _problem(request, 422, "Invalid request",
                        f"fix these fields and send the request again: {where}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            detail = (f"no such endpoint {request.url.path}; the endpoints are listed at "
                      "/api/docs")
        elif exc.status_code == 405:
            path = request.scope["path"]
            allowed = sorted({m for r in app.routes if isinstance(r, APIRoute)
                              and r.path_regex.match(path) for m in r.methods or ()})
            detail = (f"{request.method} is not allowed on {request.url.path}; use "
                      f"{', '.join(allowed)} (see /api/docs)")
            response = _problem(request, 405, str(exc.detail), detail)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        elif exc.status_code == 400:
            detail = "the request body is not valid JSON: send a JSON object in UTF-8"
        else:
            detail = str(exc.detail)
        response = _problem(request, exc.status_code, str(exc.detail), detail)
        response.headers.update(exc.headers or {})  # headers the exception carries
        return response

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with errors documented as the problem+json they are."""
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        if status.isdigit() and int(status) >= 400:
                            response["content"] = {PROBLEM_JSON: problem_ref}
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def vpn_of(name: str) -> Vpn:
        vpn = broker.vpns.get(name)
        if vpn is None:
            known = ", ".join(sorted(broker.vpns))
            raise ProblemError(404, "No such VPN",
                               f"VPN {name!r} does not exist; the VPNs are: {known}")
        return vpn

    def queue_of(vpn: Vpn, name: str) -> Queue:
        queue = vpn.queues.get(name)
        if queue is None:
            raise ProblemError(
                404, "No such queue",
                f"queue {name!r} does not exist in VPN {vpn.name!r}; list the queues with "
                f"GET {API}/vpns/{vpn.name}/queues or create it with POST",
            )
        return queue

    def session_of(vpn: Vpn, client_id: str) -> Session:
        session = vpn.find_session(client_id)
        if session is None:
            raise ProblemError(
                404, "No such session",
                f"no session for client {client_id!r} in VPN {vpn.name!r}; list them with "
                f"GET {API}/vpns/{vpn.name}/sessions",
            )
        return session

    # --- broker -------------------------------------------------------------------

    @app.get(f"{API}/broker", tags=["broker"])
    async def broker_info() -> BrokerInfo:
        """Version, uptime, bound listeners and VPNs."""
        return BrokerInfo(
            version=__version__,
            pid=os.getpid(),
            uptime_seconds=broker.stats.uptime(),
            listeners=[
                ListenerInfo(protocol=b.protocol, host=b.host, port=b.port, path=b.path,
                             url=b.url())
                for b in broker.listeners
            ],
            vpns=sorted(broker.vpns),
        )

    @app.get(f"{API}/broker/stats", tags=["broker"])
    async def broker_stats() -> BrokerStatsModel:
        """Broker-wide counters (the same as ``$SYS/broker/...`` and /metrics)."""
        s = broker.stats
        vpns = list(broker.vpns.values())
        queues = [q for v in vpns for q in v.queues.queues.values()]
        return BrokerStatsModel(
            uptime_seconds=s.uptime(),
            clients_connected=s.clients_connected,
            clients_maximum=s.clients_maximum,
            sessions=sum(len(v.sessions) for v in vpns),
            connections_refused=s.connections_refused,
            protocol_errors=s.protocol_errors,
            messages_received=s.messages_received,
            messages_sent=s.messages_sent,
            publish_received=s.publish_received,
            publish_sent=s.publish_sent,
            dropped=s.dropped,
            bytes_received=s.bytes_received,
            bytes_sent=s.bytes_sent,
            subscriptions=sum(v.router.subscription_count for v in vpns),
            retained_messages=sum(len(v.router.retained) for v in vpns),
            queues=len(queues),
            queued_messages=sum(q.ready_count for q in queues),
            queued_bytes=sum(q.ready_bytes for q in queues),
        )

    # --- VPNs ---------------------------------------------------------------------

    def vpn_info(vpn: Vpn) -> VpnInfo:
        return VpnInfo(
            name=vpn.name,
            acl_default="allow" if vpn.acl.default_allow else "deny",
            sessions=len(vpn.sessions),
            connected_sessions=sum(1 for s in vpn.sessions.values() if s.sink is not None),
            subscriptions=vpn.router.subscription_count,
            retained_messages=len(vpn.router.retained),
            queues=len(vpn.queues),
        )

    @app.get(f"{API}/vpns", tags=["vpns"])
    async def list_vpns() -> list[VpnInfo]:
        return [vpn_info(broker.vpns[name]) for name in sorted(broker.vpns)]

    @app.get(f"{API}/vpns/{{vpn}}", tags=["vpns"], responses=_ERRORS)
    async def show_vpn(vpn: str) -> VpnInfo:
        return vpn_info(vpn_of(vpn))

    # --- sessions -----------------------------------------------------------------

    def session_info(session: Session) -> SessionInfo:
        return SessionInfo(
            client_id=session.client_id,
            username=session.username,
            connected=session.sink is not None,
            persistent=session.persistent,
            expiry_interval=session.expiry_interval,
            subscriptions=sorted(session.subscriptions),
            queued=len(session.pending),
            inflight=len(session.inflight),
            dropped=session.dropped,
        )

    @app.get(f"{API}/vpns/{{vpn}}/sessions", tags=["sessions"], responses=_ERRORS)
    async def list_sessions(vpn: str) -> list[SessionInfo]:
        v = vpn_of(vpn)
        return [session_info(v.sessions[c]) for c in sorted(v.sessions)]

    @app.get(f"{API}/vpns/{{vpn}}/sessions/{{client_id}}", tags=["sessions"],
             responses=_ERRORS)
    async def show_session(vpn: str, client_id: str) -> SessionInfo:
        v = vpn_of(vpn)
        return session_info(session_of(v, client_id))

    @app.delete(f"{API}/vpns/{{vpn}}/sessions/{{client_id}}", tags=["sessions"],
                status_code=204, responses={**_ERRORS, 409: {"model": Problem}})
    async def delete_session(
        vpn: str,
        client_id: str,
        disconnect: bool = Query(False, description="also close the client's connection"),
    ) -> Response:
        """Forget a session: its subscriptions and queued messages."""
        v = vpn_of(vpn)
        session = session_of(v, client_id)
        if session.sink is not None:
            if not disconnect:
                raise ProblemError(
                    409, "Session is connected",
                    f"client {client_id!r} is connected; pass ?disconnect=true to close its "
                    "connection and delete the session",
                )
            for connection in list(broker.connections):
                if getattr(connection, "session", None) is session:
                    connection.close_for_shutdown()
        v.end_session(session)
        return Response(status_code=204)

    # --- queues -------------------------------------------------------------------

    def summary_fields(vpn: Vpn, q: Queue) -> dict[str, Any]:
        return {
            "vpn": vpn.name,
            "name": q.name,
            "durable": q.durable,
            "exclusive": q.owner is not None or q.single_consumer,
            "auto_delete": q.auto_delete,
            "messages": q.ready_count,
            "bytes": q.ready_bytes,
            "unacked": q.unacked_count,
            "consumers": len(q.consumers),
        }

    def queue_detail(vpn: Vpn, q: Queue) -> QueueDetail:
        lim = q.limits
        return QueueDetail(
            **summary_fields(vpn, q),
            limits=QueueLimitsModel(
                message_ttl_ms=_ms(lim.message_ttl),
                expires_ms=_ms(lim.expires),
                max_length=lim.max_length,
                max_length_bytes=lim.max_length_bytes,
                overflow=lim.overflow.value,
                max_priority=lim.max_priority,
                max_redelivery=lim.max_redelivery,
                dead_letter_exchange=lim.dead_letter_exchange,
                dead_letter_routing_key=lim.dead_letter_routing_key,
                dead_letter_queue=lim.dead_letter_queue,
            ),
            dead_lettered=q.dead_lettered,
            dropped=q.dropped,
            redelivery_exceeded=q.redelivery_exceeded,
            subscriptions=sorted(q.subscriptions),
            consumer_list=[
                ConsumerInfo(tag=c.tag, no_ack=c.no_ack, prefetch=c.prefetch,
                             unacked=c.unacked, exclusive=c.exclusive)
                for c in q.consumers
            ],
        )

    @app.get(f"{API}/vpns/{{vpn}}/queues", tags=["queues"], responses=_ERRORS)
    async def list_queues(vpn: str) -> list[QueueSummary]:
        v = vpn_of(vpn)
        return [QueueSummary(**summary_fields(v, v.queues.queues[n]))
                for n in sorted(v.queues.queues)]

    @app.post(f"{API}/vpns/{{vpn}}/queues", tags=["queues"], status_code=201,
              responses={**_ERRORS, 400: {"model": Problem, "description": "body not JSON"},
                         409: {"model": Problem, "description": "queue exists"}})
    async def create_queue(vpn: str, body: QueueCreate, response: Response) -> QueueDetail:
        """Create a queue, optionally subscribed to topics (guaranteed delivery)."""
        v = vpn_of(vpn)
        if v.queues.get(body.name) is not None:
            raise ProblemError(
                409, "Queue exists",
                f"queue {body.name!r} already exists in VPN {v.name!r}; delete it first "
                "or pick another name",
            )
        filters = []
        for i, text in enumerate(body.subscriptions):
            try:
                filters.append((text, parse_mqtt_filter(text)))
            except InvalidTopic as exc:
                raise ProblemError(
                    422, "Invalid topic filter",
                    f"subscriptions[{i}] {text!r} is not a valid MQTT topic filter ({exc}); "
                    "use '/' between levels, '+' for one level, '#' (last) for many",
                ) from exc
        lim = body.limits
        if lim.dead_letter_routing_key is not None and lim.dead_letter_exchange is None:
            raise ProblemError(
                422, "Invalid limits",
                "limits.dead_letter_routing_key needs limits.dead_letter_exchange; set both",
            )
        if lim.dead_letter_queue is not None and lim.dead_letter_exchange is not None:
            raise ProblemError(
                422, "Invalid limits",
                "limits.dead_letter_queue and limits.dead_letter_exchange are two dead-letter "
                "targets; set one of them",
            )
        limits = QueueLimits(
            message_ttl=None if lim.message_ttl_ms is None else lim.message_ttl_ms / 1000,
            expires=None if lim.expires_ms is None else lim.expires_ms / 1000,
            max_length=lim.max_length,
            max_length_bytes=lim.max_length_bytes,
            overflow=Overflow(lim.overflow),
            dead_letter_exchange=lim.dead_letter_exchange,
            dead_letter_routing_key=lim.dead_letter_routing_key,
            max_priority=lim.max_priority,
            max_redelivery=lim.max_redelivery,
            dead_letter_queue=lim.dead_letter_queue,
        )
        if limits.dead_letter_exchange is not None:
            vhost_of(v)  # the exchanges, whose dead-letter hook the queue will need
        queue = v.queues.declare(
            body.name,
            durable=body.durable,
            limits=limits,
            # What an AMQP client redeclaring the queue must pass (equivalence).
            arguments=queue_arguments(limits),
            single_consumer=body.exclusive,
        )
        for text, f in filters:
            v.queues.subscribe(queue, text, f)
        response.headers["Location"] = f"{API}/vpns/{v.name}/queues/{queue.name}"
        return queue_detail(v, queue)

    @app.get(f"{API}/vpns/{{vpn}}/queues/{{queue}}", tags=["queues"], responses=_ERRORS)
    async def show_queue(vpn: str, queue: str) -> QueueDetail:
        v = vpn_of(vpn)
        return queue_detail(v, queue_of(v, queue))

    @app.get(f"{API}/vpns/{{vpn}}/queues/{{queue}}/messages", tags=["queues"],
             responses=_ERRORS)
    async def browse_queue(
        vpn: str,
        queue: str,
        limit: int = Query(10, ge=1, le=1000, description="how many messages to show"),
    ) -> QueueBrowse:
        """Peek at the next messages without consuming them (delivery order)."""
        v = vpn_of(vpn)
        q = queue_of(v, queue)
        now = time.monotonic()
        messages = []
        for position, entry in enumerate(q.iter_ready()):
            if position >= limit:
                break
            m = entry.message
            try:
                payload, encoding = m.payload.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                payload, encoding = base64.b64encode(m.payload).decode("ascii"), "base64"
            messages.append(BrowsedMessage(
                position=position,
                topic=m.topic,
                payload=payload,
                payload_encoding=encoding,
                size=entry.size,
                content_type=m.content_type,
                priority=entry.priority,
                redelivered=entry.redelivered,
                redeliveries=entry.redeliveries,
                message_id=m.message_id,
                expires_in_ms=None if entry.expires_at is None
                else max(0, int((entry.expires_at - now) * 1000)),
                properties=dict(m.user_properties),
            ))
        return QueueBrowse(vpn=v.name, queue=q.name, total=q.ready_count, messages=messages)

    @app.delete(f"{API}/vpns/{{vpn}}/queues/{{queue}}/messages", tags=["queues"],
                responses=_ERRORS)
    async def purge_queue(vpn: str, queue: str) -> QueuePurged:
        """Drop every ready message (unacknowledged ones stay with their consumers)."""
        v = vpn_of(vpn)
        q = queue_of(v, queue)
        return QueuePurged(vpn=v.name, queue=q.name, purged=q.purge())

    @app.delete(f"{API}/vpns/{{vpn}}/queues/{{queue}}", tags=["queues"],
                responses={**_ERRORS, 409: {"model": Problem,
                                            "description": "not empty or in use"}})
    async def delete_queue(
        vpn: str,
        queue: str,
        if_empty: bool = Query(False, description="refuse if it holds messages"),
        if_unused: bool = Query(False, description="refuse if it has consumers"),
    ) -> QueueDeleted:
        """Delete a queue: its subscriptions end, its consumers are cancelled."""
        v = vpn_of(vpn)
        q = queue_of(v, queue)
        if if_empty and (q.ready_count or q.unacked_count):
            raise ProblemError(
                409, "Queue not empty",
                f"queue {q.name!r} holds {q.ready_count} ready and {q.unacked_count} "
                "unacknowledged messages; purge it first or drop if_empty",
            )
        if if_unused and q.consumers:
            raise ProblemError(
                409, "Queue in use",
                f"queue {q.name!r} has {len(q.consumers)} consumers; stop them first or "
                "drop if_unused",
            )
        return QueueDeleted(vpn=v.name, queue=q.name, deleted_messages=v.queues.delete(q))

    # --- metrics ------------------------------------------------------------------

    @app.get("/metrics", tags=["metrics"], include_in_schema=True,
             response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition of broker and queue metrics."""
        body, content_type = metrics_response(broker.stats, broker.vpns)
        return Response(body, media_type=content_type)

    return app


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
