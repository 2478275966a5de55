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
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.clock import parse_moment, utc_iso
from gateway.config import Config, load_config
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
    export.add_argument("--config", required=True, type=Path, metavar="FILE")
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
    verify.set_defaults(handler=_verify)

    child = sub.add_parser("export-child", help=argparse.SUPPRESS)
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
        parser.add_argument("--config", required=True, type=Path, metavar="FILE")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=_hold)


def _add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the signed audit journal")
    asub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = asub.add_parser("show", help="print the journal")
    show.add_argument("--since", type=moment, metavar="T")
    show.add_argument("--json", action="store_true", help="one JSON entry per line")
    show.set_defaults(handler=_audit_show)
    averify = asub.add_parser("verify", help="check the journal has not been tampered with")
    averify.add_argument(
        "--head", metavar="SEQ:HASH", help="the head the centre holds (from MQTT .../seal)"
    )
    averify.add_argument("--json", action="store_true")
    averify.set_defaults(handler=_audit_verify)
    for parser in (show, averify):
        parser.add_argument("--config", required=True, type=Path, metavar="FILE")


def _add_key(sub: Any) -> None:
    key = sub.add_parser("key", help="the box's signing key")
    ksub = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    kshow = ksub.add_parser("show", help="print the public key and its fingerprint")
    kshow.set_defaults(handler=_key_show)
    rotate = ksub.add_parser("rotate", help="make a new key, signed over by the old one")
    rotate.set_defaults(handler=_key_rotate)
    for parser in (kshow, rotate):
        parser.add_argument("--config", required=True, type=Path, metavar="FILE")


def add_recordings_verify(rsub: Any) -> None:
    check = rsub.add_parser("verify", help="re-hash the recordings against their seals")
    check.add_argument("--config", required=True, type=Path, metavar="FILE")
    check.add_argument("--camera", metavar="ID")
    check.add_argument("--since", type=moment, metavar="T")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_recordings_verify)


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
    from gateway.control import ControlError, call

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

            who = _user()
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


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


# -- verification -----------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from gateway.evidence.verify import verify_package
    from gateway.integrity.keys import load_public

    pubkey = None
    if args.pubkey is not None:
        try:
            pubkey = load_public(args.pubkey.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"camera-gateway: --pubkey {args.pubkey}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    box_keys = sealer = None
    if args.config is not None:
        from gateway.evidence.box import Integrity

        integrity = Integrity.of(load_config(args.config))
        box_keys, sealer = integrity.keys.public_keys(), integrity.sealer
    report = verify_package(args.package, pubkey=pubkey, box_keys=box_keys, sealer=sealer)
    _journal_verification(
        args.config,
        "package_verified",
        package=str(args.package),
        ok=report.ok,
        failed=len([c for c in report.checks if not c.ok]),
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for check in report.checks:
            mark = "ok  " if check.ok else "FAIL"
            detail = f": {display(check.detail)}" if check.detail else ""
            print(f"{mark} {display(check.name)}{detail}")
        print("package verified" if report.ok else "PACKAGE NOT VERIFIED")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _recordings_verify(args: argparse.Namespace) -> int:
    from gateway.evidence.box import Integrity
    from gateway.evidence.recordings import FAILING, verify_recordings
    from gateway.storage.index import Index
    from gateway.storage.store import INDEX_NAME

    config = load_config(args.config)
    integrity = Integrity.of(config)
    root = config.storage.path
    index = Index(root / INDEX_NAME, readonly=True)
    try:
        report = verify_recordings(
            root, index, integrity.sealer, integrity.keys, camera=args.camera, since=args.since
        )
    finally:
        index.close()
    counts = report.counts
    _journal_verification(
        args.config, "recordings_verified", ok=report.ok, counts=dict(counts), camera=args.camera
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return EXIT_OK if report.ok else EXIT_FAILURE
    for check in report.segments:
        if check.status not in {"ok", "evicted"}:
            print(f"{check.status:9} {display(check.path)}  {display(check.detail)}")
    for camera, problems in report.chain_problems.items():
        for problem in problems:
            print(f"chain     {display(camera)}: {display(str(problem))}")
    summary = ", ".join(f"{counts[k]} {k}" for k in sorted(counts)) or "no sealed segment"
    print(summary)
    failing = sum(counts[k] for k in FAILING)
    print("recordings verified" if report.ok else f"NOT VERIFIED: {failing} segment(s) fail")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _journal_verification(config_path: Path | None, event: str, **fields: Any) -> None:
    """Verifications are journalled too (when the journal is reachable from here)."""
    if config_path is None:
        return
    from gateway.audit import AuditError
    from gateway.evidence.box import Integrity

    try:
        Integrity.of(load_config(config_path)).audit.append(event, by=_user(), **fields)
    except (AuditError, OSError) as exc:
        print(f"camera-gateway: warning: verification not journalled: {exc}", file=sys.stderr)


# -- audit journal ----------------------------------------------------------------------------


def _audit_show(args: argparse.Namespace) -> int:
    from gateway.evidence.box import Integrity

    audit = Integrity.of(load_config(args.config)).audit
    for entry in audit.entries():
        when = _entry_time(entry)
        if args.since is not None and (when is None or when < args.since):
            continue
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
            continue
        details = "  ".join(
            f"{k}={display(v)}"
            for k, v in entry.items()
            if k not in ("time", "event", "seq", "prev", "sig", "key")
        )
        seq = entry.get("seq", "-")
        print(f"{display(entry.get('time'))}  #{seq}  {display(entry.get('event'))}  {details}")
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    from gateway.evidence.box import Integrity
    from gateway.integrity.journal import Head
    from gateway.integrity.verification import verify

    head = None
    if args.head is not None:
        seq, _, digest = args.head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            print("camera-gateway: --head must be SEQ:SHA256 (from MQTT .../seal)", file=sys.stderr)
            return 2
        head = Head(int(seq), digest)
    integrity = Integrity.of(load_config(args.config))
    result = verify(integrity.audit.journal, integrity.keys.public_keys(), head=head)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "entries": result.entries,
                    "first_seq": result.first_seq,
                    "head": result.head.as_dict() if result.head else None,
                    "problems": [str(p) for p in result.problems],
                },
                indent=2,
            )
        )
    else:
        for problem in result.problems:
            print(f"FAIL {display(str(problem))}")
        last = result.head
        print(
            f"{result.entries} entries"
            + (f", head {last.seq}:{last.hash}" if last is not None else "")
            + ("" if head is not None else " (give --head to check the tail was not cut)")
        )
        print("journal verified" if result.ok else "JOURNAL NOT VERIFIED")
    return EXIT_OK if result.ok else EXIT_FAILURE


def _entry_time(entry: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry.get("time")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- key --------------------------------------------------------------------------------------


def _key_show(args: argparse.Namespace) -> int:
    from gateway.evidence.box import Integrity
    from gateway.integrity.keys import SigningKeyError

    keys = Integrity.of(load_config(args.config)).keys
    try:
        signer = keys.signer()
    except SigningKeyError as exc:
        print(f"camera-gateway: {exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    print(signer.public.pem, end="")
    print(f"fingerprint (SHA-256 of the DER public key): {signer.fingerprint}")
    print(f"keys used by this box: {len(keys.public_keys())} (history in {keys.history_file})")
    return EXIT_OK


def _key_rotate(args: argparse.Namespace) -> int:
    from gateway.audit import AuditError
    from gateway.evidence.box import Integrity
    from gateway.integrity.keys import SigningKeyError

    integrity = Integrity.of(load_config(args.config))
    try:
        old, new = integrity.keys.rotate()
    except SigningKeyError as exc:
        print(f"camera-gateway: {exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        integrity.audit.append(
            "key_rotated", previous=old.fingerprint, fingerprint=new.fingerprint, by=_user()
        )
    except AuditError as exc:
        print(f"camera-gateway: warning: rotation not journalled: {exc}", file=sys.stderr)
    print(f"new key {new.fingerprint}")
    print(f"previous key {old.fingerprint} signed the hand-over ({integrity.keys.history_file})")
    return EXIT_OK
