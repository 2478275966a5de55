"""Keeping secrets out of every output: URL redaction and a logging filter.

Every secret the daemon loads is registered here; :func:`redact` replaces any registered secret,
any ``user:password@`` URL userinfo and the value of any query parameter whose name says it is a
secret (``?token=``, ``&key=``, ``X-Amz-Signature=``) in a text. The logging filter applies it to
every record, including exception text coming from FFmpeg, which quotes URLs.

Camera and centre URLs carry secrets in three places: the userinfo (RTSP), the query (tokens
that RTMP servers and some cameras take) and, for RTMP, the stream name, which many services
use as the stream key (``rtmp://host/live/KEY``). :func:`redact_url` masks the first two,
:func:`mask_stream_key` the third in a push URL template, and :func:`secrets_in_url` gives the
query values for :func:`register_secret`.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

__all__ = [
    "RedactingFilter",
    "is_secret_name",
    "mask_stream_key",
    "redact",
    "redact_url",
    "register_secret",
    "secrets_in_url",
]

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
_URL_QUERY = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>?#]*\?)(?P<query>[^\s'\"<>#;,)\]]*)"
)
"""A URL quoted in free text, and its query: that ends at a space, a quote, a fragment, or the
punctuation that follows a URL in a sentence (``;``, ``,``, ``)``)."""

_SECRET_WORDS = frozenset({"key", "sig", "pass", "pwd", "pw", "jwt", "hmac", "otp", "psk"})
"""Short words that name a secret only as a whole word of the name or its end (``apikey``,
``streamkey``, ``sig``); inside a word they are too common (``keyint``, ``signal``)."""
_SECRET_STEMS = (
    "token",
    "secret",
    "passw",
    "passphrase",
    "session",
    "credential",
    "signature",
    "auth",
    "apikey",
    "privatekey",
    "bearer",
    "ticket",
)
"""Stems that name a secret wherever they appear in a word (``access_token``, ``sessionid``,
``oauth``, ``x-amz-signature``)."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_PLACEHOLDER = re.compile(r"\{(?:site_id|camera_id)\}")
_STREAM_SEPARATORS = "-_./"
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
    """Return ``url`` with any password and any secret query value replaced by ``***`` (the user
    name, host, path and harmless parameters such as ``channel=1&subtype=0`` are kept)."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port
    except ValueError:
        return redact(url)
    query = _mask_query(parts.query)
    if password is None:
        return redact(url if query == parts.query else urlunsplit(parts._replace(query=query)))
    parts = parts._replace(query=query)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f"{MASK}@{host}"
    if port is not None:
        netloc += f":{port}"
    return redact(urlunsplit(parts._replace(netloc=netloc)))


def secrets_in_url(url: str) -> list[str]:
    """The values of the secret-looking query parameters of ``url``, as written and decoded, for
    :func:`register_secret` (so they are masked in FFmpeg's messages too)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    found: list[str] = []
    for name, value in _query_items(query):
        if value and is_secret_name(name):
            for form in (value, unquote_plus(value)):
                if form not in found:
                    found.append(form)
    return found


def mask_stream_key(template: str) -> str:
    """An RTMP push URL template as it may be shown: :func:`redact_url`, and the literal text of
    the stream name (the path after the application) masked.

    The stream name is often the stream key: ``rtmp://csu/live/a1b2c3d4`` is shown as
    ``rtmp://csu/live/***``. Placeholders and separators stay readable, so
    ``rtmp://csu/live/{site_id}-{camera_id}`` is shown as it is, and
    ``rtmp://csu/live/k3y-{camera_id}`` as ``rtmp://csu/live/***-{camera_id}``. Other schemes
    only go through :func:`redact_url`.
    """
    try:
        parts = urlsplit(template)
    except ValueError:
        return redact_url(template)
    if parts.scheme.lower() not in ("rtmp", "rtmps"):
        return redact_url(template)
    application, slash, stream = parts.path.lstrip("/").partition("/")
    if not slash or not stream:
        return redact_url(template)
    masked = "/" + application + "/" + _mask_literals(stream)
    return redact_url(urlunsplit(parts._replace(path=masked)))


def is_secret_name(name: str) -> bool:
    """Whether a query parameter's name says its value is a secret: ``token``, ``access_token``,
    ``apiKey``, ``X-Amz-Signature``, ``pwd``, ``sessionid``, ... (case-insensitive)."""
    spaced = _CAMEL.sub("_", unquote_plus(name))
    for word in _WORD_SPLIT.split(spaced.lower()):
        if not word:
            continue
        if any(stem in word for stem in _SECRET_STEMS):
            return True
        if any(word == short or word.endswith(short) for short in _SECRET_WORDS):
            return True
    return False


def _query_items(query: str) -> list[tuple[str, str]]:
    items = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        items.append((name, value))
    return items


def _mask_query(query: str) -> str:
    """``query`` with each secret value replaced by ``***``; order and encoding kept as written."""
    out = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        out.append(f"{name}={MASK}" if equals and value and is_secret_name(name) else item)
    return "&".join(out)


def _mask_literals(stream: str) -> str:
    """Each run of literal text of a stream name, between placeholders, as ``***``."""
    out: list[str] = []
    position = 0
    for match in [*_PLACEHOLDER.finditer(stream), None]:
        end = match.start() if match is not None else len(stream)
        out.append(_mask_run(stream[position:end]))
        if match is not None:
            out.append(match.group())
            position = match.end()
    return "".join(out)


def _mask_run(text: str) -> str:
    """A run of literal text as ``***``, keeping the separators at its ends (next to
    placeholders); a run of separators alone is kept."""
    core = text.strip(_STREAM_SEPARATORS)
    if not core:
        return text
    start = text.index(core[0])
    return text[:start] + MASK + text[start + len(core) :]


def _mask_userinfo(match: re.Match[str]) -> str:
    user = match.group("userinfo").split(":", 1)[0]
    return f"{match.group('scheme')}{user}:{MASK}@" if ":" in match.group("userinfo") else match[0]


def redact(text: str) -> str:
    """Mask registered secrets, URL passwords and secret query values in free text."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    # Then any URL password not registered (typed into a URL, say) up to the first '@', and
    # any secret query value of a URL quoted in the text.
    text = _USERINFO.sub(_mask_userinfo, text)
    if "?" in text and "://" in text:
        text = _URL_QUERY.sub(_mask_url_query, text)
    return text


def _mask_url_query(match: re.Match[str]) -> str:
    return match.group("head") + _mask_query(match.group("query"))


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
