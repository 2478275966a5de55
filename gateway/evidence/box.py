"""The evidence parts of one box, built from its configuration: key, audit journal, seal chains
and legal holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.integrity.audit import AuditLog
from gateway.integrity.journal import canonical
from gateway.integrity.keys import KeyRing
from gateway.integrity.seal import SEALS_DIRECTORY, Sealer
from gateway.redact import mask_stream_key, redact_url
from gateway.storage.holds import HoldStore

__all__ = ["Integrity", "config_digest"]


@dataclass(frozen=True, slots=True)
class Integrity:
    keys: KeyRing
    audit: AuditLog
    sealer: Sealer
    holds: HoldStore

    @classmethod
    def of(cls, config: Config) -> Integrity:
        audit = config.audit
        keys = KeyRing(audit.key_dir)
        return cls(
            keys=keys,
            audit=AuditLog(audit.path, keys.signer, retention=audit.retention),
            sealer=Sealer(audit.path / SEALS_DIRECTORY, keys, retention=audit.retention),
            holds=HoldStore(
                config.storage.path,
                quota=config.storage.hold_quota,
                max_age=config.storage.hold.max_age,
            ),
        )


def config_digest(config: Config) -> str:
    """SHA-256 of the effective configuration with every secret left out (passwords, and the
    credentials or stream keys a URL may hold): what the journal records at each (re)load."""
    value = _scrub(config.model_dump(mode="json"))
    return hashlib.sha256(canonical({"config": value})).hexdigest()


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: None if "password" in k or k.endswith("_key") else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_stream_key(redact_url(value))
    return value
