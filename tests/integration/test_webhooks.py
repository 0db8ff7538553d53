"""Webhook deliveries to a real local HTTP server: signed, retried on the policy's backoff,
and the alert webhooks signed through the same code."""

from __future__ import annotations

import logging

import pytest

from chunksync import webhooks
from chunksync.observe.alerts import AlertEvent, post_webhook
from tests.servers.webhook_receiver import webhook_receiver

SECRET = "integration-secret-77d0"


def test_a_delivery_is_retried_then_arrives_signed_once() -> None:
    waits: list[float] = []
    with webhook_receiver(fail_first=2) as receiver:
        payload = {"event": "message.new", "eventId": "abc", "data": {"uid": 1}}
        assert webhooks.post(receiver.url, payload, secret=SECRET, wait=waits.append)
    assert len(waits) == 2 and all(w > 0 for w in waits)  # the policy's backoff, twice
    (got,) = receiver.requests
    assert got.headers[webhooks.EVENT_ID_HEADER] == "abc"
    assert got.headers[webhooks.EVENT_HEADER] == "message.new"
    assert got.headers[webhooks.TIMESTAMP_HEADER] == str(got.payload["timestamp"])
    assert webhooks.verify(got.body, got.headers[webhooks.SIGNATURE_HEADER], SECRET)
    assert SECRET not in got.body.decode()


def test_an_unreachable_receiver_fails_without_showing_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    url = f"http://user:{SECRET}@127.0.0.1:1/hook"
    assert not webhooks.post(url, {"event": "x"}, secret=SECRET, wait=lambda s: None, attempts=2)
    assert "failed" in caplog.text and SECRET not in caplog.text


def test_alert_webhooks_are_signed_when_a_secret_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    event = AlertEvent("dead_chunks:q1", "dead_chunks", "q1", "warning", "firing", "1 dead")
    with webhook_receiver() as receiver:
        assert post_webhook(receiver.url, event)
        monkeypatch.setenv(webhooks.ALERT_SECRET_ENV, SECRET)
        assert post_webhook(receiver.url, event)
    unsigned, signed = receiver.requests
    assert webhooks.SIGNATURE_HEADER not in unsigned.headers
    assert unsigned.payload["rule"] == "dead_chunks" and unsigned.payload["state"] == "firing"
    assert webhooks.verify(signed.body, signed.headers[webhooks.SIGNATURE_HEADER], SECRET)
    assert unsigned.payload["eventId"] != signed.payload["eventId"]
