"""The ``camera-gateway recordings`` commands that read the storage area directly: ``list``
(segments and gaps per camera) and ``reindex`` (rebuild the index from the segment files, the
daemon stopped). ``recordings verify`` is an evidence command (:mod:`gateway.daemon.evidence_cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gateway.clock import utc_iso
from gateway.config import load_config
from gateway.units import format_duration, format_size

__all__ = ["recordings_list", "recordings_reindex"]

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def recordings_list(args: argparse.Namespace) -> int:
    """``recordings list``: segments and gaps per camera, as text or JSON."""
    from gateway.storage.index import Index, gaps
    from gateway.storage.store import INDEX_NAME

    config = load_config(args.config)
    if args.camera is not None and args.camera not in {c.id for c in config.cameras}:
        known = ", ".join(c.id for c in config.cameras) or "none"
        print(
            f"camera-gateway: unknown camera {args.camera!r} (configured: {known})", file=sys.stderr
        )
        return EXIT_CONFIG
    path = config.storage.path / INDEX_NAME
    if not path.exists():
        print(
            f"camera-gateway: no recording index at {path} (nothing recorded yet?)", file=sys.stderr
        )
        return EXIT_FAILURE
    index = Index(path, readonly=True)
    segments = index.segments(camera=args.camera, since=args.since, until=args.until)
    holes = gaps(segments)
    index.close()
    if args.json:
        out = {
            "segments": [
                {
                    "camera": s.camera,
                    "path": str(config.storage.path / s.path),
                    "start": utc_iso(s.start),
                    "end": utc_iso(s.end),
                    "duration": round(s.duration, 3),
                    "bytes": s.bytes,
                    "frames": s.frames,
                    "codec": s.codec,
                    "width": s.width,
                    "height": s.height,
                    "audio": s.has_audio,
                    "flags": sorted(s.flags),
                }
                for s in segments
            ],
            "gaps": [
                {
                    "camera": g.camera,
                    "start": utc_iso(g.start),
                    "end": utc_iso(g.end),
                    "duration": round(g.duration, 3),
                }
                for g in holes
            ],
        }
        print(json.dumps(out, indent=2))
        return EXIT_OK
    from gateway.text import display

    by_camera: dict[str, list[str]] = {}
    for s in segments:
        by_camera.setdefault(s.camera, []).append(
            f"  {utc_iso(s.start)}  {format_duration(s.duration):>7}  {format_size(s.bytes):>10}"
            f"  {s.frames:>6} fr  {display(s.codec)} {s.width}x{s.height}  {display(s.path)}"
            + (f"  [{', '.join(sorted(s.flags))}]" if s.flags else "")
        )
    for g in holes:
        by_camera.setdefault(g.camera, []).append(
            f"  {utc_iso(g.start)}  {format_duration(g.duration):>7}  gap (nothing recorded)"
        )
    for camera in sorted(by_camera):
        rows = sorted(by_camera[camera])
        total = sum(s.duration for s in segments if s.camera == camera)
        print(
            f"{display(camera)}: {sum(1 for s in segments if s.camera == camera)} segments, "
            f"{format_duration(total)} recorded, "
            f"{sum(1 for g in holes if g.camera == camera)} gaps"
        )
        print("\n".join(rows))
    if not segments:
        print("no recordings")
    return EXIT_OK


def recordings_reindex(args: argparse.Namespace) -> int:
    """``recordings reindex``: rebuild the index from the segment files, under the storage lock."""
    import sqlite3

    from gateway.evidence.box import Integrity
    from gateway.storage.index import Index
    from gateway.storage.quarantine import audit_journal
    from gateway.storage.recovery import rebuild_index
    from gateway.storage.store import INDEX_NAME, LOCK_NAME, StorageError

    config = load_config(args.config)
    root = config.storage.path
    if not root.is_dir():
        print(f"camera-gateway: storage {root} does not exist", file=sys.stderr)
        return EXIT_FAILURE
    import fcntl

    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError("the daemon is running on this storage; stop it first") from None
        started = time.monotonic()
        # Built into a new file and swapped in: a failure leaves the previous index as it was.
        report = rebuild_index(
            root, root / INDEX_NAME, journal=audit_journal(Integrity.of(config).audit)
        )
        index = Index(root / INDEX_NAME, readonly=True)
        try:
            count, total, _ = index.totals()
        finally:
            index.close()
    except StorageError as exc:
        print(f"camera-gateway: {exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(
            f"camera-gateway: reindex of {root} failed: {reason}; the previous index is kept",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    finally:
        os.close(fd)
    print(
        f"reindexed {count} segments ({format_size(total)}) in "
        f"{time.monotonic() - started:.1f} s: {report.summary()}"
    )
    return EXIT_OK
