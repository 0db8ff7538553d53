"""chunksync: resilient, chunked background sync on SQLite or PostgreSQL, email first.

The public API. Everything else is internal and may change between minor versions.
"""

from __future__ import annotations

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
from chunksync.health import HealthState, HealthThresholds, queue_summary, system_summary
from chunksync.models import (
    Chunk,
    ChunkStatus,
    ErrorCategory,
    Outcome,
    Queue,
    QueueStatus,
)
from chunksync.retry import (
    DEFAULT_POLICY,
    CategoryRule,
    RetryPolicy,
    Schedule,
    ScheduleKind,
    StressConfig,
    load_policy,
)
from chunksync.sources.base import Source
from chunksync.worker import Worker

__version__ = "0.1.0"

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
