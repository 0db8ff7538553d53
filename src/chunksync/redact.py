"""Keep secrets out of logs, error messages and the database.

`redact()` replaces the secret part of every form we know with "***" and keeps what names it
(`password=***`, `user:***@host`, `Authorization: Bearer ***`, `LOGIN "bob" "***"`), so a
redacted message still says what went wrong. `add_secret()` registers a value we know is secret
(a password read from the environment, a token a command printed); every occurrence of it, and
of its base64 and percent-encoded forms, is then replaced wherever it appears.

Redaction errs towards hiding: a harmless word after "Bearer" or "key:" is hidden too. It is
idempotent, never raises, and uses only precompiled patterns.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote_plus

__all__ = ["add_secret", "redact", "redact_url"]

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words everywhere
_MAX_PASSES = 8  # overlapping forms settle in two or three passes

# Key names whose value is a secret: exact "key"/"pwd", or any name ending in a secret word
# (access_token, client_secret, db_password, private_key).
_SECRET_NAME = (
    r"(?:[\w.-]*?(?:token|passw(?:or)?d|secret|api[_-]?key|apikey)"
    r"|(?:[\w.-]*?[_.-])?(?:key|pwd))"
)
_QUOTED = r""""(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*'"""
_AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "negotiate", "ntlm", "token"})

# scheme://user:password@host -- the password may itself hold "@" or ":", so take the last "@"
# of the authority. The lookbehind starts the scheme only at the start of a word (linear time).
_URL_USERINFO = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):[^\s/?#]*@"
)

_AUTH_HEADER = re.compile(
    rf"""(?P<key>(?<![\w-])(?P<q>["']?)(?:proxy-)?authorization(?P=q)[ \t]*[=:][ \t]*)"""
    rf"(?P<value>{_QUOTED}|[^\r\n]+)",
    re.IGNORECASE,
)

# IMAP commands are sent in capitals; matching "login" in any case would mask English prose.
_IMAP_LOGIN = re.compile(
    rf"""(?P<head>(?<![\w-])LOGIN[ \t]+(?:{_QUOTED}|[^\s"]+)[ \t]+)(?P<value>{_QUOTED}|[^\s"]+)"""
)

_IMAP_AUTHENTICATE = re.compile(
    r"(?P<head>(?<![\w-])AUTHENTICATE[ \t]+(?:PLAIN|XOAUTH2|OAUTHBEARER|LOGIN)"
    r"(?:[ \t]+|[ \t]*(?:\r?\n|\\r\\n)(?:\+[^\r\n]*?(?:\r?\n|\\r\\n))?))"
    r"(?P<value>[A-Za-z0-9+/]{4,}={0,2})"
)

_BEARER = re.compile(
    r"(?P<head>(?<![\w-])(?:Bearer|Basic)[ \t]+)(?P<value>[A-Za-z0-9\-._~+/=]+)", re.IGNORECASE
)

_KEY_VALUE = re.compile(
    rf"""(?P<head>(?<![\w.-])(?P<q>["']?){_SECRET_NAME}(?P=q)[ \t]*[=:][ \t]*)"""
    rf"""(?P<value>{_QUOTED}|[^\s&;,'"}}\])]+)""",
    re.IGNORECASE,
)

# An English article right before a key name: the name is a noun in a sentence.
_ARTICLE_BEFORE = re.compile(r"(?:^|\s)(?:a|an|the|your|no)[ \t]+\Z", re.IGNORECASE)

# Base64 words long enough to carry SASL credentials (PLAIN, XOAUTH2 continuation data).
_BASE64_WORD = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{8,}={0,2}(?![A-Za-z0-9+/=])")
_SASL_PLAIN = re.compile(rb"[^\x00]*\x00[^\x00]+\x00[^\x00]+")

_secrets_lock = threading.Lock()
_secret_forms: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def redact(text: str) -> str:
    """Return `text` with every secret replaced by "***", keeping the names around them."""
    try:
        out = text if isinstance(text, str) else str(text)
        # The forms overlap ("password=LOGIN LOGIN a b"), so one pass can leave a match that
        # only masking revealed; passing again until nothing changes makes redact idempotent.
        for _ in range(_MAX_PASSES):
            again = _redact_once(out)
            if again == out:
                break
            out = again
        return out
    except Exception:  # a redactor that fails must fail closed, never leak the raw text
        return MASK


def _redact_once(text: str) -> str:
    out = _strip_secrets(text)
    for pattern, replace in _RULES:
        out = pattern.sub(replace, out)
    return _strip_secrets(out)


def redact_url(url: str) -> str:
    """Return `url` with the password of its user info and its secret query values as "***".

    `scheme://user:pw@host/path?token=x&page=2#access_token=y` becomes
    `scheme://user:***@host/path?token=***&page=2#access_token=***`; the rest is kept as is.
    """
    try:
        rest, hash_mark, fragment = url.partition("#")
        head, question_mark, query = rest.partition("?")
        head = _URL_USERINFO.sub(r"\g<head>:***@", head)
        out = head + question_mark + _redact_pairs(query) + hash_mark + _redact_pairs(fragment)
        return _strip_secrets(out)
    except Exception:  # fail closed, as redact() does
        return MASK


def add_secret(value: str) -> None:
    """Register a known secret: `redact()` then replaces it (and its encodings) everywhere.

    Values shorter than four characters are ignored. Safe to call from any thread.
    """
    global _secret_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
        return
    with _secrets_lock:
        forms = _secret_forms | _encoded_forms(value)
        if forms == _secret_forms:
            return
        _secret_forms.update(forms)
        # Longest first, so that a secret is masked whole, not as a shorter registered part.
        ordered = sorted(_secret_forms, key=lambda form: (-len(form), form))
        _secret_pattern = re.compile("|".join(re.escape(form) for form in ordered))


def _reset_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _secret_pattern
    with _secrets_lock:
        _secret_forms.clear()
        _secret_pattern = None


def _encoded_forms(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode("ascii").rstrip("="))
        forms.update(_aligned_base64(raw, encode))
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def _aligned_base64(raw: bytes, encode: Callable[[bytes], bytes]) -> set[str]:
    """The base64 characters the secret alone decides, at each of the three byte alignments.

    Inside a longer payload (XOAUTH2's "user=...\\x01auth=Bearer <token>\\x01\\x01") the
    secret's base64 depends on where it starts modulo 3; these cores match it wherever it is.
    """
    cores: set[str] = set()
    for offset in range(3):
        encoded = encode(b"\x00" * offset + raw).decode("ascii")
        first = (8 * offset + 5) // 6  # the first character made of the secret's bits only
        last = (8 * offset + 8 * len(raw)) // 6  # past the last such character
        cores.add(encoded[first:last])
    return cores


def _strip_secrets(text: str) -> str:
    pattern = _secret_pattern
    if pattern is None:
        return text
    # Each pass masks a form of at least four characters with three, so the text shrinks
    # and this ends; repeating catches a secret that masking itself brought together.
    while True:
        out = pattern.sub(MASK, text)
        if out == text:
            return out
        text = out


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote_mark = value[0] if value[:1] in ("'", '"') and len(value) >= 2 else ""
    return f"{match.group('head')}{quote_mark}{MASK}{quote_mark}"


def _mask_key_value(match: re.Match[str]) -> str:
    """`password: x` is masked, unless it is prose: "a password: remove it" (an article before
    the name, a colon and a space, then a lowercase word and more words) is an instruction,
    and masking it would garble the very message that tells the user what to do."""
    if _is_prose(match):
        return match.group(0)
    return _mask_value(match)


def _is_prose(match: re.Match[str]) -> bool:
    head, value, text = match.group("head"), match.group("value"), match.string
    if not head.rstrip().endswith(":") or head.endswith(":") or not value.isalpha():
        return False
    if not value.islower() or not text.startswith(" ", match.end()):
        return False
    return _ARTICLE_BEFORE.search(text, 0, match.start()) is not None


def _mask_auth_header(match: re.Match[str]) -> str:
    value = match.group("value")
    quote_mark = value[0] if value[:1] in ("'", '"') and len(value) >= 2 else ""
    inner = value[1:-1] if quote_mark else value
    words = inner.split(None, 1)
    scheme = f"{words[0]} " if len(words) > 1 and words[0].lower() in _AUTH_SCHEMES else ""
    return f"{match.group('key')}{quote_mark}{scheme}{MASK}{quote_mark}"


def _mask_sasl_word(match: re.Match[str]) -> str:
    word = match.group(0)
    try:
        raw = base64.b64decode(word + "=" * (-len(word) % 4), validate=True)
    except (binascii.Error, ValueError):
        return word
    if b"\x01auth=" in raw or _SASL_PLAIN.fullmatch(raw):
        return MASK
    return word


def _redact_pairs(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        if equals and _is_secret_name(unquote_plus(name)):
            pair = f"{name}={MASK}"
        pairs.append(pair)
    return "&".join(pairs)


_SECRET_NAME_FULL = re.compile(_SECRET_NAME, re.IGNORECASE)


def _is_secret_name(name: str) -> bool:
    return _SECRET_NAME_FULL.fullmatch(name) is not None


# The order matters: whole headers before the schemes inside them, and SASL blobs before
# anything that could cut them apart.
_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_AUTH_HEADER, _mask_auth_header),
    (_URL_USERINFO, lambda match: f"{match.group('head')}:{MASK}@"),
    (_IMAP_LOGIN, _mask_value),
    (_IMAP_AUTHENTICATE, _mask_value),
    (_BASE64_WORD, _mask_sasl_word),
    (_BEARER, _mask_value),
    (_KEY_VALUE, _mask_key_value),
)
