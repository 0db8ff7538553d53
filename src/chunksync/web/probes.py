"""`/healthz` and `/readyz`, for load balancers and orchestrators.

/healthz: the dashboard process answers (liveness; no database call, so a slow database never
gets a healthy dashboard restarted). /readyz: the database answers a query and its schema is
this code's (readiness: take the dashboard out of rotation until it does). Neither needs the
token, and neither says more than a status: they may be reached by anyone who reaches the port.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chunksync import sql
from chunksync.exceptions import BackendError
from chunksync.web.state import board


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    backend = board(request).app.backend
    try:
        version = await run_in_threadpool(backend.schema_version)
    except BackendError:
        return JSONResponse({"status": "unavailable", "reason": "database"}, status_code=503)
    if version < sql.latest_version(backend.dialect):
        return JSONResponse({"status": "unavailable", "reason": "schema"}, status_code=503)
    return JSONResponse({"status": "ready"})


ROUTES = [Route("/healthz", healthz), Route("/readyz", readyz)]
