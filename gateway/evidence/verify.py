"""Checking an export package (``camera-gateway verify``): signatures, files, and the seals.

The same checks VERIFY.txt tells a person to run with openssl and sha256sum, plus two that need
the box: that the signing key is one the box holds (or the one given with ``--pubkey``), and
that every source segment the manifest names is the one its camera's chain sealed when it was
recorded. Each failed check names the file, segment or check concerned.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.evidence.package import MANIFEST, PUBKEY, SIGNATURE, SUMS, SUMS_SIGNATURE, VERIFY
from gateway.integrity.keys import PublicKey, load_public
from gateway.integrity.seal import Sealer
from gateway.integrity.verification import verify as verify_journal

__all__ = ["Check", "PackageReport", "verify_package"]

_REQUIRED = (MANIFEST, SIGNATURE, SUMS, SUMS_SIGNATURE, PUBKEY)
_MAX_SMALL_FILE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(slots=True)
class PackageReport:
    package: Path
    checks: list[Check] = field(default_factory=list)
    fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": str(self.package),
            "ok": self.ok,
            "fingerprint": self.fingerprint,
            "checks": [c.as_dict() for c in self.checks],
            "failed": [c.as_dict() for c in self.checks if not c.ok],
        }


def verify_package(
    folder: Path,
    *,
    pubkey: PublicKey | None = None,
    box_keys: dict[str, PublicKey] | None = None,
    sealer: Sealer | None = None,
) -> PackageReport:
    """``box_keys`` and ``sealer``: the box's key history and seal chains, when run on it."""
    report = PackageReport(folder)
    if not folder.is_dir():
        report.add("package", False, f"{folder} is not a folder")
        return report
    missing = [n for n in _REQUIRED if not (folder / n).is_file()]
    if missing:
        report.add("files present", False, f"missing: {', '.join(missing)}")
        return report
    try:
        key = load_public(_small(folder / PUBKEY))
    except ValueError as exc:
        report.add(PUBKEY, False, f"not a usable public key: {exc}")
        return report
    report.fingerprint = key.fingerprint
    _check_signer(report, key, pubkey, box_keys)
    sums = _small(folder / SUMS)
    sums_signed = key.verify(_small(folder / SUMS_SIGNATURE), sums)
    report.add(
        SUMS_SIGNATURE,
        sums_signed,
        f"signature of {SUMS}" + ("" if sums_signed else " does not match: list of files changed"),
    )
    manifest_bytes = _small(folder / MANIFEST)
    signed = key.verify(_small(folder / SIGNATURE), manifest_bytes)
    report.add(
        SIGNATURE,
        signed,
        "signature of the manifest" + ("" if signed else " does not match: manifest changed"),
    )
    listed = _check_sums(report, folder, sums)
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        report.add(MANIFEST, False, "not valid JSON")
        return report
    _check_manifest_files(report, folder, manifest, listed)
    if sealer is not None:
        _check_seals(report, manifest, sealer, box_keys or {})
    return report


def _small(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(_MAX_SMALL_FILE)


def _check_signer(
    report: PackageReport,
    key: PublicKey,
    pubkey: PublicKey | None,
    box_keys: dict[str, PublicKey] | None,
) -> None:
    if pubkey is not None:
        same = key.fingerprint == pubkey.fingerprint
        report.add(
            "signer",
            same,
            f"key {key.fingerprint} "
            + ("is the one given" if same else f"is not the one given ({pubkey.fingerprint})"),
        )
    elif box_keys is not None:
        known = key.fingerprint in box_keys
        report.add(
            "signer",
            known,
            f"key {key.fingerprint} "
            + ("is one of this box's keys" if known else "was never a key of this box"),
        )
    else:
        report.add(
            "signer",
            False,
            f"key {key.fingerprint} not confirmed: give --pubkey with the box's public key, "
            "or run on the box",
        )


def _check_sums(report: PackageReport, folder: Path, sums: bytes) -> dict[str, str]:
    """Check SHA256SUMS; the SHA-256 of each file it lists (so no file is read twice)."""
    listed: dict[str, str] = {}
    bad: list[str] = []
    for line in sums.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if not name or "/" in name or name in (".", ".."):
            bad.append(f"unreadable line {line[:60]!r}")
            continue
        path = folder / name
        if not path.is_file():
            bad.append(f"{name}: missing")
            continue
        listed[name] = _sha256(path)
        if listed[name] != digest:
            bad.append(f"{name}: changed (SHA-256 differs)")
    report.add(SUMS, not bad, "; ".join(bad) if bad else f"{len(listed)} files match")
    extra = sorted(
        e.name
        for e in os.scandir(folder)
        if e.name not in listed.keys() | {SUMS, SUMS_SIGNATURE, VERIFY}
    )
    report.add(
        "no other files",
        not extra,
        f"not covered by the signature: {', '.join(extra)}" if extra else "",
    )
    return listed


def _check_manifest_files(
    report: PackageReport, folder: Path, manifest: dict[str, Any], listed: dict[str, str]
) -> None:
    for entry in manifest.get("files", []):
        name = str(entry.get("name", ""))
        path = folder / name
        if "/" in name or not path.is_file():
            report.add(f"clip {name}", False, "named by the manifest but missing")
            continue
        actual = listed.get(name) or _sha256(path)
        ok = actual == entry.get("sha256") and name in listed
        report.add(f"clip {name}", ok, "" if ok else "differs from the manifest's SHA-256")


def _check_seals(
    report: PackageReport, manifest: dict[str, Any], sealer: Sealer, keys: dict[str, PublicKey]
) -> None:
    for camera_entry in manifest.get("cameras", []):
        camera = str(camera_entry.get("camera", ""))
        chain = sealer.chain(camera)
        result = verify_journal(chain, keys)
        detail = (
            f"{result.entries} entries, signatures and links hold"
            if result.ok
            else "; ".join(str(p) for p in result.problems[:5])
        )
        report.add(f"seal chain {camera}", result.ok, detail)
        records = sealer.records(camera)
        for source in camera_entry.get("sources", []):
            path = str(source.get("path", ""))
            record = records.get(path)
            name = f"source {path}"
            if record is None:
                report.add(name, False, "not in the camera's seal chain")
            elif record.sha256 != source.get("sha256"):
                report.add(name, False, "differs from what was sealed when it was recorded")
            else:
                report.add(name, True, f"sealed as entry {record.seq} of {camera}'s chain")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
