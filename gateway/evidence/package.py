"""An export package: clips, a signed manifest, and what anyone needs to check them.

A package is a folder::

    <camera>.mp4            one per camera (``<camera>-2.mp4``... when its stream changed)
    manifest.json           what was asked and what is there: ranges, gaps and their reasons,
                            source segments with their seals, each file's SHA-256, who and why
    manifest.json.sig       Ed25519 signature of manifest.json (64 raw bytes)
    SHA256SUMS              sha256sum lines for every other file but its own signature
    SHA256SUMS.sig          Ed25519 signature of SHA256SUMS
    signer.pub.pem          the box's public key
    VERIFY.txt              how to check all of it with openssl and sha256sum alone

It is written under ``.<name>.partial-<random>`` next to the final name, synced, and renamed
only when complete: a package under its final name is always whole. The clips are stream
copies (no decode, no re-encode): "export without loss of quality" (arrêté of 3 August 2007).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.host.durable import fsync_dir, write_new
from gateway.integrity.keys import Signer

__all__ = [
    "MANIFEST",
    "PUBKEY",
    "SIGNATURE",
    "SUMS",
    "SUMS_SIGNATURE",
    "VERIFY",
    "PackageWriter",
    "file_sha256",
    "verify_text",
]

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SUMS = "SHA256SUMS"
SUMS_SIGNATURE = "SHA256SUMS.sig"
PUBKEY = "signer.pub.pem"
VERIFY = "VERIFY.txt"
FORMAT = "camera-gateway-export/1"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(slots=True)
class PackageWriter:
    """Builds one package in a temporary folder; :meth:`commit` renames it to ``output``."""

    output: Path
    work: Path

    @classmethod
    def create(cls, output: Path) -> PackageWriter:
        parent = output.parent
        if os.path.lexists(output):
            raise FileExistsError(f"{output} already exists: choose a new output folder")
        if not parent.is_dir():
            raise FileNotFoundError(f"{parent} does not exist")
        work = parent / f".{output.name}.partial-{secrets.token_hex(4)}"
        work.mkdir(mode=0o750)
        return cls(output, work)

    def path(self, name: str) -> Path:
        return self.work / name

    def seal(self, manifest: dict[str, Any], signer: Signer, clips: dict[str, str]) -> str:
        """Write the manifest, signatures, sums, public key and VERIFY.txt; the manifest's
        SHA-256 (what the journal records as the package's hash). ``clips``: name -> SHA-256
        of each clip already written (hashed once, as it was finished)."""
        data = (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()
        self._write(MANIFEST, data)
        self._write(SIGNATURE, signer.sign(data))
        self._write(PUBKEY, signer.public.pem.encode("ascii"))
        digests = dict(clips)
        for name in (MANIFEST, SIGNATURE, PUBKEY):
            digests[name] = file_sha256(self.path(name))
        names = [*sorted(clips), MANIFEST, SIGNATURE, PUBKEY]
        sums = "".join(f"{digests[n]}  {n}\n" for n in names).encode()
        self._write(SUMS, sums)
        self._write(SUMS_SIGNATURE, signer.sign(sums))
        self._write(VERIFY, verify_text(signer.fingerprint, manifest).encode())
        return hashlib.sha256(data).hexdigest()

    def commit(self) -> None:
        """Sync every file and the folder, then rename it to its final name (refused if that
        name appeared meanwhile)."""
        for entry in os.scandir(self.work):
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self.work)
        if os.path.lexists(self.output):
            raise FileExistsError(f"{self.output} appeared during the export")
        os.rename(self.work, self.output)
        fsync_dir(self.output.parent)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.work)

    def _write(self, name: str, data: bytes) -> None:
        write_new(self.path(name), data, 0o640)


def verify_text(fingerprint: str, manifest: dict[str, Any]) -> str:
    cameras = ", ".join(c["camera"] for c in manifest.get("cameras", []))
    actual = manifest.get("actual") or {}
    return f"""HOW TO CHECK THIS PACKAGE (no software of ours needed)
========================================================

This folder holds video exported by camera-gateway from site {manifest.get("site")},
cameras {cameras}, {actual.get("start")} to {actual.get("end")} (UTC).
Requested by {manifest.get("operator")} for: {manifest.get("reason")}

Run these commands in this folder (Linux or macOS; on Windows, in WSL or Git Bash).

1. The list of files was signed by the box:

   openssl pkeyutl -verify -pubin -inkey {PUBKEY} -rawin -in {SUMS} -sigfile {SUMS_SIGNATURE}

   It must print "Signature Verified Successfully".

2. No file was changed since:

   sha256sum -c {SUMS}

   Every line must end in "OK".

3. The manifest (what was asked, by whom, what each file holds, what is missing and why) was
   signed too:

   openssl pkeyutl -verify -pubin -inkey {PUBKEY} -rawin -in {MANIFEST} -sigfile {SIGNATURE}

4. The key is the box's own. Its fingerprint is

   {fingerprint}

   and this command must print the same:

   openssl pkey -pubin -in {PUBKEY} -outform der | sha256sum

   Compare it with a copy obtained apart from this package: the fingerprint the box publishes to
   the supervision centre (MQTT topic .../seal), or `camera-gateway key show` run on the box.

The videos are MP4 (H.264/H.265 as the cameras recorded them, not re-encoded) and play in VLC,
a web browser or the Windows player. Their subtitle track shows the time of each image.
On the box, `camera-gateway verify <this folder>` also checks that every source segment is
the one sealed when it was recorded.
"""
