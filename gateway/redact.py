"""Keeping secrets out of every output: URL redaction and a logging filter.

Every secret the daemon loads is registered here; :func:`redact` replaces any registered secret and
any ``user:password@`` URL userinfo in a text. The logging filter applies it to every record,
including exception text coming from FFmpeg, which quotes URLs.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["RedactingFilter", "redact", "redact_url", "register_secret"]

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember a secret so that :func:`redact` masks it wherever it appears."""
    if len(secret) < 3:
        # Too short to mask without mangling ordinary text; URL userinfo is still masked.
        return
    with _lock:
        _secrets.update({secret, quote(secret, safe=""), quote(secret, safe=":")})


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (the user name is kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.password is None:
        return redact(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f"{MASK}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return redact(urlunsplit(parts._replace(netloc=netloc)))


def _mask_userinfo(match: re.Match[str]) -> str:
    user = match.group("userinfo").split(":", 1)[0]
    return f"{match.group('scheme')}{user}:{MASK}@" if ":" in match.group("userinfo") else match[0]


def redact(text: str) -> str:
    """Mask registered secrets and URL passwords in free text."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    # Then any URL password not registered (typed into a URL, say) up to the first '@'.
    return _USERINFO.sub(_mask_userinfo, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and exception text through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        return True
