"""Dovecot for the tests (to be built with the IMAP source)."""

from __future__ import annotations
