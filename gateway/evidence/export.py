"""Exporting footage as evidence: cameras × range → a signed package, journalled and held.

An export, whether run by the command line on a stopped box or by the daemon for the control
socket:

1. checks the request (known cameras, end after start, an operator and a reason) and that the
   range holds recordings (else says where the nearest ones are);
2. takes a temporary hold on the source segments, so retention cannot remove them meanwhile;
3. checks each source against its seal, copies the clips (stream copy), writes the manifest
   and signs it, all under a temporary name;
4. journals the export (who, why, case, range, cameras, the manifest's hash) — an export that
   cannot be journalled is not delivered — then renames the package to its final name;
5. places a lasting hold under the case reference (subject to the holds' budget: refused
   with a reason, the package is delivered anyway), and drops the temporary one.

Nothing is written under the output name unless all of it succeeded.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.clock import clock_synchronized, utc_iso
from gateway.config import Config
from gateway.evidence.box import Integrity
from gateway.evidence.clip import Clip, ClipError, ClipSource, write_clips
from gateway.evidence.package import PackageWriter, file_sha256
from gateway.evidence.requests import ExportError, ExportRequest
from gateway.evidence.selection import gaps_in, nearest, select
from gateway.evidence.unmasked import MaskRecord
from gateway.integrity.audit import AuditError
from gateway.integrity.keys import Signer, SigningKeyError
from gateway.integrity.seal import ChainRecord
from gateway.storage.holds import Hold, HoldError
from gateway.storage.index import Index
from gateway.storage.record import Segment

__all__ = ["ExportError", "ExportRequest", "ExportResult", "run_export"]

log = logging.getLogger(__name__)

MIN_WIDTH, MIN_HEIGHT = 704, 576
"""Smallest picture the arrêté of 3 August 2007 accepts (4CIF); a smaller clip is flagged."""


@dataclass(slots=True)
class ExportResult:
    output: Path
    manifest_sha256: str
    files: list[dict[str, Any]]
    hold: Hold | None
    hold_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "hold": self.hold.as_dict() if self.hold is not None else None,
            "hold_error": self.hold_error,
            "warnings": self.warnings,
        }


def run_export(
    request: ExportRequest,
    *,
    config: Config,
    index: Index,
    integrity: Integrity,
    tz: tzinfo,
    requested_via: str,
    on_progress: Callable[[str], None] | None = None,
) -> ExportResult:
    known = {c.id for c in config.cameras} | set(integrity.sealer.cameras())
    for camera in request.cameras:
        if camera not in known:
            raise ExportError(f"unknown camera {camera!r}")
    if not request.end > request.start:
        raise ExportError("the end of the range must be after its start")
    output = request.output
    if not output.is_absolute():
        raise ExportError(f"output {output} must be an absolute path")
    if os.path.lexists(output):
        raise ExportError(f"output {output} already exists: nothing written")
    if not output.parent.is_dir():
        raise ExportError(f"output folder {output.parent} does not exist")
    try:
        signer = integrity.keys.signer()
    except SigningKeyError as exc:
        raise ExportError(f"cannot sign the package: {exc.reason}") from None
    cameras = list(dict.fromkeys(request.cameras))
    chosen = {camera: select(index, camera, request.start, request.end) for camera in cameras}
    if not any(chosen.values()):
        where = "; ".join(
            f"camera {c}: {nearest(index, c, request.start, request.end)}" for c in cameras
        )
        raise ExportError(
            f"no recording from {utc_iso(request.start)} to {utc_iso(request.end)}: {where}"
        )
    holds = integrity.holds
    try:
        temporary, _ = holds.place(
            index,
            case=request.case or "export",
            cameras=[c for c in cameras if chosen[c]],
            start=request.start,
            end=request.end,
            placed_by=request.operator,
            reason=f"export in progress: {request.reason}",
            temporary=True,
        )
    except HoldError as exc:
        raise ExportError(f"cannot hold the sources during the export: {exc.reason}") from None
    job = _Job(request, cameras, chosen, config, index, integrity, signer, tz, requested_via)
    try:
        return job.run(on_progress)
    finally:
        try:
            holds.release(temporary.id)
        except HoldError as exc:
            log.error("export: temporary hold %s not released: %s", temporary.id, exc.reason)


@dataclass(slots=True)
class _Job:
    request: ExportRequest
    cameras: list[str]
    chosen: dict[str, list[Segment]]
    config: Config
    index: Index
    integrity: Integrity
    signer: Signer
    tz: tzinfo
    requested_via: str

    def run(self, on_progress: Callable[[str], None] | None) -> ExportResult:
        result = _export(self, on_progress)
        result.hold, result.hold_error = _lasting_hold(self, result.manifest_sha256)
        return result


def _export(job: _Job, on_progress: Callable[[str], None] | None) -> ExportResult:
    request = job.request
    try:
        package = PackageWriter.create(request.output)
    except OSError as exc:
        raise ExportError(
            f"cannot write to {request.output.parent}: {exc.strerror or exc}"
        ) from None
    # Hashing (the sources against their seals, each clip once written) runs on a thread beside
    # the copy: hashlib lets go of the interpreter lock, and a box has two cores.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway:export-hash")
    try:
        work = _Work(job, package, hasher, on_progress)
        cameras = [work.camera(camera) for camera in job.cameras]
        files = [_file_entry(camera, clip, sha.result()) for camera, clip, sha in work.written]
        manifest = _manifest(job, cameras, files, work.warnings)
        manifest_sha = package.seal(manifest, job.signer, {f["name"]: f["sha256"] for f in files})
        try:
            job.integrity.audit.append("export", **_export_entry(job, manifest_sha, files))
        except AuditError as exc:
            raise ExportError(
                f"the export cannot be journalled ({exc}); nothing delivered"
            ) from None
        package.commit()
    except ClipError as exc:
        package.abort()
        raise ExportError(exc.reason) from None
    except OSError as exc:
        package.abort()
        raise ExportError(f"export to {request.output} failed: {exc.strerror or exc}") from None
    except BaseException:
        package.abort()
        raise
    finally:
        hasher.shutdown(cancel_futures=True)
    return ExportResult(request.output, manifest_sha, files, None, None, work.warnings)


class _Work:
    """The clips of one export, camera by camera, and what was found on the way."""

    def __init__(
        self,
        job: _Job,
        package: PackageWriter,
        hasher: ThreadPoolExecutor,
        on_progress: Callable[[str], None] | None,
    ) -> None:
        self.job = job
        self.package = package
        self.hasher = hasher
        self.on_progress = on_progress
        self.root = job.config.storage.path
        self.warnings: list[str] = []
        self.written: list[tuple[str, Clip, Future[str]]] = []
        self.masks = MaskRecord(job.integrity.audit.entries)
        self.digests = {
            s.path: hasher.submit(file_sha256, s.resolve(self.root))
            for c in job.cameras
            for s in job.chosen[c]
        }

    def camera(self, camera: str) -> dict[str, Any]:
        request, segments = self.job.request, self.job.chosen[camera]
        chain = self.job.integrity.sealer.records(camera)
        clips: list[Clip] = []
        unmasked: list[dict[str, str]] = []
        if segments:
            unmasked = self.masks.missing(camera, request.start, request.end, self.warnings)
            if self.on_progress is not None:
                self.on_progress(f"camera {camera}: writing its clip")
            clips = write_clips(
                [ClipSource(s.resolve(self.root), s.start) for s in segments],
                request.start,
                request.end,
                lambda n: self.package.path(f"{camera}.mp4" if n == 1 else f"{camera}-{n}.mp4"),
                tz=self.job.tz,
                label=camera,
            )
            for clip in clips:
                self._written(camera, clip)
        else:
            self.warnings.append(f"camera {camera}: no recording in the range")
        sources = [
            _source(s, self.digests[s.path].result(), chain, self.warnings) for s in segments
        ]
        return {
            "camera": camera,
            "actual": _range(clips),
            "gaps": [
                g.as_dict() for g in gaps_in(camera, segments, request.start, request.end, chain)
            ],
            "sources": sources,
            "clock_synced": _all_synced(segments),
            "files": [c.path.name for c in clips],
            "privacy_mask_missing": unmasked,
        }

    def _written(self, camera: str, clip: Clip) -> None:
        self.written.append((camera, clip, self.hasher.submit(file_sha256, clip.path)))
        if clip.width * clip.height < MIN_WIDTH * MIN_HEIGHT:
            self.warnings.append(
                f"{clip.path.name}: {clip.width}x{clip.height} is below the 704x576 minimum "
                "of the arrêté of 3 August 2007"
            )


def _manifest(
    job: _Job, cameras: list[dict[str, Any]], files: list[dict[str, Any]], warnings: list[str]
) -> dict[str, Any]:
    request = job.request
    return {
        "format": "camera-gateway-export/1",
        "site": job.config.site_id,
        "box": {"hostname": socket.gethostname(), "key_fingerprint": job.signer.fingerprint},
        "software": f"camera-gateway {__version__}",
        "created": utc_iso(time.time()),
        "created_clock_synced": clock_synchronized(),
        "operator": request.operator,
        "reason": request.reason,
        "case": request.case,
        "requested_via": job.requested_via,
        "requested": {"start": utc_iso(request.start), "end": utc_iso(request.end)},
        "actual": _range_of([c["actual"] for c in cameras if c["actual"]]),
        "cameras": cameras,
        "files": files,
        "warnings": warnings,
    }


def _export_entry(job: _Job, manifest_sha: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    request = job.request
    return {
        "operator": request.operator,
        "reason": request.reason,
        "case": request.case,
        "cameras": job.cameras,
        "start": utc_iso(request.start),
        "end": utc_iso(request.end),
        "output": str(request.output),
        "manifest_sha256": manifest_sha,
        "files": {f["name"]: f["sha256"] for f in files},
        "via": job.requested_via,
    }


def _lasting_hold(job: _Job, manifest_sha: str) -> tuple[Hold | None, str | None]:
    request, cameras, chosen, integrity = job.request, job.cameras, job.chosen, job.integrity
    index = job.index
    try:
        hold, added = integrity.holds.place(
            index,
            case=request.case or f"export {manifest_sha[:12]}",
            cameras=[c for c in cameras if chosen[c]],
            start=request.start,
            end=request.end,
            placed_by=request.operator,
            reason=request.reason,
        )
    except HoldError as exc:
        return None, exc.reason
    try:
        integrity.audit.append("hold_placed", **_hold_entry(hold, added), export=manifest_sha)
    except AuditError as exc:
        integrity.holds.release(hold.id)
        return None, f"the hold cannot be journalled ({exc}); not placed"
    return hold, None


def _hold_entry(hold: Hold, added: int) -> dict[str, Any]:
    return {
        "hold": hold.id,
        "case": hold.case,
        "cameras": list(hold.cameras),
        "start": utc_iso(hold.start),
        "end": utc_iso(hold.end),
        "expires": utc_iso(hold.expires),
        "placed_by": hold.placed_by,
        "reason": hold.reason,
        "bytes": added,
    }


def _source(
    segment: Segment, sha: str, chain: dict[str, ChainRecord], warnings: list[str]
) -> dict[str, Any]:
    record = chain.get(segment.path)
    if record is None:
        seal = "unsealed"
        warnings.append(f"{segment.path}: not sealed yet (its hash is the one read now)")
    elif record.sha256 == sha:
        seal = "ok"
    else:
        seal = "altered"
        warnings.append(f"{segment.path}: differs from what was sealed when it was recorded")
    return {
        "path": segment.path,
        "start": utc_iso(segment.start),
        "end": utc_iso(segment.end),
        "bytes": segment.bytes,
        "sha256": sha,
        "sealed_sha256": record.sha256 if record is not None else None,
        "chain_seq": record.seq if record is not None else None,
        "seal": seal,
        "flags": sorted(segment.flags),
        "clock_synced": segment.clock_synced,
    }


def _file_entry(camera: str, clip: Clip, sha: str) -> dict[str, Any]:
    return {
        "name": clip.path.name,
        "camera": camera,
        "sha256": sha,
        "bytes": clip.path.stat().st_size,
        "codec": clip.codec,
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "frames": clip.frames,
        "has_audio": clip.has_audio,
        "start": utc_iso(clip.start),
        "end": utc_iso(clip.end),
        "sources": [str(p.name) for p in clip.sources],
    }


def _range(clips: list[Clip]) -> dict[str, str] | None:
    if not clips:
        return None
    return {
        "start": utc_iso(min(c.start for c in clips)),
        "end": utc_iso(max(c.end for c in clips)),
    }


def _range_of(ranges: list[dict[str, str]]) -> dict[str, str] | None:
    if not ranges:
        return None
    return {"start": min(r["start"] for r in ranges), "end": max(r["end"] for r in ranges)}


def _all_synced(segments: list[Segment]) -> bool | None:
    values = [s.clock_synced for s in segments]
    if not values or any(v is None for v in values):
        return None
    return all(values)
