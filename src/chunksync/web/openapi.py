"""The OpenAPI 3.0 document of the dashboard's JSON API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from chunksync.deps.gate import Flow
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.web.actions import CHUNK_ACTIONS, QUEUE_ACTIONS
from chunksync.web.params import MAX_CHUNK_LIST_LIMIT, MAX_OFFSET, MAX_QUEUE_LIST_LIMIT

NUMBER_OR_NULL = {"type": "number", "nullable": True}
STRING_OR_NULL = {"type": "string", "nullable": True}
INTEGER_OR_NULL = {"type": "integer", "nullable": True}
LIMIT_OR_NULL = {"type": "integer", "minimum": 1, "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "What went wrong, in one sentence.")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "ActionResult": {
        "type": "object",
        "required": ["ok", "message"],
        "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}},
    },
    "Chunk": {
        "type": "object",
        "required": ["id", "queue_id", "seq", "status", "attempts", "max_attempts"],
        "properties": {
            "id": {"type": "string"},
            "queue_id": {"type": "string"},
            "tenant": {"type": "string"},
            "payload": {
                "nullable": True,
                "description": "The chunk's payload (JSON), texts redacted, secret keys masked.",
            },
            "seq": {"type": "integer"},
            "status": {"type": "string", "enum": [s.value for s in ChunkStatus]},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "last_category": {
                "type": "string",
                "nullable": True,
                "enum": [c.value for c in ErrorCategory] + [None],
            },
            "last_error": STRING_OR_NULL,
            "dead_reason": STRING_OR_NULL,
            "worker_id": STRING_OR_NULL,
            "items_processed": {"type": "integer"},
            "run_after": {"type": "number"},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
        },
    },
    "Attempt": {
        "type": "object",
        "required": ["attempt", "outcome", "processing_s", "worker_id", "finished_at"],
        "properties": {
            "attempt": {"type": "integer"},
            "outcome": {"type": "string"},
            "category": STRING_OR_NULL,
            "rule": STRING_OR_NULL,
            "retry_delay_s": NUMBER_OR_NULL,
            "processing_s": {"type": "number"},
            "worker_id": {"type": "string"},
            "finished_at": {"type": "number"},
            "message": STRING_OR_NULL,
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["at", "action", "actor", "reason"],
        "properties": {
            "at": {"type": "number"},
            "action": {"type": "string"},
            "actor": {"type": "string"},
            "reason": {"type": "string"},
            "details": STRING_OR_NULL,
        },
    },
    "BulkRequest": {
        "description": "Either ids or filter; without confirm: true nothing is done.",
        "oneOf": [
            {
                "type": "object",
                "required": ["ids"],
                "additionalProperties": False,
                "properties": {
                    "ids": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": 1000,
                    },
                    "confirm": {"type": "boolean"},
                },
            },
            {
                "type": "object",
                "required": ["filter"],
                "additionalProperties": False,
                "properties": {"filter": _ref("ChunkFilter"), "confirm": {"type": "boolean"}},
            },
        ],
    },
    "ChunkFilter": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "q": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in ChunkStatus]},
            "category": {"type": "string", "enum": [c.value for c in ErrorCategory]},
            "queue": {"type": "string"},
            "tenant": {"type": "string"},
        },
    },
    "BulkResult": {
        "type": "object",
        "required": ["ok", "confirmed", "action", "matched", "done", "skipped", "message"],
        "properties": {
            "ok": {"type": "boolean"},
            "confirmed": {"type": "boolean"},
            "action": {"type": "string", "enum": list(CHUNK_ACTIONS)},
            "matched": {"type": "integer"},
            "done": {"type": "integer"},
            "skipped": {"type": "integer"},
            "message": {"type": "string"},
        },
    },
    "Probe": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
    },
    "ChunkDetail": {
        "type": "object",
        "required": ["chunk", "payload", "checkpoint", "attempts", "audit"],
        "properties": {
            "chunk": _ref("Chunk"),
            "payload": {"type": "string", "description": "The payload as indented JSON text."},
            "checkpoint": {**STRING_OR_NULL, "description": "The checkpoint as JSON text."},
            "attempts": {"type": "array", "items": _ref("Attempt")},
            "audit": {"type": "array", "items": _ref("AuditEntry")},
        },
    },
    "QueueSummary": {
        "type": "object",
        "required": ["queue_id", "name", "status", "totals", "progress", "attempts"],
        "properties": {
            "queue_id": {"type": "string"},
            "name": {"type": "string"},
            "source": {"type": "string"},
            "status": {"type": "string"},
            "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "attempts": {"type": "integer"},
            "success_rate": NUMBER_OR_NULL,
            "throughput_chunks_per_s": NUMBER_OR_NULL,
            "oldest_pending_age_s": NUMBER_OR_NULL,
            "eta_s": NUMBER_OR_NULL,
            "failures_by_category": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
            },
        },
    },
    "Alert": {
        "type": "object",
        "required": ["key", "rule", "severity", "state", "message", "fired_at"],
        "properties": {
            "key": {"type": "string"},
            "rule": {"type": "string"},
            "subject": STRING_OR_NULL,
            "severity": {"type": "string", "enum": ["warning", "critical"]},
            "state": {"type": "string", "enum": ["firing", "resolved"]},
            "message": {"type": "string"},
            "fired_at": {"type": "number"},
            "resolved_at": NUMBER_OR_NULL,
        },
    },
    "SystemSummary": {
        "type": "object",
        "required": ["state", "reasons", "workers_alive", "workers_lost", "backlog"],
        "properties": {
            "state": {"type": "string", "enum": ["healthy", "degraded", "critical"]},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "workers_alive": {"type": "integer"},
            "workers_lost": {"type": "integer"},
            "backlog": {"type": "integer"},
            "error_rate_5m": NUMBER_OR_NULL,
            "error_rate_60m": NUMBER_OR_NULL,
            "stressed_dependencies": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Overview": {
        "type": "object",
        "required": ["system", "throughput_chunks_per_s", "alerts", "workers", "queues"],
        "properties": {
            "system": _ref("SystemSummary"),
            "throughput_chunks_per_s": {"type": "number"},
            "alerts": {"type": "array", "items": _ref("Alert")},
            "workers": {"type": "array", "items": {"type": "object"}},
            "queues": {"type": "array", "items": _ref("QueueSummary")},
            "queues_total": {"type": "integer"},
        },
    },
    "Dependency": {
        "type": "object",
        "description": "The shape of `chunksync deps --json` (docs/dependencies.md).",
        "required": ["name", "flow", "tokens", "capacity", "slots_in_use", "waits", "probes"],
        "properties": {
            "name": {"type": "string"},
            "flow": {"type": "string", "enum": [f.value for f in Flow]},
            "tokens": {"type": "number"},
            "capacity": {"type": "number"},
            "slots_in_use": {"type": "integer"},
            "connections": INTEGER_OR_NULL,
            "rate": STRING_OR_NULL,
            "rate_per_s": NUMBER_OR_NULL,
            "burst": INTEGER_OR_NULL,
            "waits": {
                "type": "object",
                "required": ["connections", "rate", "gate"],
                "properties": {
                    "connections": {"type": "integer"},
                    "rate": {"type": "integer"},
                    "gate": {"type": "integer"},
                },
            },
            "probes": {"type": "integer"},
            "active_queues": {"type": "integer"},
            "gated_since": {**STRING_OR_NULL, "format": "date-time"},
            "gated_for_s": NUMBER_OR_NULL,
            "next_probe_at": {**STRING_OR_NULL, "format": "date-time"},
        },
    },
    "DependencyLimits": {
        "type": "object",
        "description": "The limits to change: a key left out stays, a key given as null is "
        "cleared (no cap, no rate limit, the default burst).",
        "additionalProperties": False,
        "properties": {
            "connections": LIMIT_OR_NULL,
            "rate": {**STRING_OR_NULL, "example": "200/s"},
            "burst": LIMIT_OR_NULL,
            "reason": {"type": "string", "maxLength": 500},
        },
    },
    "Reason": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    },
    "Charts": {
        "type": "object",
        "required": ["hourly", "failures", "hourly_series", "failure_series"],
        "properties": {
            "hourly": {"type": "array", "items": {"type": "object"}},
            "failures": {"type": "array", "items": {"type": "object"}},
            "hourly_series": {"type": "array", "items": {"type": "array"}},
            "failure_series": {"type": "array", "items": {"type": "array"}},
        },
    },
}


def _get(
    summary: str, schema: dict[str, Any], *extra: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    responses = {"200": _json(schema, summary), **dict(extra)}
    return {"get": {"summary": summary, "responses": responses}}


def _action(kind: str, actions: list[str]) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"An operator action on a {kind} (audited, actor 'dashboard').",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "target", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": actions},
                },
            ],
            "responses": {
                "200": _json(_ref("ActionResult"), "Done."),
                "400": ERROR,
                "401": ERROR,
                "403": {**ERROR, "description": "The dashboard is read-only (no token)."},
                "404": ERROR,
                "409": {**ERROR, "description": "The state does not allow it."},
            },
        }
    }


DEPENDENCY_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The dependency's name, percent-encoded as one path segment "
    "(imap://alice@imap.gmail.com is imap%3A%2F%2Falice%40imap.gmail.com), or as the "
    "dashboard shows it (redacted).",
    "schema": {"type": "string"},
}


def _dependency_action(summary: str, body: str, *, required: bool) -> dict[str, Any]:
    """A POST on one dependency, through `chunksync.deps.operate` (audited, as the CLI's)."""
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [DEPENDENCY_NAME],
            "requestBody": {
                "required": required,
                "content": {"application/json": {"schema": _ref(body)}},
            },
            "responses": {
                "200": _json(_ref("ActionResult"), "Done."),
                "400": {**ERROR, "description": "A malformed rate, a limit below 1, a bad body."},
                "401": ERROR,
                "403": {**ERROR, "description": "The dashboard is read-only (no token)."},
                "404": {**ERROR, "description": "No such dependency."},
            },
        }
    }


def _chunk_list() -> dict[str, Any]:
    filters = [
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "string", "enum": [s.value for s in ChunkStatus]},
        },
        {
            "name": "category",
            "in": "query",
            "schema": {"type": "string", "enum": [c.value for c in ErrorCategory]},
        },
        {"name": "queue", "in": "query", "schema": {"type": "string"}},
        {
            "name": "q",
            "in": "query",
            "description": "Free text, in any case, in the id, payload, last error or dead reason.",
            "schema": {"type": "string"},
        },
        {"name": "tenant", "in": "query", "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CHUNK_LIST_LIMIT},
        },
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        },
    ]
    chunks = _get(
        "Chunks matching a text and filters, a page at a time (limit, offset).",
        {"type": "array", "items": _ref("Chunk")},
        ("400", ERROR),
        ("404", ERROR),
    )
    chunks["get"]["responses"]["200"]["headers"] = {
        "X-Total-Count": {
            "description": "How many chunks match in all.",
            "schema": {"type": "integer"},
        }
    }
    chunks["get"]["parameters"] = filters
    return chunks


def _queue_list() -> dict[str, Any]:
    queues = _get(
        "The queues with their summaries, newest first, a page at a time (limit, offset).",
        {"type": "array", "items": _ref("QueueSummary")},
        ("400", ERROR),
    )
    queues["get"]["responses"]["200"]["headers"] = {
        "X-Total-Count": {
            "description": "How many queues there are.",
            "schema": {"type": "integer"},
        }
    }
    queues["get"]["parameters"] = [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_QUEUE_LIST_LIMIT},
        },
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        },
    ]
    return queues


def _chunks_bulk() -> dict[str, Any]:
    return {
        "post": {
            "summary": "retry, cancel or release selected chunks, or every chunk matching a "
            "filter (each audited); without confirm: true, how many it would touch.",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(CHUNK_ACTIONS)},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("BulkRequest")}},
            },
            "responses": {
                "200": _json(_ref("BulkResult"), "Done, or what it would do."),
                "400": ERROR,
                "401": ERROR,
                "403": {**ERROR, "description": "The dashboard is read-only (no token)."},
                "404": {**ERROR, "description": "No such action or queue."},
            },
        }
    }


def _probe(summary: str, *, ready: bool) -> dict[str, Any]:
    probe = _get(summary, _ref("Probe"))
    if ready:
        probe["get"]["responses"]["503"] = _json(_ref("Probe"), "Not ready: database or schema.")
    return probe


def _chunk_detail() -> dict[str, Any]:
    detail = _get(
        "One chunk with its attempts, checkpoint and audit entries.",
        _ref("ChunkDetail"),
        ("404", ERROR),
    )
    detail["get"]["parameters"] = [
        {"name": "chunk_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    return detail


def _metrics() -> dict[str, Any]:
    return {
        "get": {
            "summary": "Prometheus metrics, read from the database at scrape time.",
            "responses": {
                "200": {
                    "description": "The text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json; a test validates it and fuzzes the API against it."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "chunksync dashboard API",
            "version": "1",
            "description": "Health, queues, chunks, dependencies and operator actions of one "
            "chunksync database. Actions need the operator token as a bearer token. Reads "
            "need nothing, unless the dashboard is private (401 without a token); a tenant's "
            "token (PostgreSQL) reads that tenant's rows alone and may not act (403).",
        },
        "paths": {
            "/api/overview": _get(
                "Health state with its reasons, alerts, workers, queues.", _ref("Overview")
            ),
            "/api/queues": _queue_list(),
            "/api/charts": _get("Hourly trend and failures over time.", _ref("Charts")),
            "/api/chunks": _chunk_list(),
            "/api/chunks/bulk/{action}": _chunks_bulk(),
            "/api/chunks/{chunk_id}": _chunk_detail(),
            "/api/chunks/{target}/{action}": _action("chunk", list(CHUNK_ACTIONS)),
            "/api/queues/{target}/{action}": _action("queue", list(QUEUE_ACTIONS)),
            "/api/dependencies": _get(
                "Every dependency: flow, budget, slots, limits, waits, probes.",
                {"type": "array", "items": _ref("Dependency")},
            ),
            "/api/dependencies/{name}/close": _dependency_action(
                "Close a dependency: no call goes through until it is opened.",
                "Reason",
                required=False,
            ),
            "/api/dependencies/{name}/open": _dependency_action(
                "Open a dependency: calls flow with a full retry budget.", "Reason", required=False
            ),
            "/api/dependencies/{name}/limits": _dependency_action(
                "Change a dependency's limits; running workers follow at their next claim.",
                "DependencyLimits",
                required=True,
            ),
            "/metrics": _metrics(),
            "/healthz": _probe("Liveness: the dashboard answers.", ready=False),
            "/readyz": _probe("Readiness: the database answers, its schema current.", ready=True),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
