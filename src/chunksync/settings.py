"""Settings: the frozen configuration an app hands down to its workers, upkeep and pages.

Health thresholds, alert delivery and retention, read once from the environment when the app is
made (`Settings.from_env`) and replaced whole by `App.configure`. Nothing keeps settings in a
module-level dictionary: whoever needs them is given them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from chunksync.observe.alerts import WEBHOOK_ENV, AlertConfig
from chunksync.observe.health import THRESHOLDS_ENV, load_thresholds
from chunksync.observe.model import HealthThresholds
from chunksync.observe.retention import RETENTION_DAYS
from chunksync.observe.rollups import MINUTE_ROLLUP_KEEP_SECONDS, ROLLUP_RETENTION_DAYS

UPKEEP_TICK_SECONDS = 1.0  # how often the upkeep loop looks for a duty that is due
RECOVERY_EVERY_SECONDS = 1.0  # the stuck-chunk sweep's longest interval (runtime/upkeep.py)
ALERT_EVERY_SECONDS = 15.0
RETENTION_EVERY_SECONDS = 600.0
STRESS_FEED_EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    """What the app's workers and pages are configured with; replaced, never changed."""

    health: HealthThresholds = field(default_factory=HealthThresholds)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    retention_days: float = RETENTION_DAYS
    # Attempt rollups outlive raw attempts: trends and SLAs reach back past retention_days.
    rollup_retention_days: float = ROLLUP_RETENTION_DAYS
    minute_rollup_keep_s: float = MINUTE_ROLLUP_KEEP_SECONDS
    alert_every_s: float = ALERT_EVERY_SECONDS
    retention_every_s: float = RETENTION_EVERY_SECONDS
    stress_feed_every_s: float = STRESS_FEED_EVERY_SECONDS

    @classmethod
    def from_env(cls) -> Settings:
        """Thresholds from the TOML file CHUNKSYNC_HEALTH_CONFIG names (else the defaults) and
        the alert webhook from CHUNKSYNC_ALERT_WEBHOOK."""
        path = os.environ.get(THRESHOLDS_ENV)
        thresholds = load_thresholds(path) if path else HealthThresholds()
        webhook = os.environ.get(WEBHOOK_ENV) or None
        return cls(health=thresholds, alerts=AlertConfig(thresholds, webhook).checked())

    def with_health(self, thresholds: HealthThresholds) -> Settings:
        """These thresholds for the health state, the alerts and the stress feed."""
        return replace(self, health=thresholds, alerts=replace(self.alerts, thresholds=thresholds))

    def with_alerts(self, config: AlertConfig) -> Settings:
        return replace(self, alerts=config.checked(), health=config.thresholds)
