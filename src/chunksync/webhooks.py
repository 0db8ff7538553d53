"""Signed webhook deliveries: one way to sign, POST and retry, for mail events and alerts alike.

Receivers of EmailEngine's webhooks check `X-EE-Wh-Signature`, an HMAC-SHA256 of the raw body
under a shared secret, base64url without padding; chunksync signs the same way, in
`X-Chunksync-Signature`. The body carries `timestamp` (Unix seconds of this attempt), so a
receiver that rejects an old timestamp is safe against a replayed request, and `eventId`,
the same on every attempt (and for the same change seen again after a reconnect), so a
receiver that keeps the ids it has seen acts on each event once. A failure is categorized and
retried on the project's RetryPolicy backoff for its category; each attempt is signed afresh.

The secret is read from an environment variable the user names, registered as a secret (so
`redact` masks it anywhere), and never written into a body, a log line or an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chunksync.errors import categorize
from chunksync.exceptions import ConfigurationError
from chunksync.redact import add_secret, redact, redact_url
from chunksync.retry import DEFAULT_POLICY, RetryPolicy

log = logging.getLogger("chunksync.webhooks")

SIGNATURE_HEADER = "X-Chunksync-Signature"
TIMESTAMP_HEADER = "X-Chunksync-Timestamp"
EVENT_HEADER = "X-Chunksync-Event"
EVENT_ID_HEADER = "X-Chunksync-Event-Id"
ALERT_SECRET_ENV = "CHUNKSYNC_ALERT_WEBHOOK_SECRET"
ATTEMPTS = 6
TIMEOUT_SECONDS = 5.0
REPLAY_WINDOW_SECONDS = 300.0  # what `verify` accepts by default, as receivers are advised
DRAIN_SECONDS = 10.0  # how long `Sender.close` waits for events still queued


def sign(body: bytes, secret: str) -> str:
    """The signature of a raw body: HMAC-SHA256, base64url without padding (EmailEngine's)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(
    body: bytes,
    signature: str,
    secret: str,
    *,
    now: float | None = None,
    window_s: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver does: the signature matches the raw body, and its `timestamp` is recent."""
    if not hmac.compare_digest(sign(body, secret), signature):
        return False
    try:
        sent = float(json.loads(body)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    return abs((time.time() if now is None else now) - sent) <= window_s


def event_id(*parts: object) -> str:
    """A stable id for one change (kind, account, folder, UIDVALIDITY, UID, flags...): the same
    change seen twice, say after a reconnect, gets the same id, so receivers drop the second."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def secret_from_env(name: str | None) -> str | None:
    """The secret in the variable `name` (None: unsigned), registered so it is always masked."""
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"the webhook secret variable {name} is not set")
    add_secret(value)
    return value


def secret_if_set(name: str) -> str | None:
    """The secret in the variable `name` if it is set (the alerts' optional signing)."""
    return secret_from_env(name) if os.environ.get(name) else None


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"webhook '{redact_url(url)}' must be http:// or https://")
    return url


def body_of(payload: Mapping[str, Any], timestamp: float) -> bytes:
    return json.dumps({**payload, "timestamp": int(timestamp)}, sort_keys=True).encode("utf-8")


def post(
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    attempts: int = ATTEMPTS,
    wait: Callable[[float], object] | None = None,
    what: str = "webhook",
) -> bool:
    """POST `payload` as JSON, signed when there is a secret; a failure is categorized and
    retried on the policy's backoff for its category (never for one it does not retry).
    True once delivered (any 2xx)."""
    import urllib.request  # when a webhook is sent (17 ms): every CLI command imports this module

    pause = wait or threading.Event().wait
    rng = random.Random()
    for attempt in range(1, attempts + 1):
        now = time.time()
        body = body_of(payload, now)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(int(now))}
        if "event" in payload:
            headers[EVENT_HEADER] = str(payload["event"])
        if "eventId" in payload:
            headers[EVENT_ID_HEADER] = str(payload["eventId"])
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read()
            return True
        except Exception as exc:  # every failure is categorized, as a chunk's would be
            category = categorize(exc).category
            if attempt == attempts or not policy.is_retryable(category):
                log.error(
                    "%s %s failed (%s): %s", what, redact_url(url), category, redact(str(exc))
                )
                return False
            pause(policy.backoff(category, attempt, rng))
    return False


@dataclass(frozen=True, slots=True)
class Target:
    """Where events go; `repr` never shows the secret."""

    url: str
    secret: str | None = None
    policy: RetryPolicy = DEFAULT_POLICY
    attempts: int = ATTEMPTS

    def __repr__(self) -> str:
        return f"Target(url={redact_url(self.url)!r}, signed={self.secret is not None})"


class Sender:
    """Delivers events in order on one background thread, so the watcher never waits on the
    receiver; `close` lets what is queued go out (within DRAIN_SECONDS) and stops."""

    def __init__(self, target: Target, *, post_fn: Callable[..., bool] = post) -> None:
        self.target = target
        self.delivered = 0
        self.failed = 0
        self._post = post_fn
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chunksync-webhook", daemon=True)
        self._thread.start()

    def send(self, payload: Mapping[str, Any]) -> None:
        self._queue.put(payload)

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            t = self.target
            ok = self._post(
                t.url,
                payload,
                secret=t.secret,
                policy=t.policy,
                attempts=t.attempts,
                wait=self._stop.wait,
            )
            if ok:
                self.delivered += 1
            else:
                self.failed += 1

    def close(self, drain_s: float = DRAIN_SECONDS) -> None:
        self._queue.put(None)
        self._thread.join(drain_s)
        self._stop.set()  # a delivery still backing off gives up now
        self._thread.join(TIMEOUT_SECONDS + 1.0)
