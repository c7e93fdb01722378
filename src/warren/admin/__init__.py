"""HTTP management API (OpenAPI), Prometheus metrics (DESIGN.md, layer ``admin/``).

:func:`~warren.admin.http.start_admin_listener` serves :func:`~warren.admin.app.create_app`
with uvicorn inside the broker's own event loop: no second process, no thread, and
every handler reads and changes the core synchronously, between two broker events.
"""

from __future__ import annotations

__all__: list[str] = []
