"""The exception tree of chunksync. Everything raised on purpose derives from ChunksyncError.

    ChunksyncError
    ├── ConfigurationError        a user mistake: bad URL, bad policy file, unknown source kind
    │   └── InvalidPayload        a chunk payload that cannot be stored or read
    ├── StateError                an operation the current state does not allow (retry a live chunk)
    │   └── QuotaExceeded         an enqueue past its tenant's quota of queued chunks
    ├── NotFound                  no such queue, chunk or worker
    ├── BackendError              the database failed; driver errors are converted into these
    │   ├── BackendUnavailable    cannot connect, or the server went away
    │   ├── BackendBusy           locked or serialization failure: worth trying again
    │   │   └── RaceLost          rolled back whole, the loser of a deadlock or serialization race
    │   ├── IntegrityConflict     a unique or foreign key constraint refused the write
    │   └── SchemaError           not a chunksync database, or one newer than this code
    ├── SourceError               a source (IMAP, Maildir, mbox) failed outside a chunk
    ├── LeaseLost                 this worker no longer owns the chunk it was working on
    └── ChunkControl              raised by handlers to steer the decision, carrying data
        ├── RetryLater            retry after `delay_s` (a Retry-After the source gave)
        └── Abort                 give up on this chunk now: it goes dead with `reason`

Every message is redacted before it is raised from code that saw a secret.
"""

from __future__ import annotations


class ChunksyncError(Exception):
    """Root of every error chunksync raises on purpose."""


class ConfigurationError(ChunksyncError):
    """A user mistake in a URL, a policy file, a source or an option."""


class InvalidPayload(ConfigurationError):
    """A chunk payload that is not JSON-serialisable or not what its source expects."""


class StateError(ChunksyncError):
    """The operation is not allowed in the current state of the queue or chunk."""


class QuotaExceeded(StateError):
    """An enqueue would take its tenant past its quota of queued chunks; nothing was added."""


class NotFound(ChunksyncError):
    """No queue, chunk or worker has that id."""


class BackendError(ChunksyncError):
    """The database failed. The driver's exception is kept as __cause__."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class BackendUnavailable(BackendError):
    """The database cannot be reached, or refused the connection."""


class BackendBusy(BackendError):
    """The database is locked or a transaction lost a serialization race; try again."""


class RaceLost(BackendBusy):
    """The database rolled the transaction back whole, the loser of a deadlock or of a
    serialization race: running the same transaction again is running it once."""


class IntegrityConflict(BackendError):
    """A constraint refused the write (duplicate key, missing parent)."""


class SchemaError(BackendError):
    """The database is not a chunksync database, or its schema is newer than this code."""


class SourceError(ChunksyncError):
    """A source failed while planning or connecting, outside any chunk."""


class LeaseLost(ChunksyncError):
    """The chunk's lease was taken over: this worker must not write its result."""


class ChunkControl(ChunksyncError):
    """Raised by a handler to steer the retry decision."""


class RetryLater(ChunkControl):
    """Retry the chunk after `delay_s` seconds, as the source asked (e.g. a Retry-After)."""

    def __init__(self, message: str, *, delay_s: float, category: str = "rate_limit") -> None:
        super().__init__(message)
        self.delay_s = delay_s
        self.category = category


class Abort(ChunkControl):
    """Give up on this chunk: it goes dead with this reason, whatever the policy says."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
