"""Database backends, picked from the URL scheme; each driver is imported only when used."""

from __future__ import annotations

from chunksync.backends.base import Backend, Session, open_backend

__all__ = ["Backend", "Session", "open_backend"]
