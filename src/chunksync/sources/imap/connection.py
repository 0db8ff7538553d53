"""IMAP connections: open (TLS, STARTTLS, login or XOAUTH2, COMPRESS=DEFLATE), a per-account
pool with a cap, and the raw FETCH the chunks use.

The pool keeps idle logged-in connections for the next chunk, never opens more than the account's
cap at once, and lowers the cap when the server refuses a connection for having too many (the
error still goes to the worker, categorized rate_limit, so the chunk backs off). A connection that
raised is never reused. IMAPClient has no COMPRESS and no streaming FETCH, so both reach into its
imaplib object (`client._imap`), in this one module.
"""

from __future__ import annotations

import functools
import imaplib
import logging
import re
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from imapclient import IMAPClient
from imapclient.imapclient import SocketTimeout
from imapclient.response_parser import parse_fetch_response

from chunksync.errors import categorize
from chunksync.exceptions import ConfigurationError
from chunksync.models import ErrorCategory
from chunksync.sources.imap.auth import Credentials
from chunksync.sources.imap.uri import ImapTarget

log = logging.getLogger("chunksync.imap")

CONNECT_TIMEOUT_SECONDS = 15.0
IDLE_CHECK_SECONDS = 30.0  # an idle connection older than this gets a NOOP before reuse
POOL_WAIT_SECONDS = 120.0
_READ_BYTES = 65536


@dataclass(eq=False)
class Connection:
    """A logged-in client, what it has selected, and what the server can do."""

    client: IMAPClient
    capabilities: frozenset[str]
    selected: str | None = None
    selected_info: dict[bytes, Any] = field(default_factory=dict)
    compressed: bool = False
    last_used: float = field(default_factory=time.monotonic)

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def select(self, folder: str) -> dict[bytes, Any]:
        """EXAMINE the folder (read-only: nothing gets marked read), once per connection."""
        if self.selected != folder:
            self.selected = None
            self.selected_info = self.client.select_folder(folder, readonly=True)
            self.selected = folder
        return self.selected_info

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # best effort: the socket may already be gone
            try:
                self.client.shutdown()
            except Exception:
                pass


def open_connection(target: ImapTarget, credentials: Credentials) -> Connection:
    secret = credentials.secret(target.account)
    timeout = SocketTimeout(connect=CONNECT_TIMEOUT_SECONDS, read=target.timeout_s)
    context = ssl.create_default_context() if target.implicit_tls or target.starttls else None
    client = IMAPClient(
        target.host,
        port=target.port,
        ssl=target.implicit_tls,
        ssl_context=context,
        timeout=timeout,
        use_uid=True,
    )
    try:
        if target.starttls:
            client.starttls(context)
        if secret.kind == "oauth2":
            client.oauth2_login(target.user, secret.value)
        else:
            client.login(target.user, secret.value)
        caps = frozenset(c.decode("ascii", "replace").upper() for c in client.capabilities())
        conn = Connection(client, caps)
        wants = target.compress if target.compress is not None else not target.loopback
        if wants and conn.has("COMPRESS=DEFLATE"):
            enable_compression(client)
            conn.compressed = True
        return conn
    except BaseException:
        try:
            client.shutdown()
        except Exception:
            pass
        raise


# --- COMPRESS=DEFLATE (RFC 4978) --------------------------------------------------------------


class _InflatingReader:
    """What imaplib reads from (`readline`, `read`) once the stream is compressed."""

    def __init__(self, sock: Any, buffered: bytes) -> None:
        self._sock = sock
        self._inflate = zlib.decompressobj(-15)
        self._buffer = bytearray(self._inflate.decompress(buffered))

    def _fill(self) -> bool:
        data = self._sock.recv(_READ_BYTES)
        if not data:
            return False
        self._buffer += self._inflate.decompress(data)
        return True

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def readline(self, limit: int = -1) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0 or (0 < limit <= len(self._buffer)):
                cut = end + 1 if end >= 0 else limit
                if 0 < limit < cut:
                    cut = limit
                out = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return out
            start = len(self._buffer)
            if not self._fill():
                out = bytes(self._buffer)
                self._buffer.clear()
                return out

    def close(self) -> None:
        return None


def enable_compression(client: IMAPClient) -> None:
    imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))  # imaplib knows no COMPRESS
    imap = client._imap
    typ, data = imap._simple_command("COMPRESS", "DEFLATE")
    if typ != "OK":
        raise ConfigurationError(f"the server refused COMPRESS=DEFLATE: {data!r}")
    sock = imap.sock
    # The server sends nothing after its OK until our next command: no plain bytes are buffered.
    imap.file = _InflatingReader(sock, b"")
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    lock = threading.Lock()

    def send(data: bytes) -> None:
        with lock:
            sock.sendall(deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))

    imap.send = send


# --- the raw FETCH -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchResult:
    messages: dict[int, dict[bytes, Any]]
    throttled: bool


FetchedPart = Callable[[dict[int, dict[bytes, Any]]], None]


def uid_fetch(
    conn: Connection,
    uids: str,
    items: Sequence[str],
    modifiers: Sequence[str] = (),
    *,
    part_bytes: int = 0,
    on_part: FetchedPart | None = None,
) -> FetchResult:
    """`UID FETCH uids (items) [(modifiers)]`, keyed by UID, and whether the server said
    [THROTTLED] on the way (Gmail's "slow down" on an OK response).

    With `on_part`, the messages are handed over in parts as they arrive, each once its
    literals (bodies) add up to `part_bytes`, while the server goes on sending: memory holds
    one part, and a large FETCH needs no look at its sizes first. The result holds the last
    part. Should `on_part` raise, the connection is mid-response: the caller discards it."""
    imap = conn.client._imap
    args = ["UID", "FETCH", uids, "(" + " ".join(items) + ")"]
    if modifiers:
        args.append("(" + " ".join(modifiers) + ")")
    tag = imap._command(*args)
    flush = None if on_part is None else (lambda raw: on_part(_parsed(conn, raw)))
    typ, data, raw = read_responses(imap, tag, "FETCH", part_bytes=part_bytes, on_part=flush)
    if typ != "OK":
        raise conn.client.Error(f"UID FETCH failed: {_text(data)}")
    throttled = b"THROTTLED" in b" ".join(d for d in data if isinstance(d, bytes))
    for text in imap.untagged_responses.pop("OK", []) or []:
        if isinstance(text, bytes) and b"THROTTLED" in text:
            throttled = True
    conn.last_used = time.monotonic()
    return FetchResult(_parsed(conn, raw), throttled)


def _parsed(conn: Connection, raw: list[Any]) -> dict[int, dict[bytes, Any]]:
    if not raw:
        return {}
    parsed = parse_fetch(raw)
    if parsed is None:  # something the fast path does not know: IMAPClient's full parser
        slow = parse_fetch_response(raw, conn.client.normalise_times, True)
        parsed = {int(k): v for k, v in slow.items()}
    return parsed


# imaplib's own patterns (not part of its typed interface), for `read_responses`.
MAX_LINE_BYTES = 1_000_000  # imaplib's _MAXLINE
_UNTAGGED = re.compile(rb"\* (?P<type>[A-Z-]+)( (?P<data>.*))?")
_RESPONSE_CODE = re.compile(rb"\[(?P<type>[A-Z-]+)( (?P<data>.*))?\]")


def read_responses(
    imap: Any,
    tag: bytes,
    name: str,
    *,
    part_bytes: int = 0,
    on_part: Callable[[list[Any]], None] | None = None,
) -> tuple[str, list[Any], list[Any]]:
    """Read what the server sends up to the tagged reply to `tag`, as imaplib's
    `_command_complete(name, tag)` would, but hand back the untagged `name` responses (in
    imaplib's shape: a literal as a (text, bytes) tuple, then the line's rest) instead of
    storing them: a FETCH of 500 messages is a thousand lines and 500 literals, and imaplib's
    reading (a regular expression per line tried in turn, a debug log entry per line) cost a
    third of a chunk's CPU. Other untagged responses are stored as imaplib stores them; BYE, EOF
    and a BAD reply raise what imaplib raises. Returns (status, [text], responses). With
    `on_part`, the `name` responses read so far go to it, whole, each time their literals reach
    `part_bytes`; the rest are returned."""
    readline, read = imap.file.readline, imap.file.read
    literal, status_line = imap.Literal, imap.Untagged_status
    prefix = tag + b" "
    found: list[Any] = []
    held = 0  # bytes of the literals in `found`
    imap._check_bye()

    def line() -> bytes:
        got = readline(MAX_LINE_BYTES + 1)
        if not got:
            raise imap.abort(f"command: {name} => socket error: EOF")
        if not got.endswith(b"\r\n"):
            raise imap.abort(f"command: {name} => socket error: unterminated line")
        return bytes(got[:-2])

    while True:
        resp = line()
        if resp.startswith(prefix):
            typ_bytes, _, dat = resp[len(prefix) :].partition(b" ")
            imap.tagged_commands.pop(tag, None)
            typ = typ_bytes.decode("ascii", "replace")
            _store_code(imap, typ, dat)
            imap._check_bye()
            if typ == "BAD":
                raise imap.error(f"{name} command error: {typ} {[dat]}")
            return typ, [dat], found
        match = _UNTAGGED.match(resp)
        extra = None
        if match is None:
            match = status_line.match(resp)
            extra = None if match is None else match.group("data2")
        if match is None:
            raise imap.abort(f"command: {name} => unexpected response: {resp[:200]!r}")
        typ = match.group("type").decode("ascii", "replace")
        dat = match.group("data") or b""
        if extra:
            dat = dat + b" " + extra
        keep = found.append if typ == name else functools.partial(imap._append_untagged, typ)
        while (size := literal.match(dat)) is not None:
            want = int(size.group("size"))
            data = read(want)
            if len(data) != want:
                raise imap.abort(f"command: {name} => socket error: EOF in a literal")
            keep((dat, data))
            if typ == name:
                held += want
            dat = line()
        keep(dat)
        _store_code(imap, typ, dat)
        if on_part is not None and held >= part_bytes and found:
            on_part(found)
            found, held = [], 0


def _store_code(imap: Any, typ: str, dat: bytes) -> None:
    """imaplib's keeping of a response code ([THROTTLED], [ALERT], ...) of an OK, NO or BAD."""
    if typ in ("OK", "NO", "BAD"):
        code = _RESPONSE_CODE.match(dat)
        if code is not None:
            imap._append_untagged(code.group("type").decode("ascii", "replace"), code.group("data"))


# The shapes a sync's FETCH responses take, read with a few regular expressions: IMAPClient's
# general tokenizer costs more CPU than everything else in a chunk together. Anything else
# (Gmail labels, a second literal, an odd server) returns None and gets the general parser.
_LITERAL_HEAD = re.compile(rb"^\d+ \((.*)BODY\[\] \{(\d+)\}$", re.DOTALL)
_ATTRIBUTES = {
    b"UID": re.compile(rb"(?:^|[ (])UID (\d+)"),
    b"RFC822.SIZE": re.compile(rb"RFC822\.SIZE (\d+)"),
    b"MODSEQ": re.compile(rb"MODSEQ \((\d+)\)"),
    b"X-GM-MSGID": re.compile(rb"X-GM-MSGID (\d+)"),
}
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def parse_fetch(raw: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """UID -> {item: value}, as IMAPClient gives it, for the usual responses; else None."""
    found: dict[int, dict[bytes, Any]] = {}
    i = 0
    while i < len(raw):
        item = raw[i]
        body: bytes | None = None
        if isinstance(item, tuple):
            if len(item) != 2:
                return None
            match = _LITERAL_HEAD.match(item[0])
            tail = raw[i + 1] if i + 1 < len(raw) and isinstance(raw[i + 1], bytes) else b""
            if match is None or b"{" in tail or len(item[1]) != int(match.group(2)):
                return None
            text, body = match.group(1) + b" " + tail, item[1]
            i += 2
        elif isinstance(item, bytes):
            text = item
            i += 1
        else:
            return None
        if b"X-GM-LABELS" in text:
            return None
        entry = _attributes(text)
        if entry is None:
            return None
        if body is not None:
            entry[b"BODY[]"] = body
        found[int(entry[b"UID"])] = entry
    return found


def _attributes(text: bytes) -> dict[bytes, Any] | None:
    entry: dict[bytes, Any] = {}
    for name, pattern in _ATTRIBUTES.items():
        match = pattern.search(text)
        if match:
            value = int(match.group(1))
            entry[name] = (value,) if name == b"MODSEQ" else value
    if b"UID" not in entry:
        return None
    flags = _FLAGS.search(text)
    if flags:
        entry[b"FLAGS"] = tuple(flags.group(1).split())
    date = _INTERNALDATE.search(text)
    if date:
        when = internaldate(date.group(1))
        if when is None:
            return None
        entry[b"INTERNALDATE"] = when
    return entry


def _text(data: Any) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


# --- the pool -------------------------------------------------------------------------------


class _Account:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.peak = 0
        self.idle: list[Connection] = []
        self.cond = threading.Condition()


class Pool:
    """Logged-in connections per account, at most the account's cap open at once; when
    `share` processes sync the same account, each keeps to cap // share (at least 1)."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()
        self._share = 1

    @property
    def share(self) -> int:
        return self._share

    @share.setter
    def share(self, processes: int) -> None:
        with self._lock:
            old, self._share = self._share, max(1, processes)
            for account in self._accounts.values():
                with account.cond:
                    account.cap = max(1, account.cap * old // self._share)

    def _account(self, target: ImapTarget) -> _Account:
        with self._lock:
            found = self._accounts.get(target.account)
            if found is None:
                cap = max(1, target.connections // self._share)
                found = self._accounts[target.account] = _Account(cap)
            return found

    def peak(self, target: ImapTarget) -> int:
        """The most connections this account had open at once (for tests and reports)."""
        return self._account(target).peak

    def opened(self, target: ImapTarget) -> int:
        """The connections of this account open now, in use or idle (for tests and reports)."""
        account = self._account(target)
        with account.cond:
            return account.open

    @contextmanager
    def connection(self, target: ImapTarget, credentials: Credentials) -> Iterator[Connection]:
        account = self._account(target)
        conn = self._take(account)
        try:
            if conn is None:
                conn = self._open(account, target, credentials)
            yield conn
        except BaseException:
            self._discard(account, conn)
            raise
        with account.cond:
            conn.last_used = time.monotonic()
            account.idle.append(conn)
            account.cond.notify()

    def _take(self, account: _Account) -> Connection | None:
        """An idle connection, or None with a slot reserved for a new one."""
        deadline = time.monotonic() + POOL_WAIT_SECONDS
        with account.cond:
            while True:
                while account.idle:
                    conn = account.idle.pop()
                    if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or _alive(conn):
                        return conn
                    account.open -= 1
                    conn.close()
                if account.open < account.cap:
                    account.open += 1
                    account.peak = max(account.peak, account.open)
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("waited too long for a free IMAP connection of the account")
                account.cond.wait(left)

    def _open(self, account: _Account, target: ImapTarget, credentials: Credentials) -> Connection:
        try:
            return open_connection(target, credentials)
        except Exception as exc:
            if categorize(exc).category is ErrorCategory.RATE_LIMIT:
                with account.cond:  # the server's limit is below ours: respect it from now on
                    account.cap = max(1, account.open - 1)
                    log.warning(
                        "%s refused a connection (too many): cap lowered to %d",
                        target.host,
                        account.cap,
                    )
            raise

    def _discard(self, account: _Account, conn: Connection | None) -> None:
        if conn is not None:
            conn.close()
        with account.cond:
            account.open -= 1
            account.cond.notify()

    def trim(self, account_name: str, keep: int) -> None:
        """Close idle connections of this account while more than `keep` are open (the
        connection permits this worker still holds for it), oldest first."""
        with self._lock:
            account = self._accounts.get(account_name)
        if account is None:
            return
        closing = []
        with account.cond:
            while account.idle and account.open > keep:
                closing.append(account.idle.pop(0))
                account.open -= 1
        for conn in closing:
            conn.close()

    def close(self) -> None:
        with self._lock:
            accounts = list(self._accounts.values())
        for account in accounts:
            with account.cond:
                idle, account.idle = account.idle, []
                account.open -= len(idle)
            for conn in idle:
                conn.close()


def _alive(conn: Connection) -> bool:
    try:
        conn.client.noop()
        return True
    except Exception:
        return False


_MONTHS = {
    m.encode(): n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_DATE = re.compile(rb"^ ?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


def internaldate(text: bytes) -> datetime | None:
    """An IMAP INTERNALDATE (" 1-Jan-2024 10:00:00 +0100"), faster than strptime."""
    match = _DATE.match(text)
    if match is None or match.group(2) not in _MONTHS:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = match.groups()
    zone = _ZONES.get(sign + zh + zm) or _zone(sign, zh, zm)
    if zone is None:
        return None
    try:
        return datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:
        return None


# A mailbox's dates come in a few offsets: each one's timezone is made once (making it cost as
# much as the rest of a date). At most 2 x 100 x 100 of them, so the cache stays bounded.
_ZONES: dict[bytes, timezone] = {}


def _zone(sign: bytes, zh: bytes, zm: bytes) -> timezone | None:
    offset = timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == b"-" else 1)
    if abs(offset) >= timedelta(hours=24):
        return None  # not an offset (+2400 and beyond)
    zone = _ZONES[sign + zh + zm] = timezone(offset)
    return zone
