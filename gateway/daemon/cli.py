"""The ``camera-gateway`` command line: its parser and :func:`main`. The commands are in
:mod:`~gateway.daemon.run_cli` (run, demo, check-config), :mod:`~gateway.daemon.recordings_cli`
(recordings list, reindex), :mod:`~gateway.daemon.control_cli` (status, forward, snapshot,
analysis relearn: through the running daemon's control socket) and
:mod:`~gateway.daemon.evidence_cli` (export, verify, hold, audit, key, recordings verify).

Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.clock import parse_moment
from gateway.config import ConfigError
from gateway.daemon import control_cli, recordings_cli, run_cli
from gateway.daemon.config_path import ConfigChoice, add_config_argument, resolve_config
from gateway.daemon.evidence_cli import add_commands, add_recordings_verify
from gateway.daemon.logsetup import setup_logging
from gateway.host.memory import limit_arenas
from gateway.units import parse_duration

__all__ = ["main"]

EXIT_FAILURE, EXIT_CONFIG = 1, 2


UMASK = 0o027
"""Recordings, the index and the journals are never readable by "other", whatever umask the
daemon was started with (systemd's unit says the same)."""


def main(argv: Sequence[str] | None = None) -> int:
    limit_arenas()
    os.umask(UMASK)
    parser = _parser()
    args = parser.parse_args(argv)
    resolve_config(args)
    _setup_logging(args.verbose)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        _config_error(exc, getattr(args, "config_choice", None))
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _config_error(exc: ConfigError, choice: ConfigChoice | None) -> None:
    """What is wrong, in which file, and why that file: a missing one in one line."""
    chosen = choice is not None and exc.path is not None and Path(exc.path) == choice.path
    if chosen and choice is not None and not choice.path.exists():
        print(f"camera-gateway: {choice.missing()}", file=sys.stderr)
        return
    where = f"{exc.path} ({choice.why})" if chosen and choice is not None else exc.path
    print(f"camera-gateway: configuration error in {where or 'config'}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camera-gateway",
        description="Edge daemon of a residential video-protection gateway box.",
    )
    parser.add_argument("--version", action="version", version=f"camera-gateway {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    add_config_argument(run)
    run.set_defaults(handler=run_cli.run)

    demo = sub.add_parser(
        "demo", help="4 simulated cameras recorded to ./demo-data, forwarded, on MQTT"
    )
    demo.add_argument("--dir", type=Path, default=Path("demo-data"), help="storage folder")
    demo.add_argument("--cameras", type=int, default=4, choices=range(1, 17), metavar="N")
    demo.add_argument("--duration", type=parse_duration, help="stop after this long (e.g. 2m)")
    demo.add_argument("--metrics", default="127.0.0.1:9108", metavar="HOST:PORT")
    demo.add_argument(
        "--forward",
        type=parse_duration,
        default=60.0,
        metavar="T",
        help="forward one camera to a local centre for this long (default 1m; 0: none)",
    )
    demo.add_argument("--no-table", action="store_true", help="log only, no status table")
    demo.set_defaults(handler=run_cli.demo)

    check = sub.add_parser("check-config", help="validate a configuration file")
    add_config_argument(check)
    check.set_defaults(handler=run_cli.check_config)

    recordings = sub.add_parser("recordings", help="list or reindex recordings")
    rsub = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = rsub.add_parser("list", help="segments and gaps per camera")
    add_config_argument(listing)
    listing.add_argument("--camera", metavar="ID")
    listing.add_argument("--since", type=_moment, help="ISO time, or a duration ago (e.g. 2h)")
    listing.add_argument("--until", type=_moment, help="ISO time, or a duration ago")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=recordings_cli.recordings_list)
    reindex = rsub.add_parser("reindex", help="rebuild the index from the segment files")
    add_config_argument(reindex)
    reindex.set_defaults(handler=recordings_cli.recordings_reindex)
    add_recordings_verify(rsub)

    status = sub.add_parser("status", help="cameras and storage of the running daemon")
    add_config_argument(status, needed=False)
    status.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=control_cli.status)

    _add_forward(sub)
    _add_integrity(sub)
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
        add_config_argument(action, needed=False)
        action.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")
    for action in (start, stop):
        action.add_argument("--requested-by", metavar="NAME", help="who asks (journalled)")
        action.set_defaults(handler=control_cli.forward_command)
    fstatus.set_defaults(handler=control_cli.forward_status)


def _add_integrity(sub: Any) -> None:
    snapshot = sub.add_parser("snapshot", help="a camera's picture now, privacy zones blacked out")
    snapshot.add_argument("--camera", required=True, metavar="ID")
    snapshot.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="JPEG")
    snapshot.add_argument("--reason", required=True, help="what it is for (journalled)")
    snapshot.set_defaults(handler=control_cli.snapshot)
    analysis = sub.add_parser("analysis", help="the cameras' integrity watch")
    asub = analysis.add_subparsers(dest="action", required=True, metavar="ACTION")
    relearn = asub.add_parser("relearn", help="learn a camera's view again after a re-aim")
    relearn.add_argument("--camera", required=True, metavar="ID")
    relearn.add_argument("--reason", required=True, help="the re-aim or work it follows")
    relearn.set_defaults(handler=control_cli.relearn)
    for command in (snapshot, relearn):
        command.add_argument("--by", "--requested-by", dest="requested_by", metavar="NAME")
        add_config_argument(command, needed=False)
        command.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")


def _setup_logging(verbose: bool) -> None:
    setup_logging(verbose)


def _moment(text: str) -> float:
    try:
        return parse_moment(text, naive_is_utc=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
