"""The ``camera-gateway`` command line: run, demo, check-config, recordings, status, forward,
and the evidence commands (export, verify, hold, audit, key: :mod:`gateway.daemon.evidence_cli`).

Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.clock import parse_moment, utc_iso
from gateway.config import Config, ConfigError, config_warnings, load_config
from gateway.daemon.evidence_cli import add_commands, add_recordings_verify
from gateway.daemon.logsetup import FIELDS, setup_logging
from gateway.host.memory import limit_arenas
from gateway.units import format_duration, format_size, parse_duration

if TYPE_CHECKING:
    from gateway.daemon.service import Gateway

__all__ = ["main"]

log = logging.getLogger("gateway")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


UMASK = 0o027
"""Recordings, the index and the journals are never readable by "other", whatever umask the
daemon was started with (systemd's unit says the same)."""


def main(argv: Sequence[str] | None = None) -> int:
    limit_arenas()
    os.umask(UMASK)
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"camera-gateway: configuration error in {exc.path or 'config'}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camera-gateway",
        description="Edge daemon of a residential video-protection gateway box.",
    )
    parser.add_argument("--version", action="version", version=f"camera-gateway {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True, type=Path, metavar="FILE")
    run.set_defaults(handler=_run)

    demo = sub.add_parser("demo", help="4 simulated cameras recorded to ./demo-data")
    demo.add_argument("--dir", type=Path, default=Path("demo-data"), help="storage folder")
    demo.add_argument("--cameras", type=int, default=4, choices=range(1, 17), metavar="N")
    demo.add_argument("--duration", type=parse_duration, help="stop after this long (e.g. 2m)")
    demo.add_argument("--metrics", default="127.0.0.1:9108", metavar="HOST:PORT")
    demo.add_argument("--no-table", action="store_true", help="log only, no status table")
    demo.set_defaults(handler=_demo)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("--config", required=True, type=Path, metavar="FILE")
    check.set_defaults(handler=_check_config)

    recordings = sub.add_parser("recordings", help="list or reindex recordings")
    rsub = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = rsub.add_parser("list", help="segments and gaps per camera")
    listing.add_argument("--config", required=True, type=Path, metavar="FILE")
    listing.add_argument("--camera", metavar="ID")
    listing.add_argument("--since", type=_moment, help="ISO time, or a duration ago (e.g. 2h)")
    listing.add_argument("--until", type=_moment, help="ISO time, or a duration ago")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_recordings_list)
    reindex = rsub.add_parser("reindex", help="rebuild the index from the segment files")
    reindex.add_argument("--config", required=True, type=Path, metavar="FILE")
    reindex.set_defaults(handler=_recordings_reindex)
    add_recordings_verify(rsub)

    status = sub.add_parser("status", help="cameras and storage of the running daemon")
    status.add_argument("--config", type=Path, metavar="FILE", help="to find the control socket")
    status.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    _add_forward(sub)
    add_commands(sub)
    return parser


def _add_forward(sub: Any) -> None:
    forward = sub.add_parser("forward", help="send a camera live to the supervision centre")
    fsub = forward.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = fsub.add_parser("start", help="start (or extend) a forward session")
    start.add_argument("--camera", required=True, metavar="ID")
    start.add_argument("--duration", required=True, type=parse_duration, help="e.g. 15m")
    start.add_argument("--reason", required=True, help="the intervention it is for")
    stop = fsub.add_parser("stop", help="stop a forward session now")
    stop.add_argument("--camera", required=True, metavar="ID")
    stop.add_argument("--reason", help="why it stops early")
    fstatus = fsub.add_parser("status", help="forwards of every camera")
    fstatus.add_argument("--json", action="store_true")
    for action in (start, stop, fstatus):
        action.add_argument(
            "--config", type=Path, metavar="FILE", help="to find the daemon's control socket"
        )
        action.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")
    for action in (start, stop):
        action.add_argument("--requested-by", metavar="NAME", help="who asks (journalled)")
        action.set_defaults(handler=_forward_command)
    fstatus.set_defaults(handler=_forward_status)


def _setup_logging(verbose: bool) -> None:
    setup_logging(verbose)


def _moment(text: str) -> float:
    try:
        return parse_moment(text, naive_is_utc=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: Path) -> Config:
    config = load_config(path)
    FIELDS.site = config.site_id
    for warning in config_warnings(config):
        log.warning("%s", warning)
    return config


def _run(args: argparse.Namespace) -> int:
    from gateway.daemon.service import Gateway
    from gateway.storage.store import StorageError

    config = _load(args.config)
    gateway = Gateway(config, config_path=args.config)
    with gateway.signals():
        try:
            gateway.start()
        except StorageError as exc:
            log.error("%s", exc.reason)
            return EXIT_FAILURE
        return gateway.serve()


def _demo(args: argparse.Namespace) -> int:
    from gateway.daemon.demo import demo_config
    from gateway.daemon.service import Gateway
    from gateway.storage.store import StorageError

    config = demo_config(args.dir.resolve(), cameras=args.cameras, metrics=args.metrics)
    gateway = Gateway(config)
    with gateway.signals():
        try:
            gateway.start()
        except StorageError as exc:
            log.error("%s", exc.reason)
            return EXIT_FAILURE
        return _demo_serve(gateway, args, config.storage.path)


def _demo_serve(gateway: Gateway, args: argparse.Namespace, path: Path) -> int:
    from gateway.telemetry.statusview import render_status, status_document

    tty = sys.stdout.isatty()

    def show() -> None:
        if args.no_table:
            return
        snap = gateway.snapshot()
        document = status_document(
            snap.site_id, snap.cameras, snap.storage, uptime=time.monotonic() - gateway.started
        )
        table = render_status(document)
        footer = f"\nrecordings in {path} · metrics on {args.metrics} · Ctrl-C stops"
        print(("\033[H\033[2J" if tty else "\n") + table + footer, flush=True)

    return gateway.serve(every=show, duration=args.duration)


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    warnings = config_warnings(config)
    storage = config.storage
    print(f"{args.config}: valid")
    print(f"  site {config.site_id}")
    print(
        f"  storage {storage.path}: quota {format_size(storage.quota)}, max_age "
        f"{format_duration(storage.max_age)}, min_free {format_size(storage.min_free)}, "
        f"segments of {format_duration(storage.segment_duration)}"
    )
    for camera in config.cameras:
        flags = "recorded" if camera.record else "not recorded"
        print(f"  camera {camera.id}: {camera.display_url} ({flags})")
    print(f"  metrics on {config.metrics.listen}")
    for warning in warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def _recordings_list(args: argparse.Namespace) -> int:
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


def _recordings_reindex(args: argparse.Namespace) -> int:
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


def _control_socket(args: argparse.Namespace) -> Path:
    from gateway.config.model import DEFAULT_CONTROL_SOCKET

    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        return load_config(args.config).control.socket
    return Path(DEFAULT_CONTROL_SOCKET)


def _forward_command(args: argparse.Namespace) -> int:
    from gateway.daemon.control import ControlError, call
    from gateway.text import display

    request: dict[str, object] = {
        "command": "forward",
        "action": args.action,
        "camera": args.camera,
    }
    if args.action == "start":
        request["duration"] = args.duration
    if args.reason is not None:
        request["reason"] = args.reason
    if args.requested_by is not None:
        request["requested_by"] = args.requested_by
    try:
        answer = call(_control_socket(args), request)
    except ControlError as exc:
        print(f"camera-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not answer.get("ok"):
        print(f"camera-gateway: refused: {display(answer.get('message'))}", file=sys.stderr)
        return EXIT_FAILURE
    session = answer.get("session")
    session = session if isinstance(session, dict) else {}
    print(
        f"{display(answer.get('message'))}: camera {display(args.camera)}, "
        f"session {display(session.get('session'))}"
    )
    for key in ("target", "ends", "duration", "bytes_sent"):
        if session.get(key) is not None:
            print(f"  {key}: {display(session[key])}")
    return EXIT_OK


def _forward_status(args: argparse.Namespace) -> int:
    from gateway.daemon.control import ControlError, call
    from gateway.text import display

    try:
        answer = call(_control_socket(args), {"command": "status"})
    except ControlError as exc:
        print(f"camera-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    document = answer.get("status")
    if not answer.get("ok") or not isinstance(document, dict):
        print(f"camera-gateway: {display(answer.get('message', 'no status'))}", file=sys.stderr)
        return EXIT_FAILURE
    cameras = document.get("cameras", [])
    forwards = {c["id"]: c["forward"] for c in cameras}
    if args.json:
        print(json.dumps(forwards, indent=2))  # ASCII only: every other character is escaped
        return EXIT_OK
    for camera_id, forward in forwards.items():
        line = (
            f"{display(camera_id):<14}{display(forward['mode']):<12}{display(forward['state']):<12}"
        )
        if forward.get("ends"):
            line += f" until {display(forward['ends'])}"
        if forward.get("requested_by"):
            line += f" (asked by {display(forward['requested_by'])})"
        if forward.get("error"):
            line += f" ! {display(forward['error'])}"
        print(line)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from gateway.daemon.control import ControlError, call
    from gateway.telemetry.statusview import render_status

    try:
        answer = call(_control_socket(args), {"command": "status"})
    except ControlError as exc:
        print(f"camera-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    document = answer.get("status")
    if not answer.get("ok") or not isinstance(document, dict):
        from gateway.text import display

        print(f"camera-gateway: {display(answer.get('message', 'no status'))}", file=sys.stderr)
        return EXIT_FAILURE
    # JSON is ASCII only (every other character escaped); the table escapes what it shows.
    print(json.dumps(document, indent=2) if args.json else render_status(document))
    return EXIT_OK
