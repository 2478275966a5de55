"""Credentials inside URLs: moved out to the password fields, and registered as secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    SecretStr,
)

from gateway.config.fields import (
    Rejected,
)
from gateway.redact import register_secret, secrets_in_url

__all__ = [
    "move_url_credentials",
    "register_url_secrets",
    "split_credentials",
    "with_userinfo",
]


def with_userinfo(url: str, username: str | None, password: SecretStr | None) -> str:
    """``url`` with the user name and password embedded, percent-encoded."""
    if username is None and password is None:
        return url
    userinfo = quote(username or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password.get_secret_value(), safe="")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return ``url`` without userinfo, and the (decoded) user name and password it held."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=hostport))
    return bare, unquote(user) or None, (unquote(password) or None) if has_password else None


_TWICE = {
    "url": "credentials given twice: in the URL and in username/password/password_file",
    "forward_url": (
        "credentials given twice: in forward_url and in url/username/password/password_file "
        "(the camera's credentials apply to both URLs)"
    ),
}


def move_url_credentials(out: dict[str, Any], key: str) -> None:
    """Move the credentials embedded in ``out[key]`` to ``username``/``password``, in place.

    Credentials already set (by the keys, or by a URL moved before) make it a :class:`Rejected`.
    """
    url = out.get(key)
    if not isinstance(url, str):
        return
    register_url_secrets(url)
    try:
        bare, url_user, url_password = split_credentials(url)
    except ValueError:
        return  # reported by the URL validator
    if url_password is not None:
        register_secret(url_password)
    if url_user is None and url_password is None:
        return
    has_password = out.get("password") is not None or out.get("password_file") is not None
    if (url_user is not None and out.get("username") is not None) or (
        url_password is not None and has_password
    ):
        out[key] = Rejected(_TWICE[key])
        return
    out[key] = bare
    if url_user is not None:
        out["username"] = url_user
    if url_password is not None:
        out["password"] = url_password


def register_url_secrets(url: str) -> None:
    """Register the tokens and keys a URL's query carries, so that no output shows them."""
    for secret in secrets_in_url(url):
        if "{" not in secret:  # a placeholder of a template is not a secret
            register_secret(secret)
