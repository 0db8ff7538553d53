"""Hypothesis on what users and servers hand us: source URIs, database URLs, message headers.

Every parser either answers or raises ConfigurationError (one sentence for the user); nothing
else may escape, and the message parser never raises at all. The categorizer and the Retry-After
parser are fuzzed in test_errors.py.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunksync import redact as redact_module
from chunksync.backends import open_backend
from chunksync.backends.sqlite import path_from_url
from chunksync.exceptions import ChunksyncError, ConfigurationError
from chunksync.sources.base import kind_of
from chunksync.sources.imap import parse_imap_uri
from chunksync.sources.maildir import maildir_path
from chunksync.sources.mbox import mbox_path
from chunksync.store.parse import HEADER_COLUMNS, MAX_HEADER_CHARS, parse_message

SCHEMES = st.sampled_from(
    ["imap", "imaps", "IMAP", "maildir", "mbox", "sqlite", "postgresql", "postgres", "ftp", ""]
)
URL_CHARS = st.characters(codec="utf-8")  # no lone surrogates
JUNK = st.text(URL_CHARS, max_size=60)


@st.composite
def uris(draw: st.DrawFn) -> str:
    """Mostly URL-shaped text: a scheme, a netloc with odd user, port and host, a path, a query."""
    scheme = draw(SCHEMES)
    user = draw(st.one_of(st.just(""), JUNK.map(lambda s: s + "@")))
    host = draw(st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "example.com", ""]), JUNK))
    port = draw(st.one_of(st.just(""), st.integers(-5, 70000).map(lambda n: f":{n}"), JUNK))
    path = draw(st.one_of(st.just(""), JUNK.map(lambda s: "/" + s)))
    query = draw(st.one_of(st.just(""), JUNK.map(lambda s: "?" + s)))
    return f"{scheme}://{user}{host}{port}{path}{query}"


ANY_URI = st.one_of(uris(), JUNK)


@pytest.fixture(scope="module", autouse=True)
def keep_registered_secrets() -> Iterator[None]:
    """parse_imap_uri registers any password it meets: give the other tests their state back."""
    forms, pattern = set(redact_module._secret_forms), redact_module._secret_pattern
    yield
    with redact_module._secrets_lock:
        redact_module._secret_forms.clear()
        redact_module._secret_forms.update(forms)
        redact_module._secret_pattern = pattern


@given(ANY_URI)
def test_kind_of_is_total(uri: str) -> None:
    kind = kind_of(uri)
    assert kind == kind.lower() and kind != "imaps"


@given(ANY_URI)
def test_imap_uris_parse_or_say_why(uri: str) -> None:
    try:
        target = parse_imap_uri(uri)
    except ConfigurationError as exc:
        assert str(exc).startswith(("invalid IMAP URI", "the IMAP URI holds a password"))
        return
    assert target.user and target.host and target.folder
    assert 0 < target.port < 65536 and target.connections >= 1 and target.timeout_s >= 1


@given(
    st.text(string.ascii_letters + string.digits + "._-+", min_size=1, max_size=20),
    st.text(URL_CHARS, min_size=1, max_size=30).filter(lambda s: s.strip("/")),
    st.integers(1, 65535),
)
def test_imap_uri_round_trip(user: str, folder: str, port: int) -> None:
    target = parse_imap_uri(f"imap://{quote(user)}@mail.example.com:{port}/{quote(folder)}")
    assert (target.user, target.host, target.port) == (user, "mail.example.com", port)
    assert target.folder == folder.lstrip("/")


@given(ANY_URI)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_maildir_and_mbox_uris_parse_or_say_why(uri: str) -> None:
    for parse in (maildir_path, mbox_path):
        try:
            path, account, folder = parse(uri)
        except ConfigurationError:
            continue
        assert isinstance(path, Path) and account and folder


@pytest.mark.parametrize("uri", ["maildir://[x/Maildir", "mbox:///tmp/a%00b.mbox"])
def test_maildir_and_mbox_refuse_broken_uris_in_one_sentence(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        (maildir_path if uri.startswith("maildir") else mbox_path)(uri)


@given(ANY_URI)
def test_sqlite_path_from_url_parses_or_says_why(uri: str) -> None:
    try:
        path = path_from_url(uri)
    except ConfigurationError as exc:
        assert "SQLite URL" in str(exc)
        return
    assert path and uri.lower().startswith("sqlite:")


@given(ANY_URI.filter(lambda u: not u.lower().startswith(("sqlite", "postgres"))))
def test_open_backend_refuses_other_schemes_in_one_sentence(uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"(unsupported|invalid) database URL"):
        open_backend(uri)


@given(st.text(URL_CHARS, max_size=40))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_open_backend_on_odd_sqlite_urls(tmp_path: Path, name: str) -> None:
    """A SQLite URL names a file or is refused; it never raises anything but our errors."""
    url = f"sqlite:///{tmp_path / 'fuzz'}/{quote(name)}"
    (tmp_path / "fuzz").mkdir(exist_ok=True)
    try:
        backend = open_backend(url, create=False)
    except ChunksyncError:
        return
    backend.close()


HEADER_NAMES = st.sampled_from(
    [*HEADER_COLUMNS.values(), "X-Other", "Content-Type", "MIME-Version"]
)
HEADER_VALUES = st.one_of(
    st.text(URL_CHARS, max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "=?utf-8?q?caf=C3=A9?=",
            "=?x-unknown?b?AAAA?=",
            "=?utf-8?b?###?=",
            "multipart/mixed; boundary=",
            'multipart/alternative; boundary="b"',
            "<a@b>\r\n\t<c@d>",
        ]
    ),
)


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = b"".join(
        n.encode() + b": " + v.encode("utf-8", "surrogateescape") + eol for n, v in headers
    )
    separator = draw(st.sampled_from([eol, b""]))
    body = draw(st.binary(max_size=200))
    return head + separator + body


@given(st.one_of(raw_messages(), st.binary(max_size=400)))
@settings(max_examples=300)
def test_message_headers_parse_without_ever_raising(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert set(parsed.headers) == set(HEADER_COLUMNS)
    for value in parsed.headers.values():
        if value is not None:
            assert len(value) <= MAX_HEADER_CHARS
            assert "\x00" not in value and "\n" not in value and "\r" not in value
    assert all(isinstance(d, str) and d for d in parsed.defects)


@given(
    st.text(string.ascii_letters + string.digits + " .,!?-", min_size=1, max_size=60),
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=20),
)
def test_plain_headers_come_back_as_written(subject: str, local: str) -> None:
    raw = f"Message-ID: <{local}@example.com>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    parsed = parse_message(raw)
    assert parsed.headers["message_id"] == f"<{local}@example.com>"
    assert parsed.headers["subject"] == " ".join(subject.split())
    assert parsed.defects == []
