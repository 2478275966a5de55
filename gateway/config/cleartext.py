"""Secrets written in the configuration file itself, and whether users other than the daemon's
can read them.

A ``password:`` given literally (not as ``${VAR}``), credentials inside a URL, a token in a URL's
query or an RTMP stream key are all readable by whoever can read the file. ``deploy/install.sh``
creates it ``root:camera-gateway`` with mode 0640; a file copied by hand is often left
world-readable (0644, the usual umask), which hands every camera's password to any local
account: hence a warning at each load.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config.secrets import is_env_reference
from gateway.redact import mask_stream_key, redact_url, secrets_in_url

__all__ = ["ConfigFile", "exposure_warning", "inspect_file"]

OTHERS = 0o007
"""Permission bits for users outside the file's owner and group."""


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What was learnt about the file a configuration was loaded from."""

    path: Path
    mode: int
    """Permission bits (``st_mode & 0o7777``)."""
    cleartext: tuple[str, ...]
    """Where secrets are written in clear, as field paths (``cameras[0].password``)."""


def inspect_file(path: Path, data: Mapping[str, object]) -> ConfigFile | None:
    """The facts about ``path``, whose parsed content is ``data``; None if it cannot be stat'ed."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return ConfigFile(path=path, mode=mode, cleartext=tuple(_cleartext_fields(data)))


def exposure_warning(file: ConfigFile) -> str | None:
    """The warning for a file that holds secrets in clear and is open to other users, if it is."""
    if not file.cleartext or not file.mode & OTHERS:
        return None
    return (
        f"{file.path}: holds passwords in clear ({', '.join(file.cleartext)}) and is open to users "
        f"other than its owner and group (mode {file.mode:04o}): chmod 640 {file.path}, or move "
        "the passwords to password_file (systemd LoadCredential=)"
    )


def _cleartext_fields(data: Mapping[str, object]) -> list[str]:
    found: list[str] = []
    cameras = data.get("cameras")
    if isinstance(cameras, list):
        for index, camera in enumerate(cameras):
            if isinstance(camera, Mapping):
                where = f"cameras[{index}]"
                found += _password_field(camera, where)
                found += _url_fields(camera, where, ("url", "forward_url"))
    for section in ("uplink", "mqtt"):
        value = data.get(section)
        if isinstance(value, Mapping):
            found += _password_field(value, section)
            found += _url_fields(value, section, ("url",))
    return found


def _password_field(section: Mapping[object, object], where: str) -> list[str]:
    password = section.get("password")
    if isinstance(password, str) and password and not is_env_reference(password):
        return [f"{where}.password"]
    return []


def _url_fields(section: Mapping[object, object], where: str, keys: tuple[str, ...]) -> list[str]:
    found = []
    for key in keys:
        url = section.get(key)
        if isinstance(url, str) and _url_holds_secret(url):
            found.append(f"{where}.{key}")
    return found


def _url_holds_secret(url: str) -> bool:
    """A password in the userinfo, a token in the query, or a literal RTMP stream key."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return False
    if password or secrets_in_url(url):
        return True
    return parts.scheme.lower() in ("rtmp", "rtmps") and mask_stream_key(url) != redact_url(url)
