"""The dashboard: `create_app(app)` returns an ASGI application (Starlette) that serves
server-rendered pages, HTML fragments they refresh in place, a JSON API described by
/openapi.json, and Prometheus metrics at /metrics. See docs/dashboard.md."""

from __future__ import annotations

from chunksync.web.server import create_app

__all__ = ["create_app"]
