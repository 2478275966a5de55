"""Camera password resolution: ``${ENV_VAR}`` references and password files.

Every resolved password is registered with :mod:`gateway.redact`. Error messages name variables and
file paths, never a secret value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from gateway.redact import register_secret

__all__ = [
    "CREDENTIALS_DIRECTORY_ENV",
    "MAX_PASSWORD_FILE_BYTES",
    "SecretError",
    "credential_path",
    "is_env_reference",
    "read_password_file",
    "resolve_password",
]

CREDENTIALS_DIRECTORY_ENV = "CREDENTIALS_DIRECTORY"
MAX_PASSWORD_FILE_BYTES = 64 * 1024
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SecretError(ValueError):
    """A password could not be resolved; the message never contains the secret."""


def is_env_reference(value: str) -> bool:
    """Whether a ``password`` value is a ``${NAME}`` reference rather than the password itself."""
    return _ENV_REFERENCE.fullmatch(value) is not None


def resolve_password(value: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Return the password for a ``password`` value: a literal, or ``${NAME}`` as a whole value."""
    env = os.environ if environ is None else environ
    match = _ENV_REFERENCE.fullmatch(value)
    if match is None:
        password = value
    else:
        name = match.group(1)
        if name not in env:
            raise SecretError(f"environment variable {name} is not set")
        password = env[name]
        if not password:
            raise SecretError(f"environment variable {name} is empty")
    if not password:
        raise SecretError("must not be empty")
    register_secret(password)
    return password


def credential_path(
    path: Path, *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> Path:
    """Where a ``password_file`` lives.

    An absolute path is used as is. A relative path is looked up in ``$CREDENTIALS_DIRECTORY``
    (systemd ``LoadCredential=``) when that variable is set, else in ``base_dir``.
    """
    if path.is_absolute():
        return path
    env = os.environ if environ is None else environ
    credentials_dir = env.get(CREDENTIALS_DIRECTORY_ENV)
    if credentials_dir:
        return Path(credentials_dir) / path
    return base_dir / path


def read_password_file(
    path: Path, *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> str:
    """Read a password file (see :func:`credential_path`), dropping one trailing newline."""
    env = os.environ if environ is None else environ
    full_path = credential_path(path, base_dir=base_dir, environ=env)
    where = str(full_path)
    if not path.is_absolute() and env.get(CREDENTIALS_DIRECTORY_ENV):
        where += f" (relative path looked up in ${CREDENTIALS_DIRECTORY_ENV})"
    try:
        with full_path.open("rb") as stream:
            data = stream.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise SecretError(f"{where} is larger than {MAX_PASSWORD_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{where} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise SecretError(f"{where} is empty")
    register_secret(text)
    return text
