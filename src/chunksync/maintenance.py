"""What a worker does besides chunks, from its step 1 (once per poll interval per process).

Every process feeds its retry budgets from the shared error rate when the health thresholds ask
for it (`feed_retry_budgets`). The maintenance leader alone also evaluates the alerts (every
ALERT_EVERY_SECONDS) and applies retention (every RETENTION_EVERY_SECONDS). A failure here is
logged and never stops the worker's loop.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING

from chunksync import alerts, health, retention
from chunksync.redact import redact

if TYPE_CHECKING:
    from chunksync.app import App

log = logging.getLogger("chunksync.maintenance")

ALERT_EVERY_SECONDS = 15.0
RETENTION_EVERY_SECONDS = 600.0
STRESS_FEED_EVERY_SECONDS = 5.0

_last: weakref.WeakKeyDictionary[App, dict[str, float]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _due(app: App, what: str, every_s: float) -> bool:
    now = time.monotonic()
    with _lock:
        seen = _last.setdefault(app, {})
        if what in seen and now - seen[what] < every_s:
            return False
        seen[what] = now
        return True


def run(app: App, *, leader: bool, retention_days: float = retention.RETENTION_DAYS) -> None:
    """One maintenance step; cheap when nothing is due."""
    try:
        thresholds = health.thresholds_for(app)
        if thresholds.feed_retry_budgets and _due(app, "stress", STRESS_FEED_EVERY_SECONDS):
            for dep in health.feed_retry_budgets(app, thresholds):
                log.info("dependency %s is stressed by the shared error rate", dep)
        if not leader:
            return
        if _due(app, "alerts", ALERT_EVERY_SECONDS):
            alerts.evaluate(app.manager, alerts.config_for(app))
        if _due(app, "retention", RETENTION_EVERY_SECONDS):
            done = retention.cleanup(app.manager, retention_days * retention.DAY_SECONDS)
            if done.total:
                log.info("retention removed %s", done.as_dict())
    except Exception as exc:  # maintenance must never stop the loop that claims chunks
        log.error("maintenance failed: %s", redact(str(exc)))
