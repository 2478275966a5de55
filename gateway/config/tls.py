"""The ``tls`` sections of the uplink, the MQTT broker and cameras: CA files, key pins, client
certificates; one model of a TLS client's files (:class:`TlsFilesConfig`), which the uplink
extends with pins and the broker uses as it is.

Relative file names are relative to the configuration file's directory; the stored paths are
absolute (joined to ``base_dir``), and each file was readable when the configuration was loaded.
A pin has one format everywhere: ``sha256//<base64>`` (as ``curl --pinnedpubkey``) or the bare
base64, of the SHA-256 of the certificate's public key (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from gateway.config.fields import ConfigModel, ReadableFile

__all__ = [
    "SHA256_PIN_PREFIX",
    "CameraTlsConfig",
    "PinSha256",
    "TlsFilesConfig",
    "UplinkTlsConfig",
]

SHA256_PIN_PREFIX = "sha256//"


def _normalize_pin(value: str) -> str:
    """A public-key pin as bare standard base64 of the 32-byte SHA-256 digest."""
    try:
        digest = base64.b64decode(value.removeprefix(SHA256_PIN_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"not valid base64: expected {SHA256_PIN_PREFIX}<base64 of a SHA-256 digest>"
        ) from None
    if len(digest) != 32:
        raise ValueError(f"decodes to {len(digest)} bytes, a SHA-256 pin is 32 bytes")
    return base64.b64encode(digest).decode("ascii")


PinSha256 = Annotated[str, AfterValidator(_normalize_pin)]
"""A SHA-256 public-key pin, given as ``sha256//<base64>`` or ``<base64>``, stored bare."""


class TlsFilesConfig(ConfigModel):
    """The files of a TLS client: the CA that signs the server's certificate, and an optional
    client certificate with its key (both or neither)."""

    ca_file: ReadableFile | None = None
    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = Field(default=None, validate_default=True)

    @field_validator("key_file")
    @classmethod
    def _key_with_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "cert_file" in info.data:  # else cert_file is invalid and reported on its own
            if info.data["cert_file"] is not None and value is None:
                raise ValueError("required when cert_file is given (both or neither)")
            if info.data["cert_file"] is None and value is not None:
                raise ValueError("given without cert_file (both or neither)")
        return value


class UplinkTlsConfig(TlsFilesConfig):
    """TLS settings of an ``rtsps://`` or ``rtmps://`` uplink: the files, and pinned keys."""

    pin_sha256: tuple[PinSha256, ...] = ()


class CameraTlsConfig(ConfigModel):
    """How an ``rtsps://`` camera is authenticated before it is sent a request (and a password).

    Without this section the system CAs are trusted. ``ca_file`` trusts one CA instead (the
    installer's, or the camera maker's); ``pin_sha256`` requires one of these public keys, on top
    of the CA when one is given, or alone (a camera's own self-signed certificate). The camera's
    host name or IP address must match its certificate, except when trusted by pin alone.
    ``insecure`` turns every check off; it is warned about at each load.
    """

    ca_file: ReadableFile | None = None
    pin_sha256: tuple[PinSha256, ...] = ()
    insecure: bool = False

    @field_validator("insecure")
    @classmethod
    def _insecure_alone(cls, value: bool, info: ValidationInfo) -> bool:
        given = [name for name in ("ca_file", "pin_sha256") if info.data.get(name)]
        if value and given:
            raise ValueError(
                f"cannot be true together with {' and '.join(given)} (insecure turns every "
                "check off): remove one or the other"
            )
        return value
