"""chunksync: resilient, chunked background sync on SQLite or PostgreSQL, email first.

The public API. Everything else is internal and may change between minor versions.
Each name is imported when first used (PEP 562): `import chunksync` costs nothing, so the
`chunksync` command can start a sync's helper processes before its own imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chunksync.app import App
    from chunksync.context import ChunkContext
    from chunksync.errors import Categorization, categorize
    from chunksync.exceptions import (
        Abort,
        BackendBusy,
        BackendError,
        BackendUnavailable,
        ChunksyncError,
        ConfigurationError,
        IntegrityConflict,
        InvalidPayload,
        LeaseLost,
        NotFound,
        RetryLater,
        SchemaError,
        SourceError,
        StateError,
    )
    from chunksync.models import (
        Chunk,
        ChunkStatus,
        ErrorCategory,
        Outcome,
        Queue,
        QueueStatus,
    )
    from chunksync.observe.health import queue_summary, system_summary
    from chunksync.observe.model import HealthState, HealthThresholds
    from chunksync.retry import (
        DEFAULT_POLICY,
        CategoryRule,
        RetryPolicy,
        Schedule,
        ScheduleKind,
        StressConfig,
        load_policy,
    )
    from chunksync.runtime.worker import Worker
    from chunksync.sources.base import Source

__version__ = "0.2.0.dev0"

# Where each public name lives.
_EXPORTS = {
    "DEFAULT_POLICY": "chunksync.retry",
    "Abort": "chunksync.exceptions",
    "App": "chunksync.app",
    "BackendBusy": "chunksync.exceptions",
    "BackendError": "chunksync.exceptions",
    "BackendUnavailable": "chunksync.exceptions",
    "Categorization": "chunksync.errors",
    "CategoryRule": "chunksync.retry",
    "Chunk": "chunksync.models",
    "ChunkContext": "chunksync.context",
    "ChunkStatus": "chunksync.models",
    "ChunksyncError": "chunksync.exceptions",
    "ConfigurationError": "chunksync.exceptions",
    "ErrorCategory": "chunksync.models",
    "HealthState": "chunksync.observe.model",
    "HealthThresholds": "chunksync.observe.model",
    "IntegrityConflict": "chunksync.exceptions",
    "InvalidPayload": "chunksync.exceptions",
    "LeaseLost": "chunksync.exceptions",
    "NotFound": "chunksync.exceptions",
    "Outcome": "chunksync.models",
    "Queue": "chunksync.models",
    "QueueStatus": "chunksync.models",
    "RetryLater": "chunksync.exceptions",
    "RetryPolicy": "chunksync.retry",
    "Schedule": "chunksync.retry",
    "ScheduleKind": "chunksync.retry",
    "SchemaError": "chunksync.exceptions",
    "Source": "chunksync.sources.base",
    "SourceError": "chunksync.exceptions",
    "StateError": "chunksync.exceptions",
    "StressConfig": "chunksync.retry",
    "Worker": "chunksync.runtime.worker",
    "categorize": "chunksync.errors",
    "load_policy": "chunksync.retry",
    "queue_summary": "chunksync.observe.health",
    "system_summary": "chunksync.observe.health",
}

__all__ = [
    "DEFAULT_POLICY",
    "Abort",
    "App",
    "BackendBusy",
    "BackendError",
    "BackendUnavailable",
    "Categorization",
    "CategoryRule",
    "Chunk",
    "ChunkContext",
    "ChunkStatus",
    "ChunksyncError",
    "ConfigurationError",
    "ErrorCategory",
    "HealthState",
    "HealthThresholds",
    "IntegrityConflict",
    "InvalidPayload",
    "LeaseLost",
    "NotFound",
    "Outcome",
    "Queue",
    "QueueStatus",
    "RetryLater",
    "RetryPolicy",
    "Schedule",
    "ScheduleKind",
    "SchemaError",
    "Source",
    "SourceError",
    "StateError",
    "StressConfig",
    "Worker",
    "__version__",
    "categorize",
    "load_policy",
    "queue_summary",
    "system_summary",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chunksync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
