"""Command-line front of the evidence features: export, verify, hold, audit, key, recordings
verify.

``export`` and ``hold add|release|list`` go through the daemon's control socket when it runs
(so its retention sees the hold at once and the index is read by its only writer); on a stopped
box they run here, holding the storage lock so that no daemon starts meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.clock import parse_moment, utc_iso
from gateway.config import Config, load_config
from gateway.daemon.config_path import add_config_argument
from gateway.evidence import checks
from gateway.text import display

__all__ = ["add_commands", "add_recordings_verify", "moment"]

EXIT_OK, EXIT_FAILURE = 0, 1
EXPORT_TIMEOUT = 4 * 3600.0 + 60
"""Longest wait for the daemon to finish an export (its child's limit, and a minute)."""


def moment(text: str) -> float:
    """``--start``/``--end``: see :func:`gateway.clock.parse_moment` (a zone is required)."""
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(sub: Any) -> None:
    """``export``, ``verify``, ``hold``, ``audit`` and ``key``."""
    _add_export(sub)
    _add_hold(sub)
    _add_audit(sub)
    _add_key(sub)


def _add_export(sub: Any) -> None:
    export = sub.add_parser("export", help="export footage as a signed evidence package")
    add_config_argument(export)
    export.add_argument("--camera", required=True, action="append", metavar="ID")
    export.add_argument("--start", required=True, type=moment, metavar="T1")
    export.add_argument("--end", required=True, type=moment, metavar="T2")
    export.add_argument("--output", required=True, type=Path, metavar="DIR")
    export.add_argument("--operator", required=True, metavar="NAME", help="who takes it")
    export.add_argument("--reason", required=True, help="why (the complaint, the request)")
    export.add_argument("--case", metavar="REF", help="case reference: the hold is filed under it")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=_export)

    verify = sub.add_parser("verify", help="check an export package")
    verify.add_argument("package", type=Path, metavar="PACKAGE")
    verify.add_argument("--pubkey", type=Path, metavar="FILE", help="the box's public key (PEM)")
    verify.add_argument("--config", type=Path, metavar="FILE", help="on the box: check the seals")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=checks.verify)

    # No help: argparse lists a subcommand with any help, SUPPRESS included, in --help.
    child = sub.add_parser("export-child")
    child.add_argument("--config", required=True, type=Path)
    child.set_defaults(handler=_export_child)


def _export_child(args: argparse.Namespace) -> int:
    from gateway.evidence.child import child_main

    return child_main(args.config)


def _add_hold(sub: Any) -> None:
    hold = sub.add_parser("hold", help="legal holds: keep recordings for a judicial procedure")
    hsub = hold.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = hsub.add_parser("add", help="hold a range of recordings")
    add.add_argument("--camera", required=True, action="append", metavar="ID")
    add.add_argument("--start", required=True, type=moment, metavar="T1")
    add.add_argument("--end", required=True, type=moment, metavar="T2")
    add.add_argument("--case", required=True, metavar="REF")
    add.add_argument("--operator", required=True, metavar="NAME")
    add.add_argument("--reason", required=True)
    release = hsub.add_parser("release", help="release a hold")
    release.add_argument("hold", metavar="HOLD_ID")
    release.add_argument("--operator", required=True, metavar="NAME")
    release.add_argument("--reason", required=True)
    listing = hsub.add_parser("list", help="holds in force")
    for parser in (add, release, listing):
        add_config_argument(parser)
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=_hold)


def _add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the signed audit journal")
    asub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = asub.add_parser("show", help="print the journal")
    show.add_argument("--since", type=moment, metavar="T")
    show.add_argument("--json", action="store_true", help="one JSON entry per line")
    show.set_defaults(handler=checks.audit_show)
    averify = asub.add_parser("verify", help="check the journal has not been tampered with")
    averify.add_argument(
        "--head", metavar="SEQ:HASH", help="the head the centre holds (from MQTT .../seal)"
    )
    averify.add_argument("--json", action="store_true")
    averify.set_defaults(handler=checks.audit_verify)
    for parser in (show, averify):
        add_config_argument(parser)


def _add_key(sub: Any) -> None:
    key = sub.add_parser("key", help="the box's signing key")
    ksub = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    kshow = ksub.add_parser("show", help="print the public key and its fingerprint")
    kshow.set_defaults(handler=checks.key_show)
    rotate = ksub.add_parser("rotate", help="make a new key, signed over by the old one")
    rotate.set_defaults(handler=checks.key_rotate)
    for parser in (kshow, rotate):
        add_config_argument(parser)


def add_recordings_verify(rsub: Any) -> None:
    check = rsub.add_parser("verify", help="re-hash the recordings against their seals")
    add_config_argument(check)
    check.add_argument("--camera", metavar="ID")
    check.add_argument("--since", type=moment, metavar="T")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=checks.recordings_verify)


# -- export and holds -------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    request = {
        "action": "export",
        "cameras": args.camera,
        "start": args.start,
        "end": args.end,
        "output": str(args.output.absolute()),
        "operator": args.operator,
        "reason": args.reason,
        "case": args.case,
    }
    answer = _desk(args.config, request, timeout=EXPORT_TIMEOUT)
    if args.json:
        print(json.dumps(answer, indent=2))
    if not answer.get("ok"):
        print(f"camera-gateway: export refused: {display(answer.get('message'))}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        result = answer["export"]
        print(f"exported to {display(result['output'])}")
        for entry in result["files"]:
            print(
                f"  {display(entry['name'])}: {entry['frames']} frames, "
                f"{display(entry['start'])} to {display(entry['end'])}, sha256 {entry['sha256']}"
            )
        print(f"  manifest sha256 {result['manifest_sha256']}")
        if result.get("hold"):
            hold = result["hold"]
            print(f"  held as {display(hold['id'])} (case {display(hold['case'])})")
        if result.get("hold_error"):
            print(f"  not held: {display(result['hold_error'])}")
        for warning in result.get("warnings", []):
            print(f"  warning: {display(warning)}")
    return EXIT_OK


def _hold(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"action": f"hold_{args.action}"}
    if args.action == "add":
        request.update(
            cameras=args.camera,
            start=args.start,
            end=args.end,
            case=args.case,
            operator=args.operator,
            reason=args.reason,
        )
    elif args.action == "release":
        request.update(hold=args.hold, operator=args.operator, reason=args.reason)
    answer = _desk(args.config, request, timeout=60.0)
    if args.json:
        print(json.dumps(answer, indent=2))
    if not answer.get("ok"):
        print(f"camera-gateway: {display(answer.get('message'))}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        return EXIT_OK
    if args.action == "list":
        from gateway.units import format_size

        for hold in answer["holds"]:
            print(
                f"{display(hold['id'])}  case {display(hold['case'])}  "
                f"{', '.join(display(c) for c in hold['cameras'])}  "
                f"{utc_iso(hold['start'])} to {utc_iso(hold['end'])}  "
                f"{format_size(hold['bytes'])}  until {utc_iso(hold['expires'])}"
                + ("  (export in progress)" if hold.get("temporary") else "")
            )
        print(
            f"{len(answer['holds'])} hold(s), {format_size(answer['held_bytes'])} held of "
            f"{format_size(answer['quota'])} allowed (storage.hold.quota)"
        )
    elif args.action == "add":
        from gateway.units import format_size

        hold = answer["hold"]
        print(
            f"placed {display(hold['id'])}: {answer['segments']} segment(s), "
            f"{format_size(answer['bytes'])}, until {utc_iso(hold['expires'])}"
        )
    else:
        print(f"released {display(answer['hold']['id'])}")
    return EXIT_OK


def _desk(config_path: Path, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Through the daemon if it runs, else here, under the storage lock."""
    from gateway.daemon.control import ControlError, call

    config = load_config(config_path)
    socket_path = config.control.socket
    if os.path.exists(socket_path):
        try:
            return call(socket_path, {"command": "evidence", **request}, timeout=timeout)
        except ControlError as exc:
            if "not running" not in str(exc):
                return {"ok": False, "message": str(exc)}
    try:
        with _stopped_box(config) as (index, integrity):
            from gateway.evidence.desk import EvidenceDesk

            who = checks.current_user()
            return EvidenceDesk(config, index, integrity).handle(
                request, via=f"command line on the stopped box, user {who}"
            )
    except _BusyError as exc:
        return {"ok": False, "message": str(exc)}


class _BusyError(Exception):
    pass


@contextlib.contextmanager
def _stopped_box(config: Config) -> Iterator[tuple[Any, Any]]:
    from gateway.evidence.box import Integrity
    from gateway.storage.index import Index
    from gateway.storage.store import INDEX_NAME, LOCK_NAME

    root = config.storage.path
    if not root.is_dir():
        raise _BusyError(f"storage {root} does not exist")
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _BusyError(
                "the daemon holds the storage but does not answer on its control socket "
                f"{config.control.socket}"
            ) from None
        index = Index(root / INDEX_NAME, readonly=True)
        try:
            yield index, Integrity.of(config)
        finally:
            index.close()
    finally:
        os.close(fd)
