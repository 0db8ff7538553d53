"""IMAP URIs: `imap://user@host[:port]/FOLDER` and `imaps://...`, never with a password.

`imaps://` is TLS from the first byte (port 993). `imap://` upgrades with STARTTLS unless the host
is a loopback address (a test server, an SSH tunnel); `?tls=off` allows plain text elsewhere, on
purpose. Options: `?connections=N` (the per-account cap, default 4), `?compress=yes|no` (default:
on for remote hosts when the server offers COMPRESS=DEFLATE), `?timeout=SECONDS`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from chunksync.exceptions import ConfigurationError
from chunksync.redact import add_secret

DEFAULT_CONNECTIONS = 4
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_FOLDER = "INBOX"
_YES = {"1", "yes", "on", "true"}
_NO = {"0", "no", "off", "false"}


@dataclass(frozen=True, slots=True)
class ImapTarget:
    user: str
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    folder: str
    connections: int = DEFAULT_CONNECTIONS
    compress: bool | None = None  # None: when offered, and the host is not loopback
    timeout_s: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def account(self) -> str:
        """The store's account key: user@host, with the port when it is not the default."""
        default = 993 if self.implicit_tls else 143
        port = "" if self.port == default else f":{self.port}"
        return f"{self.user}@{self.host}{port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def uri_for(self, folder: str) -> str:
        scheme = "imaps" if self.implicit_tls else "imap"
        default = 993 if self.implicit_tls else 143
        port = "" if self.port == default else f":{self.port}"
        return f"{scheme}://{quote(self.user, safe='')}@{self.host}{port}/{quote(folder, safe='/')}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_imap_uri(uri: str) -> ImapTarget:
    """Read an imap:// or imaps:// URI; a mistake is one clear sentence."""
    try:
        parts = urlsplit(uri)
        port_number = parts.port
    except ValueError:
        raise ConfigurationError(f"invalid IMAP URI '{uri}': the port is not a number") from None
    scheme = parts.scheme.lower()
    if scheme not in ("imap", "imaps"):
        raise ConfigurationError(f"invalid IMAP URI '{uri}': use imap://user@host/FOLDER")
    if parts.password is not None:
        add_secret(unquote(parts.password))
        raise ConfigurationError(
            "the IMAP URI holds a password: remove it and use --password-env, --password-file, "
            "--password-cmd or --oauth2-cmd"
        )
    if not parts.hostname or not parts.username:
        raise ConfigurationError(f"invalid IMAP URI '{uri}': it needs a user and a host")
    options = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    implicit = scheme == "imaps"
    host = parts.hostname
    tls_off = options.get("tls", "").lower() in _NO
    return ImapTarget(
        user=unquote(parts.username),
        host=host,
        port=port_number or (993 if implicit else 143),
        implicit_tls=implicit,
        starttls=not implicit and not tls_off and not is_loopback(host),
        folder=unquote(parts.path.lstrip("/")) or DEFAULT_FOLDER,
        connections=_int_option(options, "connections", DEFAULT_CONNECTIONS, uri),
        compress=_bool_option(options, "compress", uri),
        timeout_s=float(_int_option(options, "timeout", int(DEFAULT_TIMEOUT_SECONDS), uri)),
    )


def _int_option(options: dict[str, str], name: str, default: int, uri: str) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"invalid IMAP URI '{uri}': {name} must be a positive number")
    return int(raw)


def _bool_option(options: dict[str, str], name: str, uri: str) -> bool | None:
    raw = options.get(name)
    if raw is None:
        return None
    if raw.lower() in _YES:
        return True
    if raw.lower() in _NO:
        return False
    raise ConfigurationError(f"invalid IMAP URI '{uri}': {name} must be yes or no")
