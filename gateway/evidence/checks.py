"""The checking commands: ``verify`` (a package), ``recordings verify``, ``audit show|verify``,
``key show|rotate``. Each verification is journalled when the box's journal is reachable."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gateway.clock import parse_utc_iso
from gateway.config import load_config
from gateway.text import display

__all__ = [
    "audit_show",
    "audit_verify",
    "current_user",
    "key_rotate",
    "key_show",
    "recordings_verify",
    "verify",
]

EXIT_OK, EXIT_FAILURE = 0, 1


def current_user() -> str:
    """The local user running the command, as journalled."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


# -- verification -----------------------------------------------------------------------------


def verify(args: argparse.Namespace) -> int:
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


def recordings_verify(args: argparse.Namespace) -> int:
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
    from gateway.evidence.box import Integrity
    from gateway.integrity.audit import AuditError

    try:
        Integrity.of(load_config(config_path)).audit.append(event, by=current_user(), **fields)
    except (AuditError, OSError) as exc:
        print(f"camera-gateway: warning: verification not journalled: {exc}", file=sys.stderr)


# -- audit journal ----------------------------------------------------------------------------


def audit_show(args: argparse.Namespace) -> int:
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


def audit_verify(args: argparse.Namespace) -> int:
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
        return parse_utc_iso(str(entry.get("time")))
    except ValueError:
        return None


# -- key --------------------------------------------------------------------------------------


def key_show(args: argparse.Namespace) -> int:
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


def key_rotate(args: argparse.Namespace) -> int:
    from gateway.evidence.box import Integrity
    from gateway.integrity.audit import AuditError
    from gateway.integrity.keys import SigningKeyError

    integrity = Integrity.of(load_config(args.config))
    try:
        old, new = integrity.keys.rotate()
    except SigningKeyError as exc:
        print(f"camera-gateway: {exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        integrity.audit.append(
            "key_rotated", previous=old.fingerprint, fingerprint=new.fingerprint, by=current_user()
        )
    except AuditError as exc:
        print(f"camera-gateway: warning: rotation not journalled: {exc}", file=sys.stderr)
    print(f"new key {new.fingerprint}")
    print(f"previous key {old.fingerprint} signed the hand-over ({integrity.keys.history_file})")
    return EXIT_OK
