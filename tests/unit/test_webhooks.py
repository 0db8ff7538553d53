"""Signing and verifying webhook bodies, replays, event ids, the secret's variable and the
in-order sender: pure logic, no I/O."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync import webhooks
from chunksync.exceptions import ConfigurationError
from chunksync.redact import redact

SECRET = "unit-secret-9c1e"
NOW = 1_800_000_000.0


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=20), max_size=5))
def test_a_signed_body_verifies_and_any_change_does_not(payload: dict[str, Any]) -> None:
    body = webhooks.body_of(payload, NOW)
    signature = webhooks.sign(body, SECRET)
    assert webhooks.verify(body, signature, SECRET, now=NOW)
    assert not webhooks.verify(body + b" ", signature, SECRET, now=NOW)
    assert not webhooks.verify(body, signature, SECRET + "x", now=NOW)
    assert "=" not in signature and "+" not in signature and "/" not in signature  # base64url


def test_an_old_timestamp_is_refused_as_a_replay() -> None:
    body = webhooks.body_of({"event": "message.new"}, NOW)
    signature = webhooks.sign(body, SECRET)
    assert webhooks.verify(body, signature, SECRET, now=NOW + 299)
    assert not webhooks.verify(body, signature, SECRET, now=NOW + 301)


def test_event_ids_are_stable_per_change() -> None:
    a = webhooks.event_id("message.new", "me@h", "INBOX", 7, 42)
    assert a == webhooks.event_id("message.new", "me@h", "INBOX", 7, 42)
    assert a != webhooks.event_id("message.new", "me@h", "INBOX", 8, 42)


def test_the_secret_variable_must_be_set_and_is_then_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="HOOK_SECRET is not set"):
        webhooks.secret_from_env("HOOK_SECRET")
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-value-for-hooks")
    assert webhooks.secret_from_env("HOOK_SECRET") == "s3cr3t-value-for-hooks"
    assert "s3cr3t-value-for-hooks" not in redact("failed with s3cr3t-value-for-hooks inside")
    target = webhooks.Target("https://hooks.example.com/x", "s3cr3t-value-for-hooks")
    assert "s3cr3t" not in repr(target)
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        webhooks.check_url("ftp://example.com/hook")


def test_the_sender_delivers_in_order_and_drains_on_close() -> None:
    got: list[Mapping[str, Any]] = []
    gate = threading.Event()

    def fake_post(url: str, payload: Mapping[str, Any], **options: Any) -> bool:
        gate.wait(5)
        got.append(payload)
        return payload["n"] != 2

    sender = webhooks.Sender(webhooks.Target("http://127.0.0.1:1/x", SECRET), post_fn=fake_post)
    for n in range(4):
        sender.send({"n": n})
    gate.set()
    sender.close()
    assert [p["n"] for p in got] == [0, 1, 2, 3]
    assert (sender.delivered, sender.failed) == (3, 1)
