"""redact(), redact_url() and add_secret(): planted secrets never survive."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync import redact as redact_module
from chunksync.redact import add_secret, redact, redact_url

PASSWORD = "S3cr3t-P4ss!"
TOKEN = "tok_ABCDEF123456"
PLANTED = (PASSWORD, TOKEN)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


XOAUTH2 = f"user=bob@example.com\x01auth=Bearer {TOKEN}\x01\x01"
PLAIN = f"\x00bob@example.com\x00{PASSWORD}"


@contextmanager
def registered(*secrets: str) -> Iterator[None]:
    """Register secrets for one test, and forget them after (the registry is global)."""
    try:
        for secret in secrets:
            add_secret(secret)
        yield
    finally:
        redact_module._reset_secrets()


def assert_clean(text: str) -> None:
    for secret in PLANTED:
        assert secret not in text
        assert b64(secret).rstrip("=") not in text


# --- each form -----------------------------------------------------------------------------

FORMS = [
    # URLs with a password
    (f"postgresql://bob:{PASSWORD}@db.example.com:5432/chunks", "postgresql://bob:***@db"),
    (
        f"imaps://bob%40example.com:{PASSWORD}@imap.example.com/INBOX",
        "imaps://bob%40example.com:***@",
    ),
    (
        f"connect failed: https://bob:{PASSWORD}@host/x (refused)",
        "https://bob:***@host/x (refused)",
    ),
    (f"postgresql://:{PASSWORD}@db/chunks", "postgresql://:***@db"),
    # query strings and form bodies
    (f"GET /cb?access_token={TOKEN}&page=2", "access_token=***&page=2"),
    (f"refresh_token={TOKEN}&grant_type=refresh_token", "refresh_token=***&grant_type="),
    (f"https://api.example.com/v1?api_key={TOKEN}", "api_key=***"),
    (f"apikey={TOKEN}", "apikey=***"),
    (f"key={TOKEN}", "key=***"),
    (f"token={TOKEN}", "token=***"),
    (f"password={PASSWORD}", "password=***"),
    (f"passwd={PASSWORD}", "passwd=***"),
    (f"pwd={PASSWORD}", "pwd=***"),
    (f"secret={TOKEN}", "secret=***"),
    (f"client_id=abc&client_secret={TOKEN}", "client_id=abc&client_secret=***"),
    (f"PASSWORD={PASSWORD}", "PASSWORD=***"),
    (f"db_password={PASSWORD} host=db", "db_password=*** host=db"),
    (f'password="{PASSWORD} with spaces"', 'password="***"'),
    # JSON
    (f'{{"password": "{PASSWORD}", "user": "bob"}}', '{"password": "***", "user": "bob"}'),
    (f'{{"access_token":"{TOKEN}","expires_in":3599}}', '{"access_token":"***","expires_in":3599}'),
    (f'{{"client_secret": "{TOKEN}"}}', '{"client_secret": "***"}'),
    (f'{{"api_key": "{TOKEN}"}}', '{"api_key": "***"}'),
    (f'{{"password": "a\\"{PASSWORD}"}}', '{"password": "***"}'),
    # key: value
    (f"password: {PASSWORD}", "password: ***"),
    (f"token: {TOKEN}\nuser: bob", "token: ***\nuser: bob"),
    (f"{{'password': '{PASSWORD}'}}", "{'password': '***'}"),
    # headers
    (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
    (f"Authorization: Basic {b64('bob:' + PASSWORD)}", "Authorization: Basic ***"),
    (f"authorization: {TOKEN}", "authorization: ***"),
    (f"{{'Authorization': 'Bearer {TOKEN}', 'Accept': 'json'}}", "'Bearer ***', 'Accept'"),
    (f"Proxy-Authorization: Basic {b64('bob:' + PASSWORD)}", "Proxy-Authorization: Basic ***"),
    (f"sent Bearer {TOKEN} to the API", "sent Bearer *** to the API"),
    (f"Basic {b64('bob:' + PASSWORD)}", "Basic ***"),
    # IMAP LOGIN, quoted or atoms, with or without a tag
    (f'a001 LOGIN "bob" "{PASSWORD}"', 'a001 LOGIN "bob" "***"'),
    (f"a001 LOGIN bob {PASSWORD}", "a001 LOGIN bob ***"),
    (f'LOGIN bob@example.com "{PASSWORD}"', 'LOGIN bob@example.com "***"'),
    (f"> b'JNDO2 LOGIN bob \"{PASSWORD}\"'", "> b'JNDO2 LOGIN bob \"***\"'"),
    (f'a001 LOGIN "bob smith" "x\\"{PASSWORD}"', 'a001 LOGIN "bob smith" "***"'),
    # AUTHENTICATE and SASL data
    (f"a002 AUTHENTICATE PLAIN {b64(PLAIN)}", "a002 AUTHENTICATE PLAIN ***"),
    (f"a002 AUTHENTICATE XOAUTH2 {b64(XOAUTH2)}", "a002 AUTHENTICATE XOAUTH2 ***"),
    (
        f"a002 AUTHENTICATE XOAUTH2\r\n+ \r\n{b64(XOAUTH2)}\r\n",
        "a002 AUTHENTICATE XOAUTH2\r\n+ \r\n***",
    ),
    (f"> b'{b64(XOAUTH2)}'", "> b'***'"),
    (f"continuation {b64(PLAIN)} sent", "continuation *** sent"),
    (XOAUTH2, "user=bob@example.com\x01auth=Bearer ***\x01\x01"),
    (repr(XOAUTH2), "auth=Bearer ***\\x01"),
]


@pytest.mark.parametrize(("text", "expected"), FORMS)
def test_each_secret_form_is_redacted(text: str, expected: str) -> None:
    out = redact(text)
    assert_clean(out)
    assert expected in out
    assert redact(out) == out


@pytest.mark.parametrize(
    "text",
    [
        "monkey=banana",
        "uid 4290 fetched from INBOX",
        "max_tokens=512",
        "token_type=bearer_ish",
        "https://imap.example.com/INBOX?page=2",
        "the user logged in",
        "Something strange happened",
        "the IMAP URI holds a password: remove it and use --password-env",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "password: hunter",  # no article: a value, not prose
        "a password: hunter2 was sent",  # not a lowercase word
        "a password:hunter and more",  # no space after the colon
        "the password: hunter",  # nothing after the word
        "a password=hunter and more",  # "=" is never prose
    ],
)
def test_the_prose_exception_is_narrow(text: str) -> None:
    assert "hunter" not in redact(text)


def test_redact_url() -> None:
    url = (
        f"imaps://bob:{PASSWORD}@imap.example.com:993/INBOX"
        f"?token={TOKEN}&page=2&Client_Secret={TOKEN}#access_token={TOKEN}&state=x"
    )
    assert redact_url(url) == (
        "imaps://bob:***@imap.example.com:993/INBOX"
        "?token=***&page=2&Client_Secret=***#access_token=***&state=x"
    )


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "postgresql://bob@db/chunks", "sqlite:///tmp/chunks.db", "not a url"],
)
def test_redact_url_keeps_urls_without_secrets(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_password_with_at_sign() -> None:
    assert redact_url("postgresql://bob:p@ss:w0rd@db:5432/x") == "postgresql://bob:***@db:5432/x"


# --- registered secrets --------------------------------------------------------------------


def test_registered_secret_is_replaced_everywhere() -> None:
    with registered(PASSWORD, TOKEN):
        out = redact(f"the password {PASSWORD} and token {TOKEN}, again {PASSWORD}")
        assert out == "the password *** and token ***, again ***"


def test_registered_secret_in_base64() -> None:
    with registered(PASSWORD):
        assert redact(f"sent {b64(PASSWORD)}") == "sent ***"
        assert redact(f"sent {base64.urlsafe_b64encode(PASSWORD.encode()).decode()}") == "sent ***"


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "user=bob\x01auth=Bearer "])
def test_registered_secret_inside_a_longer_base64_payload(prefix: str) -> None:
    """Wherever the secret starts in the payload, none of its base64 survives."""
    with registered(TOKEN):
        payload = b64(f"{prefix}{TOKEN}-and-more-text")
        out = redact(f"blob {payload}")
        for word in re.findall(r"[A-Za-z0-9+/]+", out):
            decoded = base64.b64decode(word + "=" * (-len(word) % 4) + "==")
            assert TOKEN.encode() not in decoded


def test_registered_secret_percent_encoded() -> None:
    with registered(PASSWORD):
        assert redact("GET /login?p=S3cr3t-P4ss%21") == "GET /login?p=***"


def test_short_secrets_are_ignored() -> None:
    with registered("abc", ""):
        assert redact("abc abc") == "abc abc"


def test_redact_url_applies_registered_secrets() -> None:
    with registered(TOKEN):
        assert redact_url(f"https://{TOKEN}@github.com/x.git") == "https://***@github.com/x.git"


def test_add_secret_from_many_threads() -> None:
    secrets = [f"secret-value-{n:03d}" for n in range(40)]
    with registered():
        threads = [threading.Thread(target=add_secret, args=(s,)) for s in secrets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        out = redact(" ".join(secrets))
        assert out == " ".join(["***"] * len(secrets))


# --- properties ----------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "password",
        "token",
        "key",
        "api_key",
        "=",
        ":",
        ": ",
        '"',
        "'",
        "\\",
        "&",
        "@",
        "://",
        "s://u:",
        "Authorization: ",
        "Bearer ",
        "Basic ",
        "LOGIN ",
        "AUTHENTICATE PLAIN ",
        "AUTHENTICATE XOAUTH2\r\n+ \r\n",
        b64(XOAUTH2),
        b64(PLAIN),
        "***",
        "*",
        " ",
        "\n",
        "\x01",
        "\x00",
        PASSWORD,
        TOKEN,
    ]
)
TEXTS = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=6))).map("".join))


@given(TEXTS)
def test_redact_never_raises_and_is_idempotent(text: str) -> None:
    out = redact(text)
    assert isinstance(out, str)
    assert redact(out) == out


@given(TEXTS)
def test_redact_url_never_raises_and_is_idempotent(text: str) -> None:
    out = redact_url(text)
    assert isinstance(out, str)
    assert redact_url(out) == out


@given(st.text(min_size=4), TEXTS, TEXTS)
def test_a_registered_secret_never_survives(secret: str, before: str, after: str) -> None:
    with registered(secret):
        assert secret not in redact(f"{before}{secret}{after}")
        assert secret not in redact_url(f"{before}{secret}{after}")


@given(TEXTS, TEXTS)
def test_planted_secrets_never_survive_when_registered(before: str, after: str) -> None:
    with registered(PASSWORD, TOKEN):
        out = redact(f"{before}{PASSWORD}{after} {b64(TOKEN)} {b64(XOAUTH2)}")
        assert_clean(out)
        assert redact(out) == out
