"""The result of categorizing a failure, and the shape every detector has.

Its own module so that each detector module can build results without importing
`chunksync.errors` itself (which imports the detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chunksync.models import ErrorCategory

__all__ = ["DEFAULT", "Categorization", "Detector"]


@dataclass(frozen=True, slots=True)
class Categorization:
    """What `categorize()` decided: the category, the rule that fired, and any Retry-After."""

    category: ErrorCategory
    rule: str
    retry_after_s: float | None = None


DEFAULT = Categorization(ErrorCategory.UNKNOWN, "default")

# A detector reads one link of the chain and answers, or says None: no signal of its kind here.
Detector = Callable[[BaseException], Categorization | None]
